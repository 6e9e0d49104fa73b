"""What each benchmark section hands to :mod:`bench.run`: its Markdown and its plots.

Why a shared shape: ``make bench`` runs several independent measurements
(fan-out side by side, capacity, HTTP publish, profile) in one process and
writes them into one docs/benchmarks.md; each section module stays runnable
on its own (``python -m bench.<name> [--quick]`` from the repository root prints its Markdown).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
#: Where sections write their PNG plots; the doc links them relative to docs/.
PLOTS = ROOT / "docs" / "bench"

#: Reports progress while a section runs (one line, flushed).
Progress = Callable[[str], None]


def progress(line: str) -> None:
    """The default :data:`Progress`: a line on stderr."""
    print(line, file=sys.stderr, flush=True)


@dataclass
class Section:
    """One part of docs/benchmarks.md.

    ``markdown`` starts with a ``## `` heading; ``plots`` are PNGs under
    :data:`PLOTS` that the Markdown links as ``bench/<name>.png``. ``ok`` is
    False when a measurement fell short (lost events, a server that did not
    start): the run still writes the doc but exits 1.
    """

    title: str
    markdown: str
    plots: list[Path] = field(default_factory=list)
    ok: bool = True


@dataclass
class Selection:
    """What ``bench.run --only ... --system ... --subscribers ...`` narrows a section to, for
    development (a full run measures everything): system names (None: all) and N (None: the
    section's own)."""

    systems: tuple[str, ...] | None = None
    subscribers: tuple[int, ...] | None = None

    def servers(self, servers: list[Any]) -> list[Any]:
        """The servers (anything with a ``name``) selected, in their order."""
        return servers if self.systems is None else [s for s in servers if s.name in self.systems]

    def ns(self, default: tuple[int, ...]) -> tuple[int, ...]:
        """The N to measure at."""
        return default if self.subscribers is None else self.subscribers


#: Set by :mod:`bench.run` before a section runs; the sections that measure systems at several N read it.
SELECTION = Selection()


#: A section's entry point: ``run(quick, progress) -> Section``.
SectionRunner = Callable[[bool, Progress], Section]
