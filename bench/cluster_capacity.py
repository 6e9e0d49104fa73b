"""Cluster capacity: 60,000 subscribed connections on one machine, over as many nodes as the file
limit requires, one Redis; a broadcast's time to the last connection, and memory per connection.

Why: one node holds at most one process's file limit of connections
(the capacity section: ~19,985 here, RLIMIT_NOFILE 20,000, not raisable), so
a dashboard fleet of 60,000 needs several nodes that behave as one broker.
The nodes run Broker's project config with the capacity section's bench-only
limits (:func:`bench.capacity.bench_config`) and ``BROKER_REDIS_URL`` on one
redis-server; the clients are :mod:`bench.wsload` fleets (lean raw WebSocket
subscribers, two processes per node, source addresses 127.0.0.2-9, so no
destination runs out of ephemeral ports). A broadcast is one acknowledged
publish on node 1 until the last connection on every node got it: node 1
delivers it itself, the others read it from Redis's log.
"""

from __future__ import annotations

import math
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.capacity import BROADCASTS, TOPIC, bench_config, broadcast, open_fds, rss_mb
from bench.report import Progress
from bench.systems.cluster import start_nodes, start_redis
from bench.wsload import Fleet, raise_nofile
from tests.node import BACKEND_SECRET, Node
from tests.rawwamp import RawWamp

TARGET = 60_000
QUICK_TARGET = 6_000
#: Descriptors a router worker keeps besides its connections (listening socket, epoll, logs,
#: the Redis links), with room to spare: a node is planned for its file limit minus this.
HEADROOM = 2_000
#: Client processes per node (one holds a few thousand connections at no cost to the router).
PROCESSES_PER_NODE = 2
#: Seconds to open one level's connections, at most.
OPEN_TIMEOUT = 240


@dataclass
class Level:
    """The cluster holding ``connections``: memory, descriptors, broadcast time."""

    connections: int
    node_mb: list[float]
    redis_mb: float
    router_fds: list[int]
    broadcast_ms: float | None
    reached: int


