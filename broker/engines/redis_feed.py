"""What the Redis engine feeds its node, and when: cursor bookkeeping over the shared log.

Why a module of its own: the engine's ordering rules (see
:mod:`broker.engines.redis`) are pure bookkeeping over cursors, apart from
the Redis calls that bring the entries: the entries read or returned with an
append wait here, keyed by cursor, and are handed to the feed in cursor order,
never past an append of this node still waiting for its answer.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from broker.engines import redis_wire as wire
from broker.history import Appended, Feed, Lost

_log = logging.getLogger("broker.engines.redis")


class Feeder:
    """The log entries this node holds back, and how far it has fed."""

    def __init__(self, epoch: str) -> None:
        #: the epoch the entries belong to (the engine's)
        self.epoch = epoch
        #: the highest cursor delivered here (fed, or appended and answered)
        self.fed = 0
        #: the highest cursor the reader has taken from the log
        self.read = 0
        #: the highest cursor seen from Redis
        self.top = 0
        self.buffer: dict[int, wire.Entry] = {}
        #: batch ids of this node's appends sent and not yet answered to their callers
        self.inflight: set[str] = set()
        self.feed: Feed | None = None
        self.lost: Lost | None = None  # called with cursors the log lost before the reader got them

    def reset(self, epoch: str) -> None:
        """A new history: nothing fed, read or seen of it yet."""
        self.epoch = epoch
        self.fed = self.read = self.top = 0
        self.buffer.clear()

    def from_log(self, entries: list[wire.Entry]) -> None:
        """Entries the reader read, in log order: cursors before the first that the log no longer
        holds are lost; then feed what comes next."""
        first = next((e.cursor for e in entries if e.cursor > self.fed), None)
        if first is not None and first > self.fed + 1 and not self.buffer:
            self.skip(self.fed + 1, first - 1)
        self.take(entries)
        self.drain()

    def bridge(self, upto: int) -> None:
        """Feed what is buffered up to ``upto``; cursors missing from it the log no longer holds."""
        self.drain()
        while self.fed < upto:
            following = min((c for c in self.buffer if c <= upto), default=upto + 1)
            if following == self.fed + 1:
                return  # an append of this node still in flight: it goes first
            self.skip(self.fed + 1, following - 1)
            self.drain()

    def skip(self, low: int, high: int) -> None:
        """Go on past cursors ``low`` to ``high``, trimmed from the log before this node read
        them: ``lost`` first, so the sessions that may have missed them learn it."""
        _log.warning("Redis log lost cursors %d to %d: not delivered here", low, high)
        self.report(low, high)
        self.advance(high)

    def report(self, low: int, high: int | None) -> None:
        """Tell ``lost`` that cursors ``low`` to ``high`` (None: all from ``low`` on, a reset
        history) will not be fed; a failure there is logged, the feed goes on."""
        try:
            if self.lost is not None:
                self.lost(low, high)
        except Exception:
            _log.exception("Redis log: reporting lost cursors %d to %s failed", low, high or "the end")

    def advance(self, cursor: int) -> None:
        """Everything up to ``cursor`` is delivered here."""
        if cursor <= self.fed:
            return
        buffer = self.buffer
        if buffer:  # the fewer to look at: the cursors passed, or what is buffered
            if cursor - self.fed < len(buffer):
                for old in range(self.fed + 1, cursor + 1):
                    buffer.pop(old, None)
            else:
                for old in [c for c in buffer if c <= cursor]:
                    del buffer[old]
        self.fed = cursor
        self.read = max(self.read, cursor)
        self.top = max(self.top, cursor)

    def take(self, entries: Iterable[wire.Entry]) -> None:
        """Hold the entries not delivered yet (an entry of this node's is, once answered)."""
        for entry in entries:
            cursor = entry.cursor
            if cursor > self.fed:
                self.buffer[cursor] = entry
                self.read = max(self.read, cursor)
                self.top = max(self.top, cursor)

    def drain(self) -> None:
        """Feed the buffered entries that come next, in cursor order, up to one still in flight."""
        run: list[wire.Entry] = []
        while (entry := self.buffer.get(self.fed + 1)) is not None and entry.batch not in self.inflight:
            del self.buffer[self.fed + 1]
            self.fed += 1
            if run and run[-1].batch != entry.batch:
                self._hand(run)
                run = []
            run.append(entry)
        self._hand(run)

    def _hand(self, run: list[wire.Entry]) -> None:
        if run and self.feed is not None:
            self.feed(Appended(self.epoch, tuple(entry.event() for entry in run)))
