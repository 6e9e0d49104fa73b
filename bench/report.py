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


#: A section's entry point: ``run(quick, progress) -> Section``.
SectionRunner = Callable[[bool, Progress], Section]
