"""``make faults``: every fault scenario at its long size, written to docs/reliability.md.

Why one entry point: like ``make bench``, the figures only mean something
with the machine, the versions and the command beside them. Each scenario
starts its own node (or nodes) from the project's config and stops it; one
that raises is reported as failing with the error instead of ending the run.
The doc is written either way; the exit status is 1 if any promise failed.

    .venv/bin/python -m tests.faults.run [--bounded]
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from tests.faults import BOUNDED, LONG, Finding, Scale, crash, drops, failed, floods, fuzz, replay, stall
from tests.node import ROOT, Node

OUTPUT = ROOT / "docs" / "reliability.md"
Scenario = Callable[[Path, Scale], list[Finding]]


def on_a_node(run: Callable[[Node, Scale], list[Finding]], mutate: Any = None) -> Scenario:
    """A scenario that needs one node from the project's config (changed by ``mutate``): started
    here, stopped after."""

    def scenario(workdir: Path, scale: Scale) -> list[Finding]:
        node = Node(workdir, mutate=mutate).start()
        try:
            return run(node, scale)
        finally:
            node.stop()

    return scenario


SCENARIOS: list[tuple[str, Scenario]] = [
    ("fuzzing", on_a_node(fuzz.run)),
    ("subscribers dropping", on_a_node(drops.run)),
    ("nodes stopped mid-stream", crash.run),
    ("stalled subscriber", on_a_node(stall.run)),
    ("floods", on_a_node(floods.run)),
    ("slowloris", on_a_node(floods.run_slowloris, floods.small_budget)),
    ("replays across a restart", replay.run),
]


def guarded(title: str, scenario: Scenario, workdir: Path, scale: Scale) -> list[Finding]:
    try:
        return scenario(workdir, scale)
    except Exception:  # a scenario that breaks is a failed row, the others still run
        tail = traceback.format_exc().strip().splitlines()[-1]
        return [Finding(title, f"the scenario raised: {tail[:300]}", False)]


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def document(scale: Scale, rows: list[tuple[str, Finding]], minutes: float) -> str:
    command = ".venv/bin/python -m tests.faults.run" + (" --bounded" if scale is BOUNDED else "")
    broken = [f for _, f in rows if not f.ok]
    lines = [
        "# Reliability",
        "",
        f"Written by `make faults` (`{command}`) on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC in {minutes:.1f} "
        f"minutes, at the **{scale.name}** size (`make test` runs every scenario at the bounded size and "
        "fails on any broken promise). Every scenario starts its own node from `.crossbar/config.json` on "
        "an ephemeral port and talks to it over loopback with clients written from the wire protocol "
        "(`tests/faults/`), as a client nobody on the project wrote would.",
        "",
        f"Machine: {platform.machine()}, {platform.system()} {platform.release()}, Python "
        f"{platform.python_version()}, crossbar {version('crossbar')}, autobahn {version('autobahn')}, "
        f"Twisted {version('twisted')}.",
        "",
        f"**{len(rows) - len(broken)} of {len(rows)} promises hold.**",
        "",
        "| scenario | what was done | figure | verdict |",
        "| --- | --- | --- | --- |",
        *(
            f"| {cell(title)} | {cell(f.what)} | {cell(f.figure)} | {'holds' if f.ok else '**FAILS**'} |"
            for title, f in rows
        ),
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--bounded", action="store_true", help="the sizes make test uses (a few minutes)")
    args = parser.parse_args()
    scale = BOUNDED if args.bounded else LONG
    started = time.monotonic()
    rows: list[tuple[str, Finding]] = []
    with tempfile.TemporaryDirectory(prefix="broker-faults-") as tmp:
        for n, (title, scenario) in enumerate(SCENARIOS):
            print(f"[{(time.monotonic() - started) / 60:5.1f} min] {title}", file=sys.stderr, flush=True)
            for finding in guarded(title, scenario, Path(tmp) / f"s{n}", scale):
                print(f"    {finding.verdict}: {finding.what}: {finding.figure}", file=sys.stderr, flush=True)
                rows.append((title, finding))
    OUTPUT.write_text(document(scale, rows, (time.monotonic() - started) / 60))
    print(f"wrote {OUTPUT.relative_to(ROOT)}", file=sys.stderr)
    return 1 if failed([f for _, f in rows]) else 0


if __name__ == "__main__":
    sys.exit(main())
