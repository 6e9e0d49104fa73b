"""Resuming a subscription without gaps or duplicates: subscribe first, then recover.

Live events that arrive while the recovery call is under way are held back,
then released after the recovered ones, skipping every cursor already
delivered; from then on live events pass straight through (duplicates still
dropped). The bookkeeping of :class:`broker.client.wamp.Gapless`, the one
subscribe-then-recover loop (``broker tail --from`` and the SDK's WAMP helper).
No I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Generic, TypeVar

T = TypeVar("T")


class ResumeBuffer(Generic[T]):
    """Orders ``(cursor, item)`` pairs from recovery and the live stream into one gapless stream."""

    def __init__(self, after: int) -> None:
        #: the last cursor delivered
        self.last = after
        self.recovering = True
        self._held: list[tuple[int | None, T]] = []

    def live(self, cursor: int | None, item: T) -> list[T]:
        """A live event (``cursor`` None for events without a position): what to deliver now."""
        if self.recovering:
            self._held.append((cursor, item))
            return []
        return self._pass([(cursor, item)])

    def recovered(self, events: Iterable[tuple[int, T]]) -> list[T]:
        """A page of recovered events, in cursor order: what to deliver now."""
        return self._pass(events)

    def finish(self) -> list[T]:
        """Recovery is complete: release the held live events (in arrival order)."""
        self.recovering = False
        held, self._held = self._held, []
        return self._pass(held)

    def _pass(self, events: Iterable[tuple[int | None, T]]) -> list[T]:
        out = []
        for cursor, item in events:
            if cursor is None:
                out.append(item)
            elif cursor > self.last:
                self.last = cursor
                out.append(item)
        return out
