"""What the Redis engine exchanges with Redis: the link it speaks through and the log's entries.

Why a module of its own: :mod:`broker.engines.redis` holds the engine's
logic; the protocol the router's link implements
(:mod:`broker.router.redislink`) and the parsing of the shared log's entries
(events and probes, :mod:`broker.engines.redis_scripts`) are what it and its
tests share.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Coroutine, Generator, Sequence
from typing import Any, Protocol

from broker.history import NewEvent, RedisAddress, StoredEvent, storedtext


class NotSent(ConnectionError):
    """A call the link gave up on before sending it (no connection to Redis in time): Redis did
    nothing, for certain."""


class ErrorReply(RuntimeError):
    """Redis answered a call with an error (a script refused or failed): it did not store it."""


class Future(Protocol):
    """A value one coroutine awaits and another supplies: an append waiting for its turn."""

    def __await__(self) -> Generator[Any, Any, Any]:
        """Suspend until :meth:`resolve` or :meth:`fail` (at once if already done)."""
        ...

    def resolve(self, value: Any) -> None:
        """Resume the waiter with ``value``."""
        ...

    def fail(self, error: BaseException) -> None:
        """Resume the waiter by raising ``error``."""
        ...


class RedisLink(Protocol):
    """What the engine needs from a Redis client and the event loop it runs on.

    Every call is bounded by the link's timeout and raises on failure (:class:`NotSent` when
    it never reached Redis, a ``RuntimeError`` such as :class:`ErrorReply` for an error reply, anything else:
    Redis may have run it); replies come as RESP values (bulk strings as ``str``, integers as
    ``int``, nil as None).
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

    def future(self) -> Future:
        """A new :class:`Future` on this link's event loop."""
        ...

    def reset_reader(self) -> None:
        """Drop the reader's connection: the next ``block_read`` opens a fresh one."""
        ...

    def close(self) -> None:
        """Drop the connections."""
        ...


#: Builds a link: ``(address, timeout) -> link``; the router passes Twisted's.
Connect = Callable[[RedisAddress, float], RedisLink]


#: Random bytes from the OS for :func:`propose`, drawn 4 KiB at a time (one ``os.urandom`` per
#: 512 proposals, not one per script call), each 8 handed out once; emptied in a forked child.
_pool: list[bytes] = []


def propose() -> str:
    """A new epoch, used only if Redis holds none: never one already seen, so a Redis that lost
    its data never reissues old positions under an old epoch (8 bytes from the OS's random
    source, as ``secrets.token_hex(8)``, never handed out twice)."""
    if not _pool:
        drawn = secrets.token_bytes(4096)
        _pool.extend(drawn[i : i + 8] for i in range(0, 4096, 8))
    return _pool.pop().hex()


os.register_at_fork(after_in_child=_pool.clear)


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


class Entry:
    """One entry of the shared log. Its event is decoded only when it is fed: most entries a
    node reads back are its own, already delivered, and are dropped by cursor undecoded."""

    __slots__ = ("_flat", "batch", "cursor")

    def __init__(self, batch: str, cursor: int, flat: Sequence[str]) -> None:
        self.batch = batch
        self.cursor = cursor
        self._flat = flat

    def event(self) -> StoredEvent:
        """The entry's event, with its position."""
        found = fields(self._flat)
        args, kwargs = storedtext.decode(found["d"])
        return StoredEvent(found["t"], int(found["s"]), self.cursor, float(found["p"]), args, kwargs)


def probe_id(raw: Sequence[Any]) -> tuple[int, int] | None:
    """A probe's log ID as ``(cursor, n)``; None for an event (``<cursor>-0``)."""
    cursor, n = raw[0].split("-", 1)
    return None if n == "0" else (int(cursor), int(n))


def entry(raw: Sequence[Any]) -> Entry:
    """One log entry of an event (not a probe: see :func:`probe_id`), still encoded. The script
    writes its fields in one order (``s p d t b``), so the batch id is the last."""
    flat = raw[1]
    batch = flat[9] if len(flat) == 10 and flat[8] == "b" else fields(flat)["b"]
    return Entry(batch, cursor_of(raw[0]), flat)


def stored(topic: str, raw: Sequence[Any]) -> StoredEvent:
    """The event of one entry of ``topic``'s stream."""
    found = fields(raw[1])
    args, kwargs = storedtext.decode(found["d"])
    return StoredEvent(topic, int(found["s"]), cursor_of(raw[0]), float(found["p"]), args, kwargs)


def event_args(batch: Sequence[NewEvent]) -> list[str]:
    """``APPEND``'s four arguments per event: topic, max_events, max_age and the payload
    ``[args, kwargs]`` as stored text (:func:`broker.history.storedtext.encode`: compact JSON,
    bytes kept; encoded once, here, or from the event's ``args_json``: the script stores the
    text as it is)."""
    args: list[str] = []
    encode = storedtext.encode
    last: Any = None  # a batch's events mostly share one topic's retention: its words made once
    kept = age = ""
    for event in batch:
        retention = event.retention
        if retention is not last:
            last, kept, age = retention, str(retention.max_events), repr(float(retention.max_age))
        args += [event.topic, kept, age, encode(event.args, event.kwargs, event.args_json)]
    return args
