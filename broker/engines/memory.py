"""The default store: history in the router's memory, lost (new epoch) on restart.

It implements :class:`broker.history.HistoryStore` synchronously underneath:
its coroutines never suspend, so a batch is stored before the router goes on.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence

from broker.core.ratelimit import Quota
from broker.history import (
    DEFAULT_MAX_TOPICS,
    NO_HISTORY,
    Appended,
    Feed,
    Lost,
    NewEvent,
    Once,
    Retention,
    Snapshot,
    StoredEvent,
    stored_event,
)


class _Topic:
    __slots__ = ("events", "last_cursor", "last_seq", "trimmed_cursor")

    def __init__(self) -> None:
        self.events: deque[StoredEvent] = deque()
        self.last_seq = 0
        #: cursor of this topic's latest event
        self.last_cursor = 0
        #: highest cursor among this topic's trimmed events (0: nothing trimmed)
        self.trimmed_cursor = 0


def _trim(state: _Topic, retention: Retention, now: float) -> None:
    """Drop what ``retention`` no longer keeps of ``state`` at ``now``, oldest first: after a run of
    appends to one topic, what trimming after each of them would have left."""
    events = state.events
    horizon = now - retention.max_age
    while events and (len(events) > retention.max_events or events[0].published_at < horizon):
        state.trimmed_cursor = events.popleft().cursor


class MemoryStore:
    """Per-topic deques; O(1) append, O(matching events) reads.

    At most ``max_topics`` topics are kept: a new topic beyond that evicts the
    least recently published one with all its history (see docs/positions.md).
    """

    #: One node's history: topics without history never reach it, and its publish gate keeps
    #: the HTTP API's limits (see ``HistoryStore.shared``).
    shared = False

    def __init__(self, clock: Callable[[], float] = time.time, max_topics: int = DEFAULT_MAX_TOPICS) -> None:
        if max_topics < 1:
            raise ValueError(f"max_topics must be at least 1, not {max_topics}")
        self.epoch = secrets.token_hex(8)
        self.clock = clock
        self.max_topics = max_topics
        #: least recently published first
        self._topics: OrderedDict[str, _Topic] = OrderedDict()
        self._cursor = 0
        #: highest cursor any evicted topic had issued (0: nothing evicted)
        self._evicted_cursor = 0

    async def append(self, batch: Sequence[NewEvent], once: Once | None = None) -> Appended:
        """Store ``batch`` in order (:meth:`broker.history.HistoryStore.append`), at one ``clock()``
        time as the SQLite store does."""
        now = self.clock()
        stored: list[StoredEvent] = []
        state: _Topic | None = None
        topic, retention = "", NO_HISTORY  # stand-ins until the first event (state None)
        for event in batch:
            if state is None or event.topic != topic or event.retention is not retention:
                if state is not None:
                    _trim(state, retention, now)  # the run of appends to one topic before
                topic, retention = event.topic, event.retention
                state = self._state(topic)
            state.last_seq += 1
            self._cursor += 1
            state.last_cursor = self._cursor
            made = stored_event(topic, state.last_seq, self._cursor, now, event.args, event.kwargs)
            state.events.append(made)
            stored.append(made)
        if state is not None:
            _trim(state, retention, now)
        return Appended(self.epoch, tuple(stored))

    async def read(self, topics: Callable[[str], bool], cursor: int, limit: int) -> Snapshot:
        """One snapshot (:meth:`broker.history.HistoryStore.read`): nothing runs in between."""
        return Snapshot(self.epoch, self._cursor, self._after(topics, cursor, limit))

    def subscribe(self, feed: Feed, lost: Lost | None = None) -> None:
        """Nothing to feed: only this process appends to its memory."""

    def _state(self, topic: str) -> _Topic:
        """``topic``'s events, made the most recently published (a new topic beyond
        ``max_topics`` evicts the least recently published one)."""
        state = self._topics.get(topic)
        if state is None:
            if len(self._topics) >= self.max_topics:
                _, evicted = self._topics.popitem(last=False)
                self._evicted_cursor = max(self._evicted_cursor, evicted.last_cursor)
            state = self._topics[topic] = _Topic()
        else:
            self._topics.move_to_end(topic)
        return state

    def _after(self, topics: Callable[[str], bool], cursor: int, limit: int) -> Sequence[StoredEvent] | None:
        # Evicted topics are forgotten by name, so any of them may match: a cursor
        # below the last evicted event can no longer be answered gaplessly.
        if self._evicted_cursor > cursor:
            return None
        found: list[StoredEvent] = []
        for topic, state in self._topics.items():
            if not topics(topic):
                continue
            if state.trimmed_cursor > cursor:
                return None
            found.extend(e for e in state.events if e.cursor > cursor)
        found.sort(key=lambda e: e.cursor)
        return found[:limit]

    def cursor(self) -> int:
        """The highest cursor issued (0: none yet)."""
        return self._cursor

    async def admit(self, key_id: str, nonce: str, ttl: float, quota: Quota | None = None) -> float | None:
        """Always: one node's nonces and rate limits are its own publish gate's to refuse."""
        return 0.0

    def problem(self) -> None:
        """Nothing: an engine inside the node has nothing to lose contact with."""
        return None

    def close(self) -> None:
        """Forget everything."""
        self._topics.clear()
