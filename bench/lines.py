"""``broker publish --lines``: lines per second from standard input into a real node, none lost.

Why: before it, a program's output reached a topic one ``broker publish``
process at a time (0.7 s each). The promise is at least 5,000 lines/s over
one session, every line acknowledged. Measured end to end: the time of the
whole ``broker publish TOPIC --lines`` process (start, join, read a file of
~60-byte lines, every acknowledgement, leave), against Broker's project
config (positions, in-memory history), with one lean WebSocket subscriber
counting the events it receives (:mod:`bench.wsload`); the run is ok only if
it got every line and the command said so.

    .venv/bin/python -m bench.lines [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.fanout import cpu_seconds
from bench.report import Progress, Section, progress
from bench.systems import tree
from bench.wsload import Fleet
from tests.node import BACKEND_SECRET, BROKER, Node

TOPIC = "public.linesbench"
#: lines/s the path must sustain (issue 15)
TARGET = 5000


def write_lines(path: Path, count: int) -> None:
    """``count`` lines, JSON and plain text alternating (both parsing paths)."""
    with path.open("w") as out:
        for n in range(count):
            if n % 2:
                out.write(f"plain line {n} from a program's output, about sixty bytes\n")
            else:
                out.write(json.dumps({"n": n, "symbol": "ACME", "price": 123.45, "note": "x" * 12}) + "\n")


def run(quick: bool, progress: Progress = progress) -> Section:
    started = time.monotonic()
    count, window = (10_000, 500) if quick else (100_000, 500)
    work = Path(tempfile.mkdtemp(prefix="broker-linesbench-"))
    source = work / "lines.txt"
    write_lines(source, count)
    node = Node(work / "node")
    fleet: Fleet | None = None
    try:
        node.start()
        fleet = Fleet(node.ws_url, node.origin, TOPIC, processes=1)
        fleet.open(1, timeout=20)
        progress(f"publish --lines: {count:,} lines, window {window} ...")
        env = {**os.environ, "BROKER_BACKEND_SECRET": BACKEND_SECRET}
        command = [str(BROKER), "publish", TOPIC, "--lines", "--window", str(window), "--url", node.ws_url]
        node_pids = tree(node.pid)
        node_before = cpu_seconds(node_pids)
        children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        begin = time.monotonic()
        with source.open("rb") as stdin:
            result = subprocess.run(  # noqa: S603 (our own broker command)
                command, stdin=stdin, capture_output=True, text=True, env=env, timeout=600
            )
        elapsed = time.monotonic() - begin
        node_cpu = cpu_seconds(node_pids) - node_before
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        command_cpu = (children.ru_utime - children_before.ru_utime) + (
            children.ru_stime - children_before.ru_stime
        )
        deadline = time.monotonic() + 30  # the last acknowledged events are still on their way out
        while time.monotonic() < deadline and fleet.stats()["events"] < count:
            time.sleep(0.1)
        delivered = fleet.stats()["events"]
    finally:
        if fleet is not None:
            fleet.close()
        node.stop()
    rate = count / elapsed
    progress(
        f"  {rate:,.0f} lines/s, {delivered:,}/{count:,} delivered; CPU µs/line: command "
        f"{1e6 * command_cpu / count:.1f}, node {1e6 * node_cpu / count:.1f}"
    )
    summary = f"broker: {count} lines read, {count} published, 0 refused, 0 skipped (empty)"
    ok = result.returncode == 0 and result.stderr.strip() == summary and delivered == count
    lines = [
        "## `broker publish --lines`: a program's output into a node",
        "",
        f"{count:,} lines (~60 bytes, JSON and plain text alternating) from a file on standard input, "
        f"one session, every publish acknowledged, at most {window} in flight; Broker's project config "
        "(positions, in-memory history), one lean WebSocket subscriber counting events. The time is the "
        "whole command's (start-up, join and leave included). CPU per line: the command's (start-up "
        "included) and the node's (router and controller, the delivery to the subscriber included).",
        "",
        "| lines | seconds | lines/s | command CPU µs/line | node CPU µs/line | delivered to the subscriber "
        "| exit status |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        f"| {count:,} | {elapsed:.2f} | {rate:,.0f} | {1e6 * command_cpu / count:.1f} | "
        f"{1e6 * node_cpu / count:.1f} | {delivered:,}/{count:,} | {result.returncode} |",
        "",
        f"Target: at least {TARGET:,} lines/s — "
        + ("**met**." if rate >= TARGET else f"**not met** on this run ({rate:,.0f} lines/s)."),
        "",
        f"Section time: {time.monotonic() - started:.0f} s.",
    ]
    if not ok:
        lines += ["", f"**Fell short:** lines lost or the command failed: `{result.stderr.strip()[-300:]}`"]
    return Section("publish --lines", "\n".join(lines), [], ok)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="10,000 lines instead of 100,000")
    section = run(parser.parse_args().quick)
    print(section.markdown)
    return 0 if section.ok else 1


if __name__ == "__main__":
    sys.exit(main())
