"""Refusing replayed signed requests: a timestamp window plus a bounded nonce memory.

A nonce only needs remembering while its timestamp is still inside the window;
after that the timestamp check refuses the request anyway. When the memory is
full, the oldest nonce is forgotten and the window's lower edge moves up past
it, so a forgotten nonce can never be replayed: memory stays bounded and the
guarantee holds (a flood only narrows the window, it never opens a hole).

The memory must also survive a restart, or a captured request could be sent
again to the restarted node. With a :class:`NonceJournal` (durable storage,
see :mod:`broker.engines.publish_memory`) every accepted nonce is written
before the request goes on, and a new cache starts from what the journal
kept. A caller that answers many requests per turn of its event loop may
``hold`` their nonces and :meth:`NonceCache.commit` them in one write, as
long as none of those requests goes on before that write returned (a group
commit: the HTTP API's, :mod:`broker.router.nonce_commit`). Without a
journal, nothing from before the cache's start can be ruled out, so
timestamps before ``not_before`` (the node's start) are refused: the client
signs again, with a fresh timestamp.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from broker.errors import Replayed, Unauthenticated


@dataclass(frozen=True)
class Remembered:
    """What a journal kept: the cache's state when the previous process stopped."""

    #: the cache's ``floor`` (timestamps at or below it are refused)
    floor: float
    #: when the journal began: nothing from before it was recorded
    since: float
    #: ``(key id, nonce, timestamp)`` still inside the window, oldest first
    nonces: Sequence[tuple[str, str, float]]


class NonceJournal(Protocol):
    """Durable storage for accepted nonces; every write is committed before it returns."""

    def load(self, horizon: float) -> Remembered:
        """What was kept, without nonces whose timestamp is below ``horizon``."""

    def record(self, key_id: str, nonce: str, timestamp: float, floor: float, horizon: float) -> None:
        """Keep one accepted nonce and the current ``floor``; drop nonces below
        ``horizon`` or at or below ``floor`` (they are refused by timestamp)."""

    def record_many(self, nonces: Sequence[tuple[str, str, float]], floor: float, horizon: float) -> None:
        """:meth:`record` for several ``(key id, nonce, timestamp)`` at once, in one commit."""


class NonceCache:
    """Accepts each ``(key id, nonce)`` once, for timestamps within ``window`` seconds of now.

    ``not_before`` refuses timestamps before it (the start of a node that has
    no journal); with a ``journal``, the journal's ``since`` takes its place.
    """

    def __init__(
        self,
        window: float,
        capacity: int,
        clock: Callable[[], float] = time.time,
        journal: NonceJournal | None = None,
        not_before: float = float("-inf"),
    ) -> None:
        self.window = window
        self.capacity = capacity
        self.clock = clock
        self.journal = journal
        self._seen: set[tuple[str, str]] = set()
        self._by_time: list[tuple[float, str, str]] = []
        #: remembered with ``hold``, not yet written to the journal (:meth:`commit`)
        self._held: dict[tuple[str, str], float] = {}
        #: timestamps at or below this are refused (moved up when the memory is full)
        self.floor = float("-inf")
        #: timestamps below this are refused: the memory does not reach back before it
        self.not_before = not_before
        if journal is not None:
            remembered = journal.load(clock() - window)
            self.floor, self.not_before = remembered.floor, remembered.since
            for key_id, nonce, timestamp in remembered.nonces:
                self._add(key_id, nonce, timestamp)

    def __len__(self) -> int:
        return len(self._seen)

    def check_timestamp(self, timestamp: float) -> None:
        """Raise :class:`Unauthenticated` unless ``timestamp`` is acceptable now."""
        now = self.clock()
        if abs(now - timestamp) > self.window:
            raise Unauthenticated(
                f"timestamp {timestamp:.0f} is outside the allowed window of {self.window:g} s "
                f"around the node's clock ({now:.0f})"
            )
        if timestamp < self.not_before:
            raise Unauthenticated(
                f"timestamp {timestamp:.0f} is before the node's replay memory begins "
                f"({self.not_before:.0f}, when it started without memory of earlier requests): "
                "sign the request again with a fresh timestamp"
            )
        if timestamp <= self.floor:
            raise Unauthenticated("timestamp too old: the replay memory is full, retry with a fresh one")

    def remember(self, key_id: str, nonce: str, timestamp: float, hold: bool = False) -> None:
        """Record a nonce, raising :class:`Replayed` if it was already used.

        With a journal the nonce is on disk when this returns (or the journal's
        error propagates: the request must not go on then); with ``hold``, when
        :meth:`commit` next returns, and the request must wait for that. Either
        way it is refused from now on.
        """
        self._expire()
        if (key_id, nonce) in self._seen:
            raise Replayed(f"nonce {nonce!r} was already used: every request needs a fresh nonce")
        self._add(key_id, nonce, timestamp)
        if self.journal is None:
            return
        if hold:
            self._held[(key_id, nonce)] = timestamp
        else:
            self.journal.record(key_id, nonce, timestamp, self.floor, self.clock() - self.window)

    def commit(self) -> None:
        """Write every nonce held since the last commit to the journal, in one write (the journal's
        error propagates: none of their requests may go on then; they stay refused here)."""
        held, self._held = self._held, {}
        if not held or self.journal is None:
            return
        try:
            self.journal.record_many(
                [(k, n, ts) for (k, n), ts in held.items()], self.floor, self.clock() - self.window
            )
        except BaseException:
            self._held = {**held, **self._held}  # still to write: a later commit tries them again
            raise

    def settle(self, key_id: str, nonce: str, claimed: bool) -> None:
        """Settle one nonce :meth:`remember` held, without waiting for :meth:`commit`.

        ``claimed``: a shared history engine holds the nonce's claim (Redis, for
        twice the window: as long as its timestamp is acceptable), which refuses a
        replay to any node, this one after a restart included, so it is not written
        here. Otherwise it is written now (the journal's error propagates; it stays
        held). Nothing if it is no longer held (a commit wrote it, or settled).
        """
        timestamp = self._held.pop((key_id, nonce), None)
        if timestamp is None or claimed or self.journal is None:
            return
        try:
            self.journal.record(key_id, nonce, timestamp, self.floor, self.clock() - self.window)
        except BaseException:
            self._held[(key_id, nonce)] = timestamp
            raise

    def _add(self, key_id: str, nonce: str, timestamp: float) -> None:
        self._seen.add((key_id, nonce))
        heapq.heappush(self._by_time, (timestamp, key_id, nonce))
        while len(self._seen) > self.capacity:
            oldest, k, n = heapq.heappop(self._by_time)
            self._seen.discard((k, n))
            self.floor = max(self.floor, oldest)

    def _expire(self) -> None:
        horizon = self.clock() - self.window
        while self._by_time and self._by_time[0][0] < horizon:
            _, k, n = heapq.heappop(self._by_time)
            self._seen.discard((k, n))
