"""Positions and bounded history: the store interface and its factory.

Every event published through Broker gets a position from the store, never
from the router: a stream ``epoch`` (new whenever the store's history starts
afresh), a ``seq`` per topic (1, 2, 3, ... without gaps) and a store-wide
``cursor`` (increasing across all topics), which lets a wildcard or prefix
subscriber ask "everything after cursor N" in one call. Stores sit behind
:class:`HistoryStore`; :mod:`broker.engines` builds one from a ``type``
string (``memory``, ``sqlite``, ``redis``). The interface is
asynchronous and batch-shaped (see :class:`HistoryStore`), so an engine that
does I/O, shared by several nodes, plugs in without changing the router. This
package is the pure side (positions, retention policy, recovery, resume): no
Twisted, no Autobahn, no files.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol
from urllib.parse import unquote, urlsplit

from broker.core.ratelimit import Quota
from broker.errors import ConfigError

#: Where an event's position travels: ``kwargs[POSITION_KEY] = {"epoch", "seq", "cursor"}``.
POSITION_KEY: Final = "broker_position"


@dataclass(frozen=True)
class StoredEvent:
    """One event as the store keeps it."""

    topic: str
    seq: int
    cursor: int
    published_at: float
    args: list[Any]
    kwargs: dict[str, Any]

    def position(self, epoch: str) -> dict[str, Any]:
        """The position as subscribers see it (see docs/positions.md)."""
        return {"epoch": epoch, "seq": self.seq, "cursor": self.cursor}


_new: Final = object.__new__
_set: Final = object.__setattr__


def stored_event(
    topic: str, seq: int, cursor: int, published_at: float, args: list[Any], kwargs: dict[str, Any]
) -> StoredEvent:
    """``StoredEvent(topic, seq, cursor, published_at, args, kwargs)``, its fields set in one step:
    the frozen dataclass's ``__init__`` sets each through ``object.__setattr__``, twice the time,
    for the engines that make one per event of every batch (memory, Redis). The same object,
    equal and hashed alike."""
    event = _new(StoredEvent)
    _set(
        event,
        "__dict__",
        {
            "topic": topic,
            "seq": seq,
            "cursor": cursor,
            "published_at": published_at,
            "args": args,
            "kwargs": kwargs,
        },
    )
    return event


@dataclass(frozen=True)
class Retention:
    """How much of one topic's history to keep."""

    max_events: int
    max_age: float


#: The retention an event of a topic without history is appended with to an engine shared by
#: several nodes (:attr:`HistoryStore.shared`): kept nowhere, given no position (``seq`` 0), only
#: passed on to the other nodes in log order. Engines of one node are never given one.
NO_HISTORY: Final = Retention(max_events=0, max_age=0.0)


@dataclass(frozen=True)
class NewEvent:
    """One event to append: what a publisher sent, and how much of its topic to keep."""

    topic: str
    args: list[Any]
    kwargs: dict[str, Any]
    retention: Retention
    #: ``args`` as :func:`broker.history.eventtext.args_json` wrote them, if the publisher's
    #: path already did (an engine that keeps text makes its own from it); None: not written
    args_json: str | None = field(default=None, compare=False)


def new_event(
    topic: str, args: list[Any], kwargs: dict[str, Any], retention: Retention, args_json: str | None = None
) -> NewEvent:
    """``NewEvent(topic, args, kwargs, retention, args_json)``, its fields set in one step (as
    :func:`stored_event`), for the HTTP path that makes one per event of every batch."""
    event = _new(NewEvent)
    _set(
        event,
        "__dict__",
        {"topic": topic, "args": args, "kwargs": kwargs, "retention": retention, "args_json": args_json},
    )
    return event


@dataclass(frozen=True)
class Appended:
    """Events as an engine stored them, positions set, in append order: one batch."""

    epoch: str
    events: tuple[StoredEvent, ...]
    #: the engine already held this batch's idempotency scope (:class:`Once`): nothing was
    #: appended, the positions are those it stored the first time
    replayed: bool = False

    def positions(self) -> list[dict[str, Any] | None]:
        """Each event's position, in order; None for one of a topic without history that a shared
        engine passed on (``seq`` 0, see :data:`NO_HISTORY`)."""
        return [event.position(self.epoch) if event.seq else None for event in self.events]


