"""Broker's standing fault suite: attacks and failures, each with a verdict.

Why: Broker promises that no event is silently lost and that one client cannot
hurt the others. Each module here is one scenario (a fuzzer, subscribers
dropping during a burst, a killed node, a stalled subscriber, ...) written
once and run at two sizes: :data:`BOUNDED` by ``make test`` (the
``tests/faults/test_*.py`` files assert every verdict), :data:`LONG` by
``make faults`` (:mod:`tests.faults.run`), which writes the table of
docs/reliability.md. A scenario returns :class:`Finding` rows: what was done,
the figure measured, and whether it holds the promise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class Scale:
    """How hard a scenario pushes: ``factor`` multiplies its counts and durations."""

    name: str
    factor: float

    def count(self, bounded: int) -> int:
        """``bounded`` (the count used by ``make test``) at this scale."""
        return max(1, round(bounded * self.factor))


BOUNDED: Final = Scale("bounded", 1.0)
LONG: Final = Scale("long", 8.0)


@dataclass(frozen=True)
class Finding:
    """One row of the reliability table."""

    what: str
    figure: str
    ok: bool
    detail: str = ""

    @property
    def verdict(self) -> str:
        return "holds" if self.ok else "FAILS"


def failed(findings: list[Finding]) -> list[Finding]:
    """The findings that break a promise (a test asserts this is empty, naming them)."""
    return [f for f in findings if not f.ok]
