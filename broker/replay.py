"""Refusing replayed signed requests: a timestamp window plus a bounded nonce memory.

A nonce only needs remembering while its timestamp is still inside the window;
after that the timestamp check refuses the request anyway. When the memory is
full, the oldest nonce is forgotten and the window's lower edge moves up past
it, so a forgotten nonce can never be replayed: memory stays bounded and the
guarantee holds (a flood only narrows the window, it never opens a hole).
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable

from broker.errors import Replayed, Unauthenticated


class NonceCache:
    """Accepts each ``(key id, nonce)`` once, for timestamps within ``window`` seconds of now."""

    def __init__(self, window: float, capacity: int, clock: Callable[[], float] = time.time) -> None:
        self.window = window
        self.capacity = capacity
        self.clock = clock
        self._seen: set[tuple[str, str]] = set()
        self._by_time: list[tuple[float, str, str]] = []
        #: timestamps at or below this are refused (moved up when the memory is full)
        self.floor = float("-inf")

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
        if timestamp <= self.floor:
            raise Unauthenticated("timestamp too old: the replay memory is full, retry with a fresh one")

    def remember(self, key_id: str, nonce: str, timestamp: float) -> None:
        """Record a nonce, raising :class:`Replayed` if it was already used."""
        self._expire()
        if (key_id, nonce) in self._seen:
            raise Replayed(f"nonce {nonce!r} was already used: every request needs a fresh nonce")
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
