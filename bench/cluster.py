"""The cluster section: several nodes as one broker through Redis, measured against one node and
against python-socketio on Redis.

Why: a cluster is only worth running if going through Redis costs little
and the nodes together hold what one cannot. Three parts, one run:

* **fan-out** with :mod:`bench.fanout`'s method and load generator (same
  events, window, latency rate): Broker's memory engine on one node, the Redis
  engine on one node, three nodes on one Redis (subscribers spread over all
  three, the publisher on node 1), three nodes with the subscribers on nodes 2
  and 3 only (every delivery crosses Redis: the hop's cost), and three
  python-socketio servers sharing one Redis through ``AsyncRedisManager``;
* **latency** across nodes versus on one node, from the same cases;
* **capacity**: 60,000 subscribed connections (:mod:`bench.cluster_capacity`).

The issue's targets are reported as met or not with the figures, never
asserted; the section fails (not ok) when a Broker case lost events, a
Broker system did not start, or the capacity part did not hold its target.

    .venv/bin/python -m bench.cluster [--quick]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable

from bench import cluster_capacity, fanout
from bench import report as report_module
from bench.fanout import LATENCY_RATE, Case
from bench.report import Progress, Section, progress
from bench.systems import Server
from bench.systems.broker_node import BrokerNode
from bench.systems.cluster import BrokerCluster, SocketIOCluster
from bench.systems.loadgen import LoadGenerator

SUBSCRIBERS = (1, 100, 1000)
QUICK_SUBSCRIBERS = (1, 100)
MEMORY = "Broker, memory engine, 1 node"
REDIS = "Broker, Redis engine, 1 node"
THREE = "3 Broker nodes, Redis"
ACROSS = "3 Broker nodes, Redis, subscribers on nodes 2-3"
SOCKETIO = "3 python-socketio servers, Redis"
#: Systems whose lost events fail the section (python-socketio's are findings about it).
BROKER_SYSTEMS = (MEMORY, REDIS, THREE, ACROSS)
#: Every system runs half the fan-out section's events (the Redis engine publishes ~1k/s at N=1).
DELIVERIES_SCALE = 0.5
#: The issue's targets.
DELIVERY_RATIO, DELIVERY_N = 0.8, 100
PUBLISH_RATIO = 0.5
HOP_P99_MS = 2.0


def systems() -> list[Server]:
    """Every system, the memory engine first (the ratios are to it)."""
    servers: list[Server] = [
        BrokerNode(MEMORY, serializers=("json",)),
        BrokerCluster(REDIS, nodes=1),
        BrokerCluster(THREE, nodes=3),
        BrokerCluster(ACROSS, nodes=3, subscriber_nodes=(1, 2)),
        SocketIOCluster(SOCKETIO, servers=3),
    ]
    for server in servers:
        server.deliveries_scale = DELIVERIES_SCALE
    return servers


def measure(quick: bool, report: Progress) -> list[Case]:
    """Every system at every N on one long-lived load generator, one system at a time."""
    subscribers = report_module.SELECTION.ns(QUICK_SUBSCRIBERS if quick else SUBSCRIBERS)
    loadgen = LoadGenerator(fanout.PROCESSES)
    cases: list[Case] = []
    try:
        for server in report_module.SELECTION.servers(systems()):
            cases += fanout.measure_system(loadgen, server, subscribers, quick, report)
    finally:
        loadgen.close()
    return cases


# -- the Markdown --------------------------------------------------------------


def _missing(case: Case) -> int:
    return case.expected + case.latency_expected - case.delivered - case.latency_delivered


def lost(case: Case) -> int:
    """Deliveries of events acknowledged to the publisher that did not arrive (both runs).

    A refused publish (the node answered ``broker.error.history_unavailable``:
    overloaded, or its Redis call outlasted the store's timeout) is not owed to
    anyone: the publisher was told. The load generator counts events, it does not name
    them, so with refusals this is the shortfall beyond what the refusals explain.
    """
    return max(0, _missing(case) - case.refused * case.subscribers)


def refused_delivered(case: Case) -> int:
    """Deliveries of refused publishes that arrived anyway: the script ran after the node had
    stopped waiting for it, so the event was stored and the log delivered it."""
    return max(0, case.refused * case.subscribers - _missing(case))


def sound(case: Case) -> bool:
    """Both runs ran, nothing acknowledged was lost, every publish was answered, nobody dropped."""
    return case.latency_expected > 0 and lost(case) == 0 and not case.unanswered and not case.dropped


def _by(cases: list[Case]) -> dict[tuple[str, int], Case]:
    return {(c.system, c.subscribers): c for c in cases if sound(c)}


def _saturated(case: Case) -> bool:
    """Offered more than it delivers at saturation: its latency measures a growing queue."""
    return case.rate < LATENCY_RATE


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def _met(ok: bool | None) -> str:
    return "not measured" if ok is None else "**met**" if ok else "**not met**"


def targets(cases: list[Case]) -> list[str]:
    """One row per target and N: the figures, and whether the target is met."""
    by = _by(cases)
    ns = sorted({c.subscribers for c in cases})
    rows = []
    for n in [n for n in ns if n >= DELIVERY_N]:
        r = _ratio(*(getattr(by.get((s, n)), "rate", None) for s in (REDIS, MEMORY)))
        shown = "-" if r is None else f"{by[REDIS, n].rate:,.0f} / {by[MEMORY, n].rate:,.0f} = {r:.2f}"
        rows.append(
            (f"Redis engine ≥ {DELIVERY_RATIO}x memory deliveries/s, N={n}", shown, r, DELIVERY_RATIO)
        )
    if 1 in ns:
        r = _ratio(*(getattr(by.get((s, 1)), "rate", None) for s in (REDIS, MEMORY)))
        shown = "-" if r is None else f"{by[REDIS, 1].rate:,.0f} / {by[MEMORY, 1].rate:,.0f} = {r:.2f}"
        rows.append((f"Redis engine ≥ {PUBLISH_RATIO}x memory publishes/s, N=1", shown, r, PUBLISH_RATIO))
    lines = ["| target | figures | |", "| --- | --- | --- |"]
    for name, shown, r, floor in rows:
        lines.append(f"| {name} | {shown} | {_met(None if r is None else r >= floor)} |")
    for n in ns:
        across, local = by.get((ACROSS, n)), by.get((REDIS, n))
        name = f"p99 added by the hop ≤ {HOP_P99_MS:g} ms, N={n}"
        if across is None or local is None or across.p99_ms is None or local.p99_ms is None:
            lines.append(f"| {name} | - | {_met(None)} |")
        elif _saturated(across) or _saturated(local):
            lines.append(
                f"| {name} | saturated at {LATENCY_RATE:,} deliveries/s: queueing, not the hop | - |"
            )
        else:
            hop = across.p99_ms - local.p99_ms
            shown = f"{across.p99_ms:.1f} across - {local.p99_ms:.1f} on one node = {hop:+.1f} ms"
            lines.append(f"| {name} | {shown} | {_met(hop <= HOP_P99_MS)} |")
    for n in ns:
        broker, sio = by.get((THREE, n)), by.get((SOCKETIO, n))
        name = f"3 Broker nodes ahead of 3 python-socketio servers (Redis), N={n}"
        if broker is None or sio is None:
            lines.append(f"| {name} | - | {_met(None)} |")
            continue
        shown = f"{broker.rate:,.0f} vs {sio.rate:,.0f} deliveries/s ({broker.rate / sio.rate:.2f}x)"
        lines.append(f"| {name} | {shown} | {_met(broker.rate > sio.rate)} |")
    return lines


def _cell_rate(cases: list[Case]) -> Callable[[Case], str]:
    by = _by(cases)

    def cell(case: Case) -> str:
        if not sound(case):
            return "failed"
        base = by.get((MEMORY, case.subscribers))
        r = _ratio(case.rate, base.rate if base else None)
        per_publish = case.rate / case.subscribers
        return f"{case.rate / 1000:.1f}k ({r:.2f}), {per_publish:,.0f} pub/s" if r else f"{case.rate:,.0f}"

    return cell


def _cell_latency(case: Case) -> str:
    if not sound(case) or case.p50_ms is None or case.p99_ms is None:
        return "failed"
    return f"{case.p50_ms:.1f} / {case.p99_ms:.1f}" + (" (sat.)" if _saturated(case) else "")


def refusals(cases: list[Case]) -> list[str]:
    """One line per case in which a node refused publishes, or none."""
    refused = [c for c in cases if c.refused]
    if not refused:
        return ["No publish was refused."]
    lines = ["Publishes refused (both runs of the case; the publisher got an error):", ""]
    for c in refused:
        lines.append(
            f"- {c.system}, N={c.subscribers}: {c.refused:,} refused, "
            f"{refused_delivered(c):,} deliveries of them arrived anyway"
        )
    return lines


def fanout_markdown(cases: list[Case]) -> list[str]:
    """The fan-out and latency parts of the cluster section."""
    lines = [
        "### Fan-out through Redis: one node, three nodes, python-socketio",
        "",
        f"The fan-out section's method and load generator, with {DELIVERIES_SCALE:.0%} of its events for "
        "every system (one publisher, N subscribers over "
        f"{fanout.PROCESSES} client processes, ~100-byte JSON, {fanout.WINDOW} publishes in flight; "
        f"latency at {LATENCY_RATE:,} deliveries/s in total). Each system has its own redis-server "
        "(no persistence), started and stopped with it; Redis's CPU counts as the server's. "
        f"**{MEMORY}** is the fan-out section's Broker (JSON); **{REDIS}** the same node with "
        "`BROKER_REDIS_URL` (one Lua script call in flight, carrying every batch published meanwhile, "
        "each delivered by the origin after it answers); "
        f"**{THREE}**: subscribers round-robin over nodes 1-3, the publisher on node 1 "
        f"(a third of the subscribers local, the rest through Redis's log); **{ACROSS}**: every "
        f"delivery crosses Redis; **{SOCKETIO}**: `socketio.AsyncRedisManager`, subscribers "
        "round-robin over the three, the publisher on the first (every emit goes through Redis "
        "pub/sub, also to the first server's own members). Publishes/s = deliveries/s / N. "
        "*Refused*: publishes a node answered with `broker.error.history_unavailable`: overloaded "
        "(so far only in "
        f"the latency run at N=1, which offers {LATENCY_RATE:,} publishes/s, all in flight at once), "
        "it refuses what waited half the store's timeout (2 s) before sending it: not stored; a call "
        "sent that outlasted the timeout may still have been stored (the script ran after the node "
        "stopped waiting, and the answer says so) and then it is delivered: *delivered anyway* counts "
        "those deliveries. *Lost* = deliveries missing beyond what the refusals explain (events are "
        "counted, not named): any in a Broker case fails the section; python-socketio's are shown, "
        "they do not fail it.",
        "",
        f"#### Deliveries per second at saturation (ratio to {MEMORY}), publishes per second",
        "",
        *fanout._grid(cases, _cell_rate(cases)),
        "",
        f"#### Publish-to-delivery latency at {LATENCY_RATE:,} deliveries/s: p50 / p99 ms",
        "",
        *fanout._grid(cases, _cell_latency),
        "",
        "*sat.*: the offered rate exceeds what the system delivers at saturation, so the figure is "
        f"queueing (at N=1, {LATENCY_RATE:,} publishes/s). The hop's cost is {ACROSS} over "
        f"{REDIS}: the same engine and path, the deliveries on other nodes than the publisher's. "
        f"Three routers, Redis and {fanout.PROCESSES + 1} client processes share {os.cpu_count()} "
        "cores here, so the cross-node "
        "figures include waiting for a core; nodes on machines of their own would not.",
        "",
        "#### The issue's targets",
        "",
        *targets(cases),
        "",
        *refusals(cases),
        "",
        "#### Every case",
        "",
        "| system | N | events | delivered | deliveries/s | p50 ms | p99 ms | refused (delivered anyway) "
        "| server CPU s "
        "| client CPU s | server µs/delivery | ok |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for c in cases:
        us = c.server_us_per_delivery
        lines.append(
            f"| {c.system} | {c.subscribers} | {c.events} | {c.delivered}/{c.expected} | {c.rate:,.0f} "
            f"| {fanout._ms(c.p50_ms)} | {fanout._ms(c.p99_ms)} | {c.refused:,} ({refused_delivered(c):,}) "
            f"| {c.server_cpu:.1f} "
            f"| {c.client_cpu:.1f} | {'' if us is None else f'{us:.1f}'} | {_verdict(c)} |"
        )
    return lines


def _verdict(case: Case) -> str:
    if not sound(case):
        missing = f"{lost(case):,} acknowledged events lost; " if case.latency_expected and lost(case) else ""
        return f"no: {missing}{case.error or 'failed'}"
    return "yes" if case.error is None else f"yes, nothing lost ({case.error})"


def fanout_ok(cases: list[Case]) -> bool:
    """No Broker case lost an event or failed to start (python-socketio's are findings)."""
    return bool(cases) and all(sound(c) for c in cases if c.system in BROKER_SYSTEMS)


def run(quick: bool, progress: Progress = progress) -> Section:
    """The section for :mod:`bench.run`: fan-out and latency, then capacity."""
    started = time.monotonic()
    cases = measure(quick, progress)
    capacity = cluster_capacity.measure(quick, progress)
    lines = [
        "## Cluster: several nodes, one Redis",
        "",
        "Broker nodes joined by `BROKER_REDIS_URL` (docs/cluster.md), on this one machine: every "
        "node, Redis and the load generators share its cores.",
        "",
        *fanout_markdown(cases),
        "",
        *cluster_capacity.markdown(capacity, quick),
        "",
        f"Section time: {time.monotonic() - started:.0f} s.",
    ]
    return Section("Cluster", "\n".join(lines) + "\n", [], fanout_ok(cases) and capacity.ok)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"N in {QUICK_SUBSCRIBERS}, 6,000 connections")
    section = run(parser.parse_args().quick)
    print(section.markdown)
    return 0 if section.ok else 1


if __name__ == "__main__":
    sys.exit(main())