@dataclass
class Capacity:
    """What the capacity part measured, or why it stopped."""

    target: int
    nodes: int
    nofile: int
    baseline_mb: list[float] = field(default_factory=list)
    redis_baseline_mb: float = 0.0
    levels: list[Level] = field(default_factory=list)
    stopped: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Every measured broadcast reached every connection, and the target was held."""
        return (
            bool(self.levels)
            and all(lv.broadcast_ms is not None for lv in self.levels)
            and self.levels[-1].connections >= self.target
        )


def plan(target: int, nofile: int) -> int:
    """Nodes needed for ``target`` connections when one process may hold ``nofile`` descriptors
    (at least two: the cross-node path is what is measured)."""
    return max(2, math.ceil(target / max(1, nofile - HEADROOM)))


def node_rss(node: Node) -> float:
    """Controller plus router worker(s), MB."""
    return rss_mb(node.pid) + sum(rss_mb(pid) for pid in node.workers)


def levels_for(target: int) -> list[int]:
    return [target // 6, target // 2, target]


def measure(quick: bool, report: Progress) -> Capacity:
    """Start Redis and the nodes, ramp the connections level by level, broadcast at each."""
    started = time.monotonic()
    nofile = raise_nofile()
    target = QUICK_TARGET if quick else TARGET
    result = Capacity(target, plan(target, nofile), nofile)
    report(f"cluster capacity: {target:,} connections over {result.nodes} nodes (RLIMIT_NOFILE {nofile})")
    workdir = Path(tempfile.mkdtemp(prefix="broker-cluster-capacity-"))
    redis = start_redis(workdir)
    nodes: list[Node] = []
    try:
        nodes = start_nodes(workdir, result.nodes, redis.url, mutate=bench_config)
        time.sleep(1)
        result.baseline_mb = [node_rss(node) for node in nodes]
        result.redis_baseline_mb = rss_mb(redis.proc.pid)
        ramp(result, nodes, redis.proc.pid, report)
    finally:
        for node in nodes:
            node.stop()
        redis.stop()
    result.seconds = time.monotonic() - started
    return result


def ramp(result: Capacity, nodes: list[Node], redis_pid: int, report: Progress) -> None:
    publisher = RawWamp(nodes[0].ws_url, origin=nodes[0].origin)
    publisher.hello(authid="backend", secret=BACKEND_SECRET)
    targets = [(node.ws_url, node.origin) for node in nodes]
    fleet = Fleet("", "", TOPIC, processes=PROCESSES_PER_NODE * len(nodes), targets=targets)
    result.stopped = f"reached the target of {result.target:,}"
    try:
        for level in levels_for(result.target):
            current = result.levels[-1].connections if result.levels else 0
            report(f"cluster capacity: opening {level - current:,} more connections (to {level:,}) ...")
            opening = time.monotonic()
            opened = fleet.open(level - current, timeout=OPEN_TIMEOUT)
            seconds = time.monotonic() - opening
            time.sleep(1)  # let the routers settle before reading their memory
            live = fleet.stats()["live"]
            timings = [broadcast(publisher, fleet, timeout=60) for _ in range(BROADCASTS)]
            times = [ms for ms, _ in timings if ms is not None]
            measured = Level(
                live,
                [node_rss(node) for node in nodes],
                rss_mb(redis_pid),
                [open_fds(pid) for node in nodes for pid in node.workers],
                statistics.median(times) if len(times) == BROADCASTS else None,
                min(reached for _, reached in timings),
            )
            result.levels.append(measured)
            shown = "not all" if measured.broadcast_ms is None else f"{measured.broadcast_ms:.0f} ms"
            report(
                f"  {live:,} live (opened in {seconds:.0f} s), nodes {sum(measured.node_mb):.0f} MB, "
                f"broadcast {shown}"
            )
            if opened["failures"] or live < level:
                failures = ", ".join(f"{n}x {why}" for why, n in opened["failures"].items())
                result.stopped = (
                    f"a step could not be completed ({failures or 'connections closed or timed out'})"
                )
                break
    finally:
        fleet.close()
        publisher.close()


def per_connection_kib(result: Capacity, level: Level) -> float:
    """RSS growth of all nodes since they were idle, KiB per connection."""
    return (sum(level.node_mb) - sum(result.baseline_mb)) * 1024 / max(1, level.connections)


def markdown(result: Capacity, quick: bool) -> list[str]:
    """The capacity part of the cluster section."""
    lines = [
        f"### Capacity: {result.target:,} subscribed connections over {result.nodes} nodes and one Redis",
        "",
        f"One process may hold {result.nofile:,} descriptors here (RLIMIT_NOFILE hard limit, not "
        "raisable), so "
        f"{result.target:,} connections need {result.nodes} nodes (planned at the limit minus "
        f"{HEADROOM:,} each). Each node: Broker's project config, `BROKER_REDIS_URL` on one "
        "redis-server, the capacity section's bench-only transport limits. Each connection: a lean "
        "raw-WebSocket subscriber (JSON, anonymous) on one topic, answering pings; "
        f"{PROCESSES_PER_NODE} client processes per node, source addresses 127.0.0.2-9. *Broadcast* = "
        "one acknowledged publish on node 1 until the last connection on every node got it (median "
        f"of {BROADCASTS}). Memory per connection = the nodes' RSS growth (controllers + routers) "
        "since they were idle / connections. The nodes, Redis and the client processes share this "
        "machine's cores, so a broadcast's time here is their CPU shared out, not what nodes on "
        "machines of their own would take.",
        "",
        "| connections | per node | nodes RSS (MB) | KiB/conn | Redis RSS (MB) | router fds (max) "
        "| broadcast to all |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        f"| 0 | | {sum(result.baseline_mb):.0f} | | {result.redis_baseline_mb:.0f} | | |",
    ]
    for lv in result.levels:
        shown = f"{lv.broadcast_ms:.0f} ms" if lv.broadcast_ms is not None else f"only {lv.reached:,}"
        lines.append(
            f"| {lv.connections:,} | {lv.connections // result.nodes:,} | {sum(lv.node_mb):.0f} "
            f"| {per_connection_kib(result, lv):.1f} | {lv.redis_mb:.0f} | {max(lv.router_fds):,} "
            f"| {shown} |"
        )
    held = result.levels[-1].connections if result.levels else 0
    verdict = "held" if result.ok else "**not held**"
    lines += [
        "",
        f"**{held:,} concurrent subscribed connections {verdict}** (target {result.target:,}); "
        f"the ramp: {result.stopped}. Part time: {result.seconds:.0f} s.",
    ]
    if quick:
        lines += ["", f"Quick mode: {QUICK_TARGET:,} connections; `make bench` holds {TARGET:,}."]
    return lines