@dataclass(frozen=True)
class Once:
    """An append's idempotency scope, for an engine shared by several nodes (Redis).

    The engine appends the batch only if it holds no answer for ``(key_id, key)``,
    and records its positions under it for ``ttl`` seconds in the same step;
    a scope it holds with another ``fingerprint`` is the same key reused for a
    different request (:class:`broker.errors.IdempotencyMismatch`).
    """

    key_id: str
    key: str
    #: SHA-256 of the request body
    fingerprint: str
    ttl: float


@dataclass(frozen=True)
class Claim:
    """A signed request's nonce and rate-limit tokens, for an engine that takes them in the same
    step as the request's append (one whose ``admits_in_append`` is True: Redis).

    Decided exactly as :meth:`HistoryStore.admit` would decide them alone, first: if refused,
    nothing is appended and the append raises :class:`broker.errors.NotAdmitted`. An engine
    without ``admits_in_append`` is never given one (the router calls ``admit`` first).
    """

    key_id: str
    nonce: str
    #: how long the nonce stays taken (s)
    ttl: float
    quota: Quota | None


@dataclass(frozen=True)
class Snapshot:
    """One consistent read for recovery: epoch, cursor and events as of one moment.

    ``events`` (in cursor order, none above ``cursor``) is None when some
    matching events were already trimmed or evicted.
    """

    epoch: str
    cursor: int
    events: Sequence[StoredEvent] | None


#: Where an engine hands events another process appended (positions set): the router's feed-in.
Feed = Callable[[Appended], None]

#: Where an engine says that cursors ``low`` to ``high`` will never be fed here (a shared log
#: trimmed past this node; ``high`` None: every cursor from ``low`` on, the history was reset
#: under this node, a new epoch): the router ends the sessions that may have missed them.
Lost = Callable[[int, int | None], None]


