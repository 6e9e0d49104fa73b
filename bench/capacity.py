"""Capacity: memory per idle subscribed connection, the most connections one node holds,
and how long one broadcast takes to reach all of them.

Why this shape: a dashboard fleet is mostly idle sockets, so what limits a
node is what each connection costs while it waits, and how long one event
takes to reach every one of them. The node runs Broker's project config with
a bench-only change (``max_connections`` and the listen backlog raised, since
the shipped 10,000 is a safety limit, not a capacity); clients are lean raw
WebSocket subscribers (:mod:`bench.wsload`) in several processes, their source
addresses spread over 127.0.0.2.. so ephemeral ports never run out. Every
process raises its soft file limit to the hard one before starting.

The ramp goes 1k, 10k, then up in steps toward 60,000 until a step cannot be
completed or the time budget is spent, and the Markdown names what stopped
it with the measured numbers (on this sandbox: RLIMIT_NOFILE, hard 20,000 per
process, which no process here may raise). Memory per connection is the RSS
growth of the router worker (and of the whole node: controller + router)
divided by the connections added. Quick mode measures 1k only.

    .venv/bin/python -m bench.capacity [--quick]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from bench.report import PLOTS, Progress, Section, progress
from bench.wsload import Fleet, raise_nofile
from tests.node import BACKEND_SECRET, Node
from tests.rawwamp import PUBLISH, RawWamp

TOPIC = "public.capacity"
PAYLOAD = {"symbol": "ACME", "price": 123.45, "volume": 1000, "note": "x" * 40}
TARGET = 60_000
#: Connections per measured level: 1k and 10k for memory, then steps toward TARGET.
LEVELS = [1_000, 10_000, *range(12_500, TARGET + 1, 2_500)]
#: Bench-only transport limits: far above TARGET, and the kernel's somaxconn here.
MAX_CONNECTIONS = 100_000
BACKLOG = 4_096
#: Broadcasts per level; the median is reported (one can land on a burst of pings or a GC pass).
BROADCASTS = 3


def bench_config(config: dict[str, Any]) -> None:
    transport = config["workers"][0]["transports"][0]
    transport["max_connections"] = MAX_CONNECTIONS
    transport["endpoint"]["backlog"] = BACKLOG


@dataclass
class Level:
    connections: int
    router_mb: float
    node_mb: float
    router_fds: int
    broadcast_ms: float | None
    reached: int


def rss_mb(pid: int) -> float:
    return float(psutil.Process(pid).memory_info().rss) / 2**20


def open_fds(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


def nofile_limit(pid: int) -> str:
    """``soft/hard`` of RLIMIT_NOFILE as the kernel shows it for ``pid``."""
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return f"{soft}/{hard}"
    return "?"


def broadcast(publisher: RawWamp, fleet: Fleet, timeout: float) -> tuple[float | None, int]:
    """Publish one event; milliseconds until the last live connection got it, and how many did."""
    since = time.monotonic()
    publisher.send([PUBLISH, publisher.next_id(), {"acknowledge": True}, TOPIC, [PAYLOAD], {}])
    publisher.recv(timeout)
    result = fleet.wait_event(since, timeout)
    if result["reached"] < result["live"] or not result["reached"]:
        return None, int(result["reached"])
    return (result["last_at"] - since) * 1000, int(result["reached"])


def measure(
    node: Node, router: int, quick: bool, budget: float, report: Progress
) -> tuple[list[Level], dict[str, float], str]:
    """Ramp the connections; the levels measured, the idle baseline, and why the ramp stopped."""
    baseline = {"router_mb": rss_mb(router), "node_mb": rss_mb(node.pid) + rss_mb(router)}
    publisher = RawWamp(node.ws_url, origin=node.origin)
    publisher.hello(authid="backend", secret=BACKEND_SECRET)
    fleet = Fleet(node.ws_url, node.origin, TOPIC, processes=2 if quick else 4)
    deadline = time.monotonic() + budget
    levels: list[Level] = []
    stopped = f"reached the target of {TARGET:,}"
    try:
        for target in [1_000] if quick else LEVELS:
            if time.monotonic() > deadline:
                stopped = "the section's time budget was spent"
                break
            current = levels[-1].connections if levels else 0
            report(f"capacity: opening {target - current:,} more connections (to {target:,}) ...")
            opened = fleet.open(target - current, timeout=max(20.0, deadline - time.monotonic()))
            time.sleep(1)  # let the router settle before reading its memory
            live = fleet.stats()["live"]
            memory = rss_mb(router), rss_mb(node.pid) + rss_mb(router), open_fds(router)
            timings = [broadcast(publisher, fleet, timeout=30) for _ in range(BROADCASTS)]
            times = [ms for ms, _ in timings if ms is not None]
            ms = statistics.median(times) if len(times) == BROADCASTS else None
            levels.append(Level(live, *memory, ms, min(reached for _, reached in timings)))
            shown = "not all" if ms is None else f"{ms:.0f} ms"
            report(f"  {live:,} live, router {levels[-1].router_mb:.0f} MB, broadcast {shown}")
            if opened["failures"] or live < target:
                failures = ", ".join(f"{n}x {why}" for why, n in opened["failures"].items())
                stopped = f"a step could not be completed ({failures or 'connections closed'})"
                break
    finally:
        fleet.close()
        publisher.close()
    return levels, baseline, stopped


def per_connection_kib(level: Level, baseline: dict[str, float], key: str) -> float:
    return (getattr(level, key) - baseline[key]) * 1024 / level.connections


def plot(levels: list[Level], baseline: dict[str, float]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [0] + [lv.connections for lv in levels]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(xs, [baseline["router_mb"]] + [lv.router_mb for lv in levels], "o-", label="router worker")
    ax.plot(
        xs, [baseline["node_mb"]] + [lv.node_mb for lv in levels], "s-", label="node (controller + router)"
    )
    ax.set_xlabel("idle subscribed WebSocket connections")
    ax.set_ylabel("RSS (MB)")
    ax.set_title("Broker node memory, and one broadcast's time, vs connections")
    ax.grid(alpha=0.3)
    timed = [lv for lv in levels if lv.broadcast_ms is not None]
    right = ax.twinx()
    right.plot([lv.connections for lv in timed], [lv.broadcast_ms for lv in timed], "^--", color="tab:green")
    right.set_ylabel("broadcast to all (ms)", color="tab:green")
    right.set_ylim(bottom=0)
    ax.plot([], [], "^--", color="tab:green", label="broadcast to all (right axis)")
    ax.legend(loc="upper left")
    PLOTS.mkdir(parents=True, exist_ok=True)
    path = PLOTS / "capacity-memory.png"
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def hard_limit_fixed() -> str | None:
    """Why this process cannot raise its hard RLIMIT_NOFILE (the OS's message), or None if it can."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard + 1))
    except (ValueError, OSError) as exc:
        return str(exc)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))  # lowering a hard limit is allowed
    return None


