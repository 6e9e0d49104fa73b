"""Resuming a subscription without gaps or duplicates: subscribe first, then recover.

Live events that arrive while the recovery call is under way are held back,
then released after the recovered ones, skipping every cursor already
delivered; from then on live events pass straight through (duplicates still
dropped). Cursors of different epochs are not comparable: a live event of
another epoch (a cluster whose Redis came back empty while the subscriber
stayed connected) starts the comparison again, else every event of the new
history up to the old cursor would be dropped as a duplicate. The bookkeeping
of :class:`broker.client.wamp.Gapless`, the one subscribe-then-recover loop
(``broker tail --from`` and the SDK's WAMP helper). No I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Generic, TypeVar

T = TypeVar("T")


class ResumeBuffer(Generic[T]):
    """Orders ``(cursor, item)`` pairs from recovery and the live stream into one gapless stream."""

    def __init__(self, after: int, epoch: str | None = None) -> None:
        #: the last cursor delivered
        self.last = after
        #: the epoch of ``last`` (None: not known, the first epoch seen is taken)
        self.epoch = epoch
        self.recovering = True
        self._held: list[tuple[int | None, T, str | None]] = []

    def live(self, cursor: int | None, item: T, epoch: str | None = None) -> list[T]:
        """A live event (``cursor`` None for events without a position; ``epoch`` None: the
        buffer's own): what to deliver now."""
        if self.recovering:
            self._held.append((cursor, item, epoch))
            return []
        return self._pass([(cursor, item, epoch)])

    def recovered(self, events: Iterable[tuple[int, T]]) -> list[T]:
        """A page of recovered events, in cursor order: what to deliver now."""
        return self._pass((cursor, item, None) for cursor, item in events)

    def finish(self) -> list[T]:
        """Recovery is complete: release the held live events (in arrival order)."""
        self.recovering = False
        held, self._held = self._held, []
        return self._pass(held)

    def _pass(self, events: Iterable[tuple[int | None, T, str | None]]) -> list[T]:
        out = []
        for cursor, item, epoch in events:
            if epoch is not None and epoch != self.epoch:
                if self.epoch is not None:
                    self.last = 0  # a new history: its cursors start again
                self.epoch = epoch
            if cursor is None:
                out.append(item)
            elif cursor > self.last:
                self.last = cursor
                out.append(item)
        return out
