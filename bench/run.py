"""``make bench``: every benchmark section in one run, written to docs/benchmarks.md.

Why one entry point: the numbers are only comparable when they come from the
same machine in the same run, and the doc must say which machine, which
versions and which command produced them. The sections run one after
another (each starts and stops its own servers, so they never share the
cores): fan-out side by side (:mod:`bench.fanout`), capacity, HTTP publish,
the router profile (:mod:`bench.router_profile`), `broker publish --lines`
(:mod:`bench.lines`) and the cluster
(:mod:`bench.cluster`: nodes sharing Redis). A section that raises
is reported as failed with the error instead of ending the run; the doc is
written either way, and the exit code is 1 if any section fell short (lost
events, a server that did not start).

Run from the repository root as a module (``bench`` and ``tests`` are
packages there), never as a script:

    .venv/bin/python -m bench.run [--quick]
    .venv/bin/python -m bench.run --only cluster [--quick] [--output FILE]
    .venv/bin/python -m bench.run --only fan-out --system 'Broker, Redis engine' --subscribers 1,100

``--only`` runs one section for development and prints its Markdown (or
writes it to ``--output``), never docs/benchmarks.md: the doc comes from one
full run. Sections still write their plots under docs/bench/.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
import traceback
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

import psutil

from bench import capacity, cluster, fanout, http_publish, lines, report, router_profile
from bench.report import ROOT, Progress, Section, SectionRunner, Selection

OUTPUT = ROOT / "docs" / "benchmarks.md"
#: The sections after fan-out, in order (fan-out runs first: the summary is its ratios).
SECTIONS: list[tuple[str, SectionRunner]] = [
    ("capacity", capacity.run),
    ("HTTP publish", http_publish.run),
    ("profile", router_profile.run),
    ("publish --lines", lines.run),
    ("cluster", cluster.run),
]


class Clock:
    """Progress lines prefixed with the time since the run started."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def __call__(self, line: str) -> None:
        minutes, seconds = divmod(int(self.elapsed), 60)
        print(f"[{minutes:02d}:{seconds:02d}] {line}", file=sys.stderr, flush=True)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> list[str]:
    memory = psutil.virtual_memory().total / 2**30
    rows = [
        ("CPU", f"{cpu_model()}, {psutil.cpu_count(logical=True)} cores ({platform.machine()})"),
        ("RAM", f"{memory:.1f} GiB"),
        ("kernel", f"{platform.system()} {platform.release()}"),
        ("Python", platform.python_version()),
        (
            "crossbar / autobahn / Twisted",
            f"{version('crossbar')} / {version('autobahn')} / {version('twisted')}",
        ),
        (
            "python-socketio / Channels / websockets",
            f"{version('python-socketio')} / {version('channels')} / {version('websockets')}",
        ),
    ]
    return ["| | |", "| --- | --- |", *(f"| {name} | {value} |" for name, value in rows)]


def guarded(title: str, runner: SectionRunner, quick: bool, clock: Clock) -> Section:
    """Run one section; an exception becomes a failed section carrying the traceback's tail."""
    clock(f"{title}: starting")
    started = clock.elapsed
    try:
        section = runner(quick, clock)
    except Exception:  # any failure of one section is reported, the others still run
        error = traceback.format_exc()
        clock(f"{title}: FAILED\n{error}")
        tail = "\n".join(error.strip().splitlines()[-6:])
        section = Section(title, f"## {title}\n\nThe section failed:\n\n```\n{tail}\n```\n", ok=False)
    clock(f"{title}: {'ok' if section.ok else 'FAILED'} in {clock.elapsed - started:.0f} s")
    return section


def document(quick: bool, summary: str, sections: list[Section], minutes: float) -> str:
    command = ".venv/bin/python -m bench.run" + (" --quick" if quick else "")
    make = "make bench-quick" if quick else "make bench"
    status = [f"- {s.title}: {'ok' if s.ok else '**failed**'}" for s in sections]
    lines = [
        "# Benchmarks",
        "",
        f"Written by `{make}` (`{command}`) on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC in "
        f"{minutes:.1f} minutes{' — a quick run: fewer cases, fewer events' if quick else ''}. "
        "Servers and load generators share the machine's cores; everything runs over loopback.",
        "",
        "## Machine",
        "",
        *machine(),
        "",
        "## Summary",
        "",
        "Fan-out deliveries/s at saturation as a ratio to plain crossbar 26.10 (JSON, same run, "
        "same machine; above 1 is faster):",
        "",
        summary,
        "",
        *status,
        "",
    ]
    return "\n".join(lines) + "\n" + "\n".join(s.markdown for s in sections)


def only(title: str, quick: bool, output: Path | None, selection: Selection) -> int:
    """Run the section ``title`` alone (narrowed to ``selection``); its Markdown to ``output`` or
    stdout; 1 if it fell short."""
    report.SELECTION = selection
    clock = Clock()
    runners: dict[str, SectionRunner] = {"fan-out": fanout.run, **dict(SECTIONS)}
    section = guarded(title, runners[title], quick, clock)
    if output is not None:
        output.write_text(section.markdown)
        clock(f"wrote {output}")
    else:
        print(section.markdown)
    return 0 if section.ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer cases and events (about 7 minutes)")
    parser.add_argument(
        "--only",
        choices=["fan-out", *(title for title, _ in SECTIONS)],
        help="run one section; its Markdown goes to stdout (or --output), not to docs/benchmarks.md",
    )
    parser.add_argument("--output", type=Path, help="with --only: write the section's Markdown here")
    parser.add_argument(
        "--system",
        action="append",
        help="with --only: measure this system (its row's name, e.g. 'Broker, Redis engine'; "
        "repeatable) and no other (fan-out, HTTP publish, cluster)",
    )
    parser.add_argument(
        "--subscribers",
        help="with --only: these N (comma-separated) instead of the section's (fan-out, cluster)",
    )
    args = parser.parse_args()
    if args.output is not None and args.output.resolve() == OUTPUT.resolve():
        parser.error(f"{OUTPUT.relative_to(ROOT)} is written by a full run only")
    if args.output is not None and not args.only:
        parser.error("--output goes with --only (a full run writes docs/benchmarks.md)")
    if (args.system or args.subscribers) and not args.only:
        parser.error("--system and --subscribers go with --only (a full run measures everything)")
    if args.only:
        ns = tuple(int(n) for n in args.subscribers.split(",")) if args.subscribers else None
        return only(args.only, args.quick, args.output, Selection(tuple(args.system or ()) or None, ns))
    clock = Clock()
    clock(f"benchmarks{' (quick)' if args.quick else ''}: writing {OUTPUT.relative_to(ROOT)}")
    cases: list[fanout.Case] = []

    def fan_out(quick: bool, progress: Progress) -> Section:
        cases.extend(fanout.measure(quick, progress))
        return fanout.section(cases, quick)

    sections = [guarded("fan-out", fan_out, args.quick, clock)]
    sections += [guarded(title, runner, args.quick, clock) for title, runner in SECTIONS]
    OUTPUT.write_text(document(args.quick, fanout.summary(cases), sections, clock.elapsed / 60))
    failed = [s.title for s in sections if not s.ok]
    clock(f"wrote {OUTPUT.relative_to(ROOT)}" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
