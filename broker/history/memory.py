"""The default store: history in the router's memory, lost (new epoch) on restart."""

from __future__ import annotations

import secrets
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from broker.history import Retention, StoredEvent


class _Topic:
    __slots__ = ("events", "last_seq", "trimmed_cursor")

    def __init__(self) -> None:
        self.events: deque[StoredEvent] = deque()
        self.last_seq = 0
        #: highest cursor among this topic's trimmed events (0: nothing trimmed)
        self.trimmed_cursor = 0


class MemoryStore:
    """Per-topic deques; O(1) append, O(matching events) reads."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.epoch = secrets.token_hex(8)
        self.clock = clock
        self._topics: dict[str, _Topic] = {}
        self._cursor = 0

    def append(
        self, topic: str, args: list[Any], kwargs: dict[str, Any], retention: Retention
    ) -> StoredEvent:
        state = self._topics.get(topic)
        if state is None:
            state = self._topics[topic] = _Topic()
        state.last_seq += 1
        self._cursor += 1
        now = self.clock()
        event = StoredEvent(topic, state.last_seq, self._cursor, now, args, kwargs)
        state.events.append(event)
        horizon = now - retention.max_age
        while state.events and (
            len(state.events) > retention.max_events or state.events[0].published_at < horizon
        ):
            state.trimmed_cursor = state.events.popleft().cursor
        return event

    def after(self, topics: Callable[[str], bool], cursor: int, limit: int) -> Sequence[StoredEvent] | None:
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
        return self._cursor

    def close(self) -> None:
        self._topics.clear()
