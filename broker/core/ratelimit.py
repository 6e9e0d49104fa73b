"""Per-publisher-key rate limits as token buckets (pure, clock injected), and the :class:`Quota`
a cluster-wide bucket is asked for."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Quota:
    """A publisher key's rate limit as a history engine shared by several nodes keeps it, one
    bucket for the whole cluster: ``per_second``, ``burst``, and ``count`` tokens to take now."""

    per_second: float
    burst: int
    count: int


class TokenBucket:
    """Allows ``rate`` events per second on average and bursts of up to ``burst``."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.time) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self._tokens = float(burst)
        self._updated = clock()

    def take(self, n: int = 1) -> float:
        """Take ``n`` tokens: 0.0 if allowed, else the seconds to wait before retrying."""
        now = self.clock()
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now
        if n > self.burst:
            return float("inf")
        if self._tokens >= n:
            self._tokens -= n
            return 0.0
        return (n - self._tokens) / self.rate
