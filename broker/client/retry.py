"""When to try a publish again: exponential backoff with full jitter.

Why full jitter: many backends retrying against a node that just restarted
should spread out, not arrive in waves. The delay before retry ``n`` (0-based)
is uniform in ``[0, min(cap, base * 2**n))``; a ``Retry-After`` from the node is
a floor. Pure functions of their inputs (the random draw is passed in), so the
schedule is tested exactly.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter: ``base`` seconds doubling up to ``cap``."""

    base: float = 0.2
    cap: float = 5.0

    def __post_init__(self) -> None:
        if not (0 <= self.base <= self.cap and math.isfinite(self.cap)):
            raise ValueError(f"need 0 <= backoff <= max_backoff < inf, got {self.base} and {self.cap}")

    def delay(self, retry: int, rand: float, floor: float | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (0 for the first).

        ``rand`` is a draw from ``[0, 1)``; ``floor`` (the node's ``Retry-After``)
        is the least delay returned.
        """
        ceiling = min(self.cap, self.base * 2.0**retry)
        return max(ceiling * rand, floor or 0.0)


def parse_retry_after(value: str | None) -> float | None:
    """The seconds of a ``Retry-After`` header in delta-seconds form (what the node
    sends); None if absent or in any other form."""
    if value is None or not re.fullmatch(r"[0-9]{1,9}", value.strip()):
        return None
    return float(value.strip())
