"""Positions and bounded history: the store interface and its factory.

Every event published through Broker gets a position from the store, never
from the router: a stream ``epoch`` (new whenever the store's history starts
afresh), a ``seq`` per topic (1, 2, 3, ... without gaps) and a store-wide
``cursor`` (increasing across all topics), which lets a wildcard or prefix
subscriber ask "everything after cursor N" in one call. Stores sit behind
:class:`HistoryStore`; :mod:`broker.engines` builds one from a ``type``
string (``memory``, ``sqlite``; Milestone 2 adds ``redis``). This package is
the pure side (positions, retention policy, recovery, resume): no Twisted, no
Autobahn, no files.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

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


@dataclass(frozen=True)
class Retention:
    """How much of one topic's history to keep."""

    max_events: int
    max_age: float


class HistoryStore(Protocol):
    """Issues positions and keeps bounded history per topic.

    Appends for one topic are serialized by the caller (the router is one
    thread); implementations must make ``seq`` gapless per topic and
    ``cursor`` increasing across the store.
    """

    #: Identifies this history: it changes when the history is lost (a new memory store).
    epoch: str

    def append(
        self, topic: str, args: list[Any], kwargs: dict[str, Any], retention: Retention
    ) -> StoredEvent:
        """Store one event, trimming the topic to ``retention``; return it with its position."""

    def after(self, topics: Callable[[str], bool], cursor: int, limit: int) -> Sequence[StoredEvent] | None:
        """Events of matching topics with a cursor above ``cursor``, in cursor order.

        None when some of them were already trimmed (the caller cannot recover
        gaplessly); at most ``limit`` events otherwise.
        """

    def cursor(self) -> int:
        """The highest cursor issued so far (0 for an empty store)."""

    def close(self) -> None:
        """Release resources (files, connections)."""


#: Store types and the option keys each takes besides ``type``.
STORE_OPTIONS: Final[Mapping[str, frozenset[str]]] = {
    "memory": frozenset({"max_topics"}),
    "sqlite": frozenset({"path", "max_topics"}),
}

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
    max_topics = spec.get("max_topics", DEFAULT_MAX_TOPICS)
    low, high = MAX_TOPICS_RANGE
    if isinstance(max_topics, bool) or not isinstance(max_topics, int) or not low <= max_topics <= high:
        raise ConfigError(
            f"{path}.max_topics", f"must be an integer from {low} to {high}, not {max_topics!r}"
        )
    return spec
