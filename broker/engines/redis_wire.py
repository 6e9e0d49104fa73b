"""What the Redis engine exchanges with Redis: the link it speaks through and the log's entries.

Why a module of its own: :mod:`broker.engines.redis` holds the engine's
logic; the protocol the router's link implements
(:mod:`broker.router.redislink`) and the parsing of the shared log's entries
(events and probes, :mod:`broker.engines.redis_scripts`) are what it and its
tests share.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from broker.history import NewEvent, RedisAddress, StoredEvent


class RedisLink(Protocol):
    """What the engine needs from a Redis client and the event loop it runs on.

    Every call is bounded by the link's timeout and raises on failure; replies
    come as RESP values (bulk strings as ``str``, integers as ``int``, nil as None).
    """

    async def script(self, source: str, keys: Sequence[str], args: Sequence[str]) -> Any:
        """Run the Lua ``source`` (EVALSHA, loading it when Redis lacks it) on the command connection."""
        ...

    async def block_read(self, stream: str, after: str, count: int, block_ms: int) -> Any:
        """``XREAD BLOCK block_ms COUNT count STREAMS stream after`` on a connection of its own."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Resume after ``seconds``."""
        ...

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        """Run ``coroutine`` in the background."""
        ...

    def call_soon(self, function: Callable[[], None]) -> None:
        """Call ``function`` once the current callbacks are done."""
        ...

    def reset_reader(self) -> None:
        """Drop the reader's connection: the next ``block_read`` opens a fresh one."""
        ...

    def close(self) -> None:
        """Drop the connections."""
        ...


#: Builds a link: ``(address, timeout) -> link``; the router passes Twisted's.
Connect = Callable[[RedisAddress, float], RedisLink]


def propose() -> str:
    """A new epoch, used only if Redis holds none: never one already seen, so a Redis that lost
    its data never reissues old positions under an old epoch."""
    return secrets.token_hex(8)


def cursor_of(entry_id: str) -> int:
    """The cursor of a log or stream entry's ID (``<cursor>-<n>``)."""
    return int(entry_id.split("-", 1)[0])


def describe(error: BaseException) -> str:
    """An error in a few words: its class and, if it says more, its message."""
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def fields(flat: Sequence[str]) -> dict[str, str]:
    """An entry's flat field list as a dict."""
    return dict(zip(flat[::2], flat[1::2], strict=True))


@dataclass(frozen=True)
class Entry:
    """One entry of the shared log."""

    batch: str
    event: StoredEvent


def probe_id(raw: Sequence[Any]) -> tuple[int, int] | None:
    """A probe's log ID as ``(cursor, n)``; None for an event (``<cursor>-0``)."""
    cursor, n = raw[0].split("-", 1)
    return None if n == "0" else (int(cursor), int(n))


def entry(raw: Sequence[Any]) -> Entry:
    """The event of one log entry (not a probe: see :func:`probe_id`)."""
    found = fields(raw[1])
    args, kwargs = json.loads(found["d"])
    event = StoredEvent(found["t"], int(found["s"]), cursor_of(raw[0]), float(found["p"]), args, kwargs)
    return Entry(found["b"], event)


def stored(topic: str, raw: Sequence[Any]) -> StoredEvent:
    """The event of one entry of ``topic``'s stream."""
    found = fields(raw[1])
    args, kwargs = json.loads(found["d"])
    return StoredEvent(topic, int(found["s"]), cursor_of(raw[0]), float(found["p"]), args, kwargs)


def event_args(batch: Sequence[NewEvent]) -> list[str]:
    """``APPEND``'s four arguments per event: topic, max_events, max_age and the payload
    ``[args, kwargs]`` as compact JSON."""
    args: list[str] = []
    for event in batch:
        retention = event.retention
        payload = json.dumps([event.args, event.kwargs], separators=(",", ":"))
        args += [event.topic, str(retention.max_events), repr(float(retention.max_age)), payload]
    return args