def why_it_stopped(node: Node, router: int, stopped: str, last: Level) -> str:
    """The limit the ramp hit, named with the measured numbers at the ``last`` level."""
    limit = nofile_limit(router)
    hard = int(limit.split("/")[1]) if limit.split("/")[1].isdigit() else 0
    log = node.log()
    emfile = log.count("Too many open files") + log.count("EMFILE")
    text = (
        f"The ramp stopped because {stopped}. At the last level the router worker held "
        f"{last.router_fds:,} open file descriptors against its RLIMIT_NOFILE of {limit} (soft/hard)"
    )
    if hard and last.router_fds >= hard - 100:
        other = last.router_fds - last.connections
        fixed = hard_limit_fixed()
        text += (
            f": one socket per connection plus {other} other descriptors (listening socket, epoll, pipes, "
            f"logs, the publisher), so one process holds at most {hard - other:,} connections here"
        )
        if fixed is not None:
            text += f", and raising the hard limit is refused here (setrlimit: '{fixed}')"
    if emfile:
        text += f"; its log has {emfile} 'Too many open files' lines"
    return text + "."


def markdown(
    levels: list[Level], baseline: dict[str, float], stopped: str, quick: bool, elapsed: float
) -> tuple[str, bool]:
    lines = [
        "## Capacity: idle connections, memory, broadcast time",
        "",
        "Broker's project config (positions, history, token authz) with `max_connections` "
        f"{MAX_CONNECTIONS:,} and listen backlog {BACKLOG:,} (bench-only; the shipped limit is 10,000). "
        "Each connection is a lean raw-WebSocket client (JSON, anonymous) subscribed to one topic, "
        "answering the node's pings; clients in several processes, source addresses spread over "
        "127.0.0.2-9. *Broadcast* = one acknowledged publish until the last connection got the event "
        f"(median of {BROADCASTS}). Memory per connection = RSS growth since the idle node / connections.",
        "",
        "| connections | router RSS (MB) | node RSS (MB) | router KiB/conn | node KiB/conn | router fds "
        "| broadcast to all |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        f"| 0 | {baseline['router_mb']:.0f} | {baseline['node_mb']:.0f} | | | | |",
    ]
    for lv in levels:
        shown = f"{lv.broadcast_ms:.0f} ms" if lv.broadcast_ms is not None else f"only {lv.reached:,}"
        lines.append(
            f"| {lv.connections:,} | {lv.router_mb:.0f} | {lv.node_mb:.0f} "
            f"| {per_connection_kib(lv, baseline, 'router_mb'):.1f} "
            f"| {per_connection_kib(lv, baseline, 'node_mb'):.1f} | {lv.router_fds:,} | {shown} |"
        )
    ok = bool(levels) and all(lv.broadcast_ms is not None for lv in levels)
    lines += ["", f"Section time: {elapsed:.0f} s.", ""]
    if not levels:
        return "\n".join([*lines, f"No level was measured: {stopped}."]), False
    top = levels[-1]
    if quick:
        lines.append("Quick mode: 1,000 connections only; `make bench` ramps toward 60,000.")
        return "\n".join(lines), ok
    per_conn = per_connection_kib(top, baseline, "router_mb")
    at_target = baseline["node_mb"] + TARGET * per_connection_kib(top, baseline, "node_mb") / 1024
    broadcast = (
        f"; a broadcast would take about {top.broadcast_ms * TARGET / top.connections / 1000:.1f} s "
        "(linear in connections, one router core)"
        if top.broadcast_ms is not None
        else ""
    )
    lines += [
        f"**Most concurrent subscribed connections held: {top.connections:,}** (target {TARGET:,}).",
        "",
        stopped,
        "",
        f"*Estimate* for a machine whose file limit allows it: at {per_conn:.1f} KiB per connection in "
        f"the router, {TARGET:,} idle connections would need about {at_target:,.0f} MB for the whole "
        f"node{broadcast}. Memory is not what limits one node; the file limit, and then the one core "
        "a realm's router runs on (pings: one per connection every 10 s), are.",
    ]
    return "\n".join(lines), ok and top.connections >= 10_000


def run(quick: bool, progress: Progress = progress) -> Section:
    started = time.monotonic()
    soft, hard = raise_nofile(), resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    progress(f"capacity: RLIMIT_NOFILE soft {soft}, hard {hard} (raised to the hard limit)")
    node = Node(Path(tempfile.mkdtemp(prefix="broker-capacity-")), mutate=bench_config)
    try:
        node.start()
        router = node.workers[0]
        time.sleep(1)
        levels, baseline, stopped = measure(node, router, quick, budget=60 if quick else 200, report=progress)
        if not quick and levels:
            stopped = why_it_stopped(node, router, stopped, levels[-1])
    finally:
        node.stop()
    text, ok = markdown(levels, baseline, stopped, quick, time.monotonic() - started)
    plots = [plot(levels, baseline)] if levels else []
    if plots:
        text += "\n\n![Memory and broadcast time vs connections](bench/capacity-memory.png)\n"
    return Section("Capacity", text, plots, ok)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1,000 connections only")
    section = run(parser.parse_args().quick)
    print(section.markdown)
    return 0 if section.ok else 1


if __name__ == "__main__":
    sys.exit(main())