class HistoryStore(Protocol):
    """A history engine: issues positions and keeps bounded history per topic.

    The interface is asynchronous and batch-shaped so that an engine may do
    I/O (Redis, next) without blocking the router, and pay one round trip per
    batch, not per event; it stays free of Twisted (plain coroutines, which
    the router drives with ``Deferred.fromCoroutine``). Memory and SQLite
    work synchronously underneath: their coroutines never suspend, so an
    append completes, and its events are dispatched, before the router
    handles the next message, as before the seam existed.

    What every engine must guarantee (the contract suites,
    tests/test_history_stores.py and tests/test_engine_contract.py, run each
    one in :data:`broker.engines.ENGINES`):

    - ``seq`` gapless per topic (1, 2, 3, ...), ``cursor`` increasing across
      the whole store, both never reused within one ``epoch``; a batch's
      events get consecutive positions in batch order.
    - **Ordering, for an engine whose coroutines suspend**: appends resolve in
      the order they were called (at least per topic), because the router
      dispatches each batch when its append resolves; per-topic delivery
      order is append order. Batches handed to the feed (:meth:`subscribe`)
      come in cursor order, each once, never interleaved with a local batch
      out of order.
    - :meth:`read` takes epoch, cursor and events from one snapshot: no event
      appended while it runs may show in one and not the other.
    - A failed append raises (any exception) and issues no position:
      the router then refuses the publish (``broker.error.history_unavailable``).
    - **A shared engine** (:attr:`shared` True) is also given the events of
      topics without history, with retention :data:`NO_HISTORY`, in the same
      batches: it keeps them in no topic's history (no ``seq``: 0, so no
      position; no recovery returns them, no topic's ``seq`` moves), takes a
      cursor for each in its shared log and feeds them to the other nodes in
      that order like any other event. The router never gives one to an
      engine of one node.

    The Redis engine (:mod:`broker.engines.redis`) does all of the above over
    Redis shared by several nodes: one atomic script per call (carrying the batches
    queued while the previous call was in flight, each with its own answer), a read bound
    by one snapshot cursor, the epoch as last seen from Redis, and a feed of
    what the other nodes appended, read from a shared log.
    """

    #: Identifies this history: it changes when the history is lost (a new memory store).
    #: An engine shared by several processes keeps the epoch it last saw here.
    epoch: str
    #: Whether other nodes share this history (Redis). Then every event published here, with
    #: history or without (:data:`NO_HISTORY`), goes through :meth:`append` so that they get it,
    #: and the engine keeps what must hold cluster-wide for the HTTP API: nonces, idempotency
    #: answers (:class:`Once`) and rate limits (:class:`Quota`). False for an engine of one
    #: node (memory, SQLite): it pays nothing for a topic without history.
    shared: bool

    async def append(self, batch: Sequence[NewEvent], once: Once | None = None) -> Appended:
        """Store ``batch`` in order, trimming each topic to its retention; return it with positions.

        With ``once``, a shared engine appends only if no node appended under that
        scope yet, atomically with the append, else returns the stored positions
        (``replayed``) or raises :class:`broker.errors.IdempotencyMismatch`; an
        engine of one node ignores it (the node's own idempotency cache decides).
        """
        ...

    async def read(self, topics: Callable[[str], bool], cursor: int, limit: int) -> Snapshot:
        """The epoch, the highest cursor issued, and the events of matching topics with a cursor
        above ``cursor`` (at most ``limit``, in cursor order), all from one snapshot.

        ``events`` is None when some of them were already trimmed (the caller
        cannot recover gaplessly).
        """
        ...

    def cursor(self) -> int:
        """The highest cursor issued so far, as last seen (0 for an empty store): for metrics."""
        ...

    def problem(self) -> str | None:
        """What keeps the engine from storing or sharing events right now (None: nothing): a
        cheap signal, read on every ``/health`` and ``/metrics`` answer, from outcomes already seen."""
        ...

    async def admit(self, key_id: str, nonce: str, ttl: float, quota: Quota | None = None) -> float | None:
        """Take a signed request's nonce for ``ttl`` seconds and, with ``quota``, its rate-limit tokens.

        None: some node already took the nonce (a replay, refused). Else the
        seconds to wait before the key may publish this many events (0.0:
        admitted, tokens taken). The HTTP API asks before it appends. An
        engine of one node admits everything: the node's own nonce journal
        and token buckets decide; a shared engine (Redis) must refuse a nonce
        any node took, and keep one bucket per key for the whole cluster.
        """
        ...

    def subscribe(self, feed: Feed, lost: Lost | None = None) -> None:
        """Hand every batch another process appends to ``feed``, positions set, in cursor order;
        call ``lost`` before feeding past cursors that can no longer be fed (never a silent gap).

        Memory and SQLite belong to one router process: nothing else appends to
        them, so they never call ``feed`` or ``lost``.
        """
        ...

    def close(self) -> None:
        """Release resources (files, connections)."""
        ...


#: Store types and the option keys each takes besides ``type``.
STORE_OPTIONS: Final[Mapping[str, frozenset[str]]] = {
    "memory": frozenset({"max_topics"}),
    "sqlite": frozenset({"path", "max_topics"}),
    "redis": frozenset({"url", "prefix", "max_topics", "timeout", "log_max"}),
}

#: How long a Redis call may take before it fails (seconds): a publish is refused, not left hanging.
DEFAULT_REDIS_TIMEOUT: Final = 2.0
#: The range of ``timeout`` and of ``log_max`` (entries the shared log keeps, at least).
REDIS_TIMEOUT_RANGE: Final = (0.05, 60.0)
LOG_MAX_RANGE: Final = (1_000, 100_000_000)
#: What a ``prefix`` may be made of (it becomes a Redis hash tag).
_PREFIX_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")

