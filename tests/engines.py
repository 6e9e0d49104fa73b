"""Driving history engines from synchronous tests: their coroutines, settled.

Why: :class:`broker.history.HistoryStore` is asynchronous (plain coroutines,
no Twisted), but memory and SQLite never suspend, so a test can run one to
its end with a single step and read the result. :func:`settle` refuses an
engine that does suspend (say so plainly, rather than hang): such an engine
needs its tests driven by a reactor. The Redis engine runs here over
:class:`tests.redisserver.SocketLink`, a blocking link whose calls never suspend,
against the session's real redis-server (``make(..., request=...)`` starts it);
:func:`two_redis_nodes` is two nodes on one Redis. :func:`append` and
:func:`after` are the one-event forms the older tests were written with;
:data:`MAKERS` builds every engine the contract suites run.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar, cast

import pytest

from broker.engines.memory import MemoryStore
from broker.engines.redis import RedisStore
from broker.engines.sqlite import SQLiteStore
from broker.history import (
    DEFAULT_MAX_TOPICS,
    HistoryStore,
    NewEvent,
    Retention,
    StoredEvent,
    parse_redis_url,
    recovery,
)
from tests import redisserver

#: ``(directory, clock, max_topics) -> a fresh store``, for every engine in
#: :data:`broker.engines.ENGINES` (a test fails for an engine missing here): the
#: contract suites run each of them.
MAKERS: dict[str, Callable[[Path, Callable[[], float], int], HistoryStore]] = {
    "memory": lambda _dir, clock, max_topics: MemoryStore(clock=clock, max_topics=max_topics),
    "sqlite": lambda dir_, clock, max_topics: SQLiteStore(
        str(dir_ / "history.db"), clock=clock, max_topics=max_topics
    ),
    # a key prefix of its own: a fresh, empty history on the session's server
    "redis": lambda _dir, clock, max_topics: RedisStore(
        redisserver.store_link(), prefix=f"t{secrets.token_hex(6)}", clock=clock, max_topics=max_topics
    ),
}


def make(
    kind: str,
    directory: Path,
    clock: Callable[[], float],
    max_topics: int = DEFAULT_MAX_TOPICS,
    request: pytest.FixtureRequest | None = None,
) -> HistoryStore:
    """A fresh store of engine ``kind`` (see :data:`MAKERS`); Redis needs the test's ``request``."""
    if kind == "redis" and request is not None:
        request.getfixturevalue("redis_server")
    return MAKERS[kind](directory, clock, max_topics)


@contextmanager
def two_redis_nodes(
    server: redisserver.RedisServer, link: redisserver.SocketLink, **options: Any
) -> Iterator[tuple[RedisStore, RedisStore]]:
    """Two nodes of one cluster on ``server``, under a fresh key prefix: the node under test, a
    store on ``link`` made with ``options``, and another on a link of its own; closed afterwards."""
    prefix = f"n{secrets.token_hex(6)}"
    mine = RedisStore(link, prefix=prefix, **options)
    other = RedisStore(redisserver.SocketLink(parse_redis_url(server.url)), prefix=prefix)
    try:
        yield mine, other
    finally:
        mine.close()
        other.close()


T = TypeVar("T")


def settle(awaitable: Awaitable[T]) -> T:
    """The result of a coroutine that completes without suspending (its exception, raised)."""
    coroutine = cast(Coroutine[Any, Any, T], awaitable)
    try:
        coroutine.send(None)
    except StopIteration as done:
        return cast(T, done.value)
    coroutine.close()
    raise AssertionError(f"{awaitable!r} suspended: drive this engine with a reactor, not settle()")


def append(
    store: HistoryStore, topic: str, args: list[Any], kwargs: dict[str, Any], retention: Retention
) -> StoredEvent:
    """Append one event (a batch of one) and return it with its position."""
    appended = settle(store.append([NewEvent(topic, args, kwargs, retention)]))
    assert len(appended.events) == 1
    return appended.events[0]


def after(
    store: HistoryStore, topics: Callable[[str], bool], cursor: int, limit: int
) -> Sequence[StoredEvent] | None:
    """The events of one snapshot read (None: some were trimmed)."""
    return settle(store.read(topics, cursor, limit)).events


def recover(store: HistoryStore, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """:func:`broker.history.recovery.recover`, settled."""
    return settle(recovery.recover(store, *args, **kwargs))
