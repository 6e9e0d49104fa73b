"""Issue 16's targets, judged from one fan-out run: each met or not met, with the numbers beside it.

Why a module of its own: the fan-out section measures; this reads its cases
against the targets the issue set (frame once, deliver many), so a reader
of ``make bench`` sees at once which hold on this run and by how much,
instead of working ratios out of the tables. Pure: it takes the measured
cases (anything with the fields of :class:`bench.fanout.Case`) and the names
of the systems, and returns Markdown. A target whose cases were not measured
in this run (``--quick`` has no N=1) or failed says so rather than guessing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

#: Deliveries/s over plain crossbar's that Broker must reach at these N.
CROSSBAR_FACTOR = 3.0
CROSSBAR_N = (100, 1000)
#: At and above this N, Broker must deliver at least as fast as the bare ``websockets`` broadcast.
BARE_FROM_N = 100
#: Server CPU µs per delivered event at N = :data:`CPU_N`, at most.
CPU_US = 3.5
CPU_N = 100
#: Publishes/s at N = 1 over plain crossbar's.
PUBLISH_FACTOR = 2.0


class Measured(Protocol):
    """What a target reads of one fan-out case."""

    system: str
    serializer: str
    subscribers: int
    rate: float
    p99_ms: float | None

    @property
    def ok(self) -> bool: ...

    @property
    def server_us_per_delivery(self) -> float | None: ...


@dataclass(frozen=True)
class Names:
    """The fan-out table's names of the systems the targets compare."""

    broker: str
    baseline: str
    bare: str


def _met(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


class _Cases:
    def __init__(self, cases: Iterable[Measured]) -> None:
        self.by_key = {(c.system, c.subscribers): c for c in cases if c.serializer == "json"}

    def get(self, system: str, n: int) -> Measured | None:
        case = self.by_key.get((system, n))
        return case if case is not None and case.ok and case.rate else None

    def ns(self, system: str) -> list[int]:
        return sorted(n for s, n in self.by_key if s == system)


def _faster(cases: _Cases, system: str, other: str, n: int, factor: float) -> tuple[bool | None, str]:
    mine, theirs = cases.get(system, n), cases.get(other, n)
    if mine is None or theirs is None:
        return None, f"N={n}: not measured"
    ratio = mine.rate / theirs.rate
    return ratio >= factor, f"N={n}: {mine.rate:,.0f} / {theirs.rate:,.0f} = {ratio:.2f}x"


def _judge(name: str, results: Sequence[tuple[bool | None, str]]) -> str:
    figures = "; ".join(text for _, text in results)
    if not results or all(ok is None for ok, _ in results):
        return f"- {name}: not measured in this run ({figures or 'no case'})."
    verdict = _met(all(ok for ok, _ in results if ok is not None))
    missing = " where measured" if any(ok is None for ok, _ in results) else ""
    return f"- {name}: {verdict}{missing} — {figures}."


def verdicts(cases: Iterable[Measured], names: Names, systems: Sequence[str]) -> list[str]:
    """Markdown lines: each issue-16 target for each of ``systems`` (Broker variants), JSON cases."""
    table = _Cases(cases)
    lines: list[str] = []
    for system in systems:
        lines.append(f"**{system}** (JSON):")
        lines.append("")
        lines.append(
            _judge(
                f"deliveries/s ≥ {CROSSBAR_FACTOR:g}x plain crossbar at N = "
                + " and ".join(str(n) for n in CROSSBAR_N),
                [_faster(table, system, names.baseline, n, CROSSBAR_FACTOR) for n in CROSSBAR_N],
            )
        )
        bare_ns = [n for n in table.ns(system) if n >= BARE_FROM_N] or [BARE_FROM_N]
        lines.append(
            _judge(
                f"deliveries/s ≥ bare websockets at N ≥ {BARE_FROM_N}",
                [_faster(table, system, names.bare, n, 1.0) for n in bare_ns],
            )
        )
        lines.append(_cpu(table, system))
        lines.append(
            _judge(
                f"publishes/s at N = 1 ≥ {PUBLISH_FACTOR:g}x plain crossbar",
                [_faster(table, system, names.baseline, 1, PUBLISH_FACTOR)],
            )
        )
        lines.append(_p99(table, system, names.baseline))
        lines.append("")
    return lines


def _cpu(table: _Cases, system: str) -> str:
    name = (
        f"server CPU per delivered event ≤ {CPU_US:g} µs at N = {CPU_N} (the router's worker and the "
        "node's controller together, and redis-server where there is one: an upper bound on the router's own)"
    )
    case = table.get(system, CPU_N)
    cost = None if case is None else case.server_us_per_delivery
    if cost is None:
        return _judge(name, [(None, f"N={CPU_N}: not measured")])
    return _judge(name, [(cost <= CPU_US, f"N={CPU_N}: {cost:.2f} µs")])


def _p99(table: _Cases, system: str, baseline: str) -> str:
    """p99 per N beside plain crossbar's: the issue's "no worse than today" is judged against its docs."""
    cells = []
    for n in table.ns(system):
        mine, theirs = table.get(system, n), table.get(baseline, n)
        ours = "failed" if mine is None or mine.p99_ms is None else f"{mine.p99_ms:.1f}"
        base = "failed" if theirs is None or theirs.p99_ms is None else f"{theirs.p99_ms:.1f}"
        cells.append(f"N={n}: {ours} ms (plain crossbar {base} ms)")
    figures = "; ".join(cells) or "not measured"
    return (
        "- p99 publish-to-delivery at the latency runs' rate, per N (no worse than today's: compare "
        f"with docs/benchmarks.md) — {figures}."
    )