#: Topics a store keeps by default; a new topic beyond it evicts the least recently published one.
DEFAULT_MAX_TOPICS: Final = 100_000
#: The range ``max_topics`` may take.
MAX_TOPICS_RANGE: Final = (1, 100_000_000)


def check_store_spec(spec: object, path: str = "$.history.store") -> Mapping[str, Any]:
    """Validate a store spec without creating anything; ConfigErrors name the JSON path."""
    if not isinstance(spec, Mapping):
        raise ConfigError(path, f"must be an object with a 'type', not {type(spec).__name__}")
    kind = spec.get("type", "memory")
    if not isinstance(kind, str) or kind not in STORE_OPTIONS:  # a list or dict is unhashable
        raise ConfigError(
            f"{path}.type", f"unknown store type {kind!r} (expected {' or '.join(STORE_OPTIONS)})"
        )
    unknown = sorted(set(spec) - STORE_OPTIONS[kind] - {"type"})
    if unknown:
        raise ConfigError(f"{path}.{unknown[0]}", f"unknown key {unknown[0]!r} for a {kind} store")
    if kind == "sqlite" and (not isinstance(spec.get("path"), str) or not spec["path"]):
        raise ConfigError(f"{path}.path", "the SQLite store needs a file path")
    if kind == "redis":
        _check_redis(spec, path)
    max_topics = spec.get("max_topics", DEFAULT_MAX_TOPICS)
    low, high = MAX_TOPICS_RANGE
    if isinstance(max_topics, bool) or not isinstance(max_topics, int) or not low <= max_topics <= high:
        raise ConfigError(
            f"{path}.max_topics", f"must be an integer from {low} to {high}, not {max_topics!r}"
        )
    return spec


@dataclass(frozen=True)
class RedisAddress:
    """Where Redis is: from a ``redis://[user:password@]host[:port][/db]`` URL."""

    host: str
    port: int
    db: int
    username: str | None = None
    password: str | None = None


def parse_redis_url(url: str) -> RedisAddress:
    """The address in ``url``; ValueError says what is wrong with it."""
    parts = urlsplit(url)
    if parts.scheme != "redis":
        raise ValueError(f"must be a redis://host:port/db URL, not {url!r}")
    if parts.query or parts.fragment:
        raise ValueError("takes no query or fragment")
    if not parts.hostname:
        raise ValueError("names no host")
    try:
        port = parts.port or 6379
    except ValueError:
        raise ValueError("has a port that is not a number from 1 to 65535") from None
    path = parts.path.lstrip("/")
    if path and (not path.isdigit() or int(path) > 15):
        raise ValueError(f"has database {path!r}: expected a number from 0 to 15")
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    return RedisAddress(parts.hostname, port, int(path or 0), username, password)


def _check_redis(spec: Mapping[str, Any], path: str) -> None:
    url = spec.get("url")
    if not isinstance(url, str) or not url:
        raise ConfigError(f"{path}.url", "the Redis store needs a redis://host:port/db URL")
    try:
        parse_redis_url(url)
    except ValueError as error:
        raise ConfigError(f"{path}.url", str(error)) from None
    prefix = spec.get("prefix", "broker")
    if not isinstance(prefix, str) or not prefix or not set(prefix) <= _PREFIX_CHARS or len(prefix) > 64:
        raise ConfigError(
            f"{path}.prefix", f"must be 1 to 64 letters, digits, '_', '.' or '-', not {prefix!r}"
        )
    timeout = spec.get("timeout", DEFAULT_REDIS_TIMEOUT)
    low, high = REDIS_TIMEOUT_RANGE
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not low <= timeout <= high:
        raise ConfigError(
            f"{path}.timeout", f"must be a number of seconds from {low} to {high}, not {timeout!r}"
        )
    log_max = spec.get("log_max", 100_000)
    low_n, high_n = LOG_MAX_RANGE
    if isinstance(log_max, bool) or not isinstance(log_max, int) or not low_n <= log_max <= high_n:
        raise ConfigError(f"{path}.log_max", f"must be an integer from {low_n} to {high_n}, not {log_max!r}")
