"""Fan-out side by side: Broker, plain crossbar, python-socketio, Django Channels, bare websockets.

Why: teams choosing a broker compare numbers, and we need to know what
Broker's features cost on the delivery path. One publisher, N subscribers
(1 … 5000), ~100-byte JSON payloads (msgpack too for the WAMP systems), every
system in the same run on the same machine, each reported as a ratio to plain
crossbar. Per case:

* **saturation** — a fixed number of events published as fast as the system
  acknowledges them (a window of unacknowledged publishes); deliveries/s is
  events received by all subscribers over the time from the first publish
  to the last delivery, and anything not received is reported as lost;
* **latency** — events at a fixed total delivery rate, each carrying
  ``time.time()`` at publish; p50/p99 publish-to-delivery on the same clock;
* **CPU** — seconds used by the server's processes and by the load
  generator's during the saturation run (psutil).

Broker runs in three variants (:mod:`bench.systems.broker_node`) so that the
difference to plain crossbar splits into history/positions, token
authorization and Broker's hooks, measured rather than guessed; as shipped
it runs once more with its subscribers on ``GET /sse`` streams. The load
generator (:mod:`bench.systems.loadgen`) spreads subscribers over several
processes speaking each protocol over raw ``websockets``. Every wait is
bounded; a system that does not start or loses events is a failed row.

    .venv/bin/python -m bench.fanout [--quick]
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

from bench import report as report_module
from bench import targets
from bench.report import PLOTS, Progress, Section, progress
from bench.systems import Client, Server, StartError
from bench.systems.bare_websockets import BareWebsockets
from bench.systems.broker_node import BrokerNode
from bench.systems.django_channels import DjangoChannels
from bench.systems.loadgen import LoadError, LoadGenerator
from bench.systems.plain_crossbar import PlainCrossbar
from bench.systems.python_socketio import PythonSocketIO

SUBSCRIBERS = (1, 10, 100, 1000, 5000)
QUICK_SUBSCRIBERS = (100, 1000)
#: Deliveries (events x subscribers) per saturation case.
DELIVERIES = 150_000
QUICK_DELIVERIES = 40_000
#: Bounds on the events per saturation case: enough at N=5000, not minutes at N=1.
MIN_EVENTS = 5
MAX_EVENTS = 20_000
#: Unacknowledged publishes in flight at saturation.
WINDOW = 100
#: The offered load of the latency runs: deliveries per second, all subscribers together.
LATENCY_RATE = 10_000
LATENCY_SECONDS = 2.0
QUICK_LATENCY_SECONDS = 1.0
#: Subscriber processes (plus one publisher process).
PROCESSES = 4
#: Seconds one run's publishing may take before it is cut short.
PUBLISH_TIMEOUT = 60
#: The N at which Broker must be within 10% of plain crossbar.
VERDICT_N = (100, 1000)
BASELINE = "plain crossbar"
BROKER = "Broker"
HISTORY_OFF = "Broker, history off"
ANONYMOUS = "Broker, history off, anonymous"
#: Broker as shipped, its subscribers on ``GET /sse`` streams instead of WebSocket.
SSE = "Broker, SSE"
#: Broker as shipped on the Redis engine (a redis-server of its own, as one node of a cluster).
REDIS = "Broker, Redis engine"
BARE = "bare websockets"
#: Systems whose lost events fail the run; the others' are findings about them, shown in the tables.
#: Not the Redis engine: overloaded (the latency run at N=1 offers 10,000 publishes/s), it refuses
#: what waited too long for Redis, by design; the cluster section judges its integrity.
CROSSBAR_BASED = (BASELINE, BROKER, SSE, HISTORY_OFF, ANONYMOUS)


def systems() -> list[Server]:
    """Every system, the baseline first so its numbers exist before the ratios to it."""
    return [
        PlainCrossbar(),
        BrokerNode(BROKER),
        BrokerNode(REDIS, serializers=("json",), redis=True),
        BrokerNode(SSE, serializers=("json",), sse=True),
        BrokerNode(HISTORY_OFF, history=False, serializers=("json",)),
        BrokerNode(ANONYMOUS, history=False, tokens=False, serializers=("json",)),
        PythonSocketIO(),
        DjangoChannels(),
        BareWebsockets(),
    ]


@dataclass
class Case:
    """One (system, serializer, N): the saturation run, the latency run, CPU, or why it failed."""

    system: str
    serializer: str
    subscribers: int
    events: int = 0
    expected: int = 0
    delivered: int = 0
    rate: float = 0.0
    latency_expected: int = 0
    latency_delivered: int = 0
    p50_ms: float | None = None
    p99_ms: float | None = None
    server_cpu: float = 0.0
    client_cpu: float = 0.0
    #: seconds to connect the subscribers added for this N
    connect_s: float = 0.0
    #: publishes (both runs) the server refused (the publisher was told), and never answered
    refused: int = 0
    unanswered: int = 0
    #: subscriber connections the server closed
    dropped: int = 0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return (
            self.error is None
            and self.delivered == self.expected
            and self.latency_delivered == self.latency_expected
        )

    @property
    def server_us_per_delivery(self) -> float | None:
        return 1e6 * self.server_cpu / self.delivered if self.delivered else None


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def measure_case(loadgen: LoadGenerator, server: Server, client: Client, case: Case, quick: bool) -> None:
    """Fill ``case`` in: connect up to N subscribers, a saturation run, a latency run."""
    n, scale = case.subscribers, server.deliveries_scale
    deliveries = (QUICK_DELIVERIES if quick else DELIVERIES) * scale
    case.events = min(int(MAX_EVENTS * scale), max(MIN_EVENTS, int(deliveries) // n))
    connecting = time.monotonic()
    loadgen.connect(client, n, timeout=60 + n / 20)
    case.connect_s = time.monotonic() - connecting
    server_before, client_before = cpu_seconds(server.pids()), cpu_seconds(loadgen.pids())
    published, delivery = loadgen.run(client, case.events, None, WINDOW, PUBLISH_TIMEOUT, latency=False)
    case.server_cpu = cpu_seconds(server.pids()) - server_before
    case.client_cpu = cpu_seconds(loadgen.pids()) - client_before
    case.expected, case.delivered = delivery.expected, delivery.delivered
    if delivery.delivered:
        case.rate = delivery.delivered / max(1e-6, delivery.last - published.first)
    problems = []
    case.refused, case.unanswered = published.refused, published.events - published.acked - published.refused
    if published.acked < published.events:
        problems.append(f"{published.events - published.acked} publishes not acknowledged")
    if delivery.delivered != delivery.expected:
        problems.append(f"saturation: {delivery.delivered}/{delivery.expected} delivered in time")
    seconds = (QUICK_LATENCY_SECONDS if quick else LATENCY_SECONDS) * scale
    latency_events = max(2, int(LATENCY_RATE * seconds / n))
    published, delivery = loadgen.run(
        client, latency_events, LATENCY_RATE / n, latency_events, PUBLISH_TIMEOUT, latency=True
    )
    case.latency_expected, case.latency_delivered = delivery.expected, delivery.delivered
    case.refused += published.refused
    case.unanswered += published.events - published.acked - published.refused
    if published.refused:
        problems.append(f"latency: {published.refused} publishes refused")
    if delivery.delivered != delivery.expected:
        problems.append(f"latency: {delivery.delivered}/{delivery.expected} delivered in time")
    case.dropped = delivery.dropped
    if delivery.latencies:
        case.p50_ms = 1e3 * percentile(delivery.latencies, 0.5)
        case.p99_ms = 1e3 * percentile(delivery.latencies, 0.99)
    if delivery.dropped:
        problems.append(f"{delivery.dropped} subscribers dropped by the server")
    if problems:
        case.error = "; ".join(problems)


def measure_system(
    loadgen: LoadGenerator, server: Server, subscribers: tuple[int, ...], quick: bool, report: Progress
) -> list[Case]:
    cases = [Case(server.name, s, n) for s in server.serializers for n in subscribers]
    with tempfile.TemporaryDirectory(prefix="broker-bench-") as workdir:
        try:
            started = time.monotonic()
            try:
                base = server.start(Path(workdir))
            except StartError as exc:
                report(f"  {server.name}: did not start: {exc}")
                lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or ["no output"]
                reason = lines[0] if len(lines) == 1 else f"{lines[0]} … {lines[-1]}"
                for case in cases:
                    case.error = f"did not start: {reason[:300]}"
                return cases
            report(f"  {server.name}: started in {time.monotonic() - started:.1f} s")
            for serializer in server.serializers:
                client = base.using(serializer)
                failed: str | None = None
                for case in (c for c in cases if c.serializer == serializer):
                    if failed is not None:
                        case.error = f"skipped: {failed}"
                        continue
                    try:
                        measure_case(loadgen, server, client, case, quick)
                    except LoadError as exc:
                        case.error = failed = str(exc)[:300]
                    report(f"  {server.name} {serializer} N={case.subscribers}: {describe(case)}")
                loadgen.disconnect()
        finally:
            server.stop()
    return cases


def describe(case: Case) -> str:
    text = f"{case.rate:,.0f} deliveries/s ({case.delivered}/{case.expected})"
    if case.p99_ms is not None:
        text += f", p50 {case.p50_ms:.1f} ms, p99 {case.p99_ms:.1f} ms"
    text += f", CPU server {case.server_cpu:.1f} s / clients {case.client_cpu:.1f} s"
    text += f", connected in {case.connect_s:.1f} s"
    return text if case.error is None else f"{text}; FAILED: {case.error}"


def measure(quick: bool, report: Progress = progress) -> list[Case]:
    """Every system at every N, one system at a time, on one long-lived load generator."""
    subscribers = report_module.SELECTION.ns(QUICK_SUBSCRIBERS if quick else SUBSCRIBERS)
    loadgen = LoadGenerator(PROCESSES)
    cases: list[Case] = []
    try:
        for server in report_module.SELECTION.servers(systems()):
            cases += measure_system(loadgen, server, subscribers, quick, report)
    finally:
        loadgen.close()
    return cases


# -- the Markdown --------------------------------------------------------------


def ratio(cases: list[Case], case: Case) -> float | None:
    """``case``'s deliveries/s over plain crossbar's at the same N (same serializer, else JSON)."""
    by_key = {(c.system, c.serializer, c.subscribers): c for c in cases}
    base = by_key.get((BASELINE, case.serializer, case.subscribers)) or by_key.get(
        (BASELINE, "json", case.subscribers)
    )
    if base is None or not base.ok or not base.rate or not case.rate:
        return None
    return case.rate / base.rate


def _k(rate: float) -> str:
    return f"{rate / 1000:.1f}k"


def _rows(cases: list[Case]) -> list[tuple[str, str]]:
    """(system, serializer) in measurement order."""
    return list(dict.fromkeys((c.system, c.serializer) for c in cases))


def _grid(cases: list[Case], cell: Callable[[Case], str]) -> list[str]:
    ns = sorted({c.subscribers for c in cases})
    lines = [
        "| system | serializer | " + " | ".join(f"N={n}" for n in ns) + " |",
        "| --- | --- | " + " | ".join("---:" for _ in ns) + " |",
    ]
    by_key = {(c.system, c.serializer, c.subscribers): c for c in cases}
    for system, serializer in _rows(cases):
        cells = []
        for n in ns:
            case = by_key.get((system, serializer, n))
            cells.append("" if case is None else cell(case))
        lines.append(f"| {system} | {serializer} | " + " | ".join(cells) + " |")
    return lines


def summary(cases: list[Case]) -> str:
    """Deliveries/s as a ratio to plain crossbar, per system and N (JSON), for the top of the doc."""
    json_cases = [c for c in cases if c.serializer == "json"]

    def cell(case: Case) -> str:
        r = ratio(cases, case)
        return "failed" if not case.ok else "-" if r is None else f"{r:.2f}"

    lines = _grid(json_cases, cell)
    within = "Is Broker (all features, JSON) within 10% of plain crossbar? (details in the fan-out section)"
    issue16 = "Issue 16's targets on this run (frame once, deliver many):"
    return "\n".join([*lines, "", within, "", verdict(cases), "", issue16, "", *issue16_targets(cases)])


def issue16_targets(cases: list[Case]) -> list[str]:
    """Issue 16's verdict lines (:mod:`bench.targets`) for Broker on the memory and the Redis engine."""
    return targets.verdicts(
        cases, targets.Names(broker=BROKER, baseline=BASELINE, bare=BARE), [BROKER, REDIS]
    )


def verdict(cases: list[Case]) -> str:
    """Whether Broker (all features, JSON) is within 10% of plain crossbar at N=100 and N=1000.

    Two measures: deliveries/s (what the issue asks) and the server's CPU time
    per delivery, which is what throughput at saturation is the inverse of
    when the router has a core to itself, and which other load on a shared
    machine barely moves (it slows the router down, it does not make it work more).
    """
    by_key = {(c.system, c.serializer, c.subscribers): c for c in cases}
    lines = [
        "| N | deliveries/s ratio | server CPU per delivery ratio | at least 0.9 (within 10% or faster) |",
        "| ---: | ---: | ---: | --- |",
    ]
    for n in VERDICT_N:
        case, base = by_key.get((BROKER, "json", n)), by_key.get((BASELINE, "json", n))
        if case is None or base is None or not case.ok or not base.ok:
            lines.append(f"| {n} | not measured | | |")
            continue
        r = ratio(cases, case)
        cost = base.server_us_per_delivery
        cpu = cost / case.server_us_per_delivery if cost and case.server_us_per_delivery else None
        judged = [name for name, x in (("throughput", r), ("CPU", cpu)) if x is not None and x >= 0.9]
        answer = "yes" if len(judged) == 2 else "no" if not judged else f"by {judged[0]} only"
        lines.append(f"| {n} | {_ratio(r)} | {_ratio(cpu)} | {answer} |")
    return "\n".join(lines)


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def feature_split(cases: list[Case]) -> list[str]:
    """What each Broker feature costs: server CPU µs per delivery, one variant step at a time.

    The steps: plain crossbar → Broker without history and tokens (Broker's
    hooks: hardening patches, the log-argument fix, dynamic authorizer, position
    hook with nothing to record) → with token-authenticated subscribers → with history and
    positions. Each step is also given as a share of plain crossbar's cost.
    """
    by_key = {(c.system, c.serializer, c.subscribers): c for c in cases}
    ladder = [BASELINE, ANONYMOUS, HISTORY_OFF, BROKER]
    lines = [
        "| N | " + " | ".join(ladder) + " | + hooks | + token authz | + history & positions |",
        "| ---: | " + " | ".join("---:" for _ in ladder) + " | ---: | ---: | ---: |",
    ]
    for n in sorted({c.subscribers for c in cases}):
        costs = []
        for name in ladder:
            case = by_key.get((name, "json", n))
            costs.append(case.server_us_per_delivery if case is not None and case.ok else None)
        cells = [f"{c:.1f}" if c is not None else "-" for c in costs]
        base = costs[0]
        for a, b in itertools.pairwise(costs):
            if a is None or b is None or not base:
                cells.append("-")
            else:
                cells.append(f"{b - a:+.1f} ({(b - a) / base:+.0%})")
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    return lines


def section(cases: list[Case], quick: bool) -> Section:
    plots = plot(cases)

    def throughput(case: Case) -> str:
        if not case.ok:
            return "failed"
        r = ratio(cases, case)
        return _k(case.rate) + (f" ({r:.2f})" if r is not None else "")

    def latency(case: Case) -> str:
        if not case.ok or case.p99_ms is None or case.p50_ms is None:
            return "failed"
        # offered more than it delivers at saturation: the figure measures a growing queue
        mark = " (sat.)" if case.rate < LATENCY_RATE else ""
        return f"{case.p50_ms:.1f} / {case.p99_ms:.1f}{mark}"

    deliveries = QUICK_DELIVERIES if quick else DELIVERIES
    seconds = QUICK_LATENCY_SECONDS if quick else LATENCY_SECONDS
    scaled = ", ".join(f"{s.deliveries_scale:.0%} for {s.name}" for s in systems() if s.deliveries_scale != 1)
    lines = [
        "## Fan-out: Broker side by side with plain crossbar, python-socketio, Django Channels",
        "",
        f"One publisher, N subscribers spread over {PROCESSES} client processes (lean raw `websockets` "
        "clients, no autobahn, plus one publisher process), ~100-byte JSON payloads (msgpack too for "
        "the WAMP systems), loopback; servers and clients share the machine's cores, and every system "
        "is measured in this same run.",
        "",
        f"- *Saturation*: {deliveries:,} / N events (at least {MIN_EVENTS}, at most {MAX_EVENTS:,}; "
        f"the slower systems a share of that, so each case stays bounded: {scaled}), "
        f"at most {WINDOW} publishes unacknowledged. "
        "Deliveries/s = events received by all subscribers / time from the first publish to the last "
        "delivery. Events not received within max(10 s, twice the publishing time) count as lost.",
        f"- *Latency*: events at {LATENCY_RATE:,} deliveries/s in total (all subscribers together) for "
        f"{seconds:g} s (the slower systems: the same share of that time as of the events above), each "
        "carrying `time.time()` at publish, read at delivery on the same clock. Where the offered rate "
        "exceeds what a system delivers at saturation (marked *sat.*), its latency is queueing: it grows "
        "with the run's length and says only that the system is saturated.",
        "- *CPU*: seconds used by the server's processes and by the client processes during the "
        "saturation run (psutil).",
        "- *Publish paths*, each system's natural fast path: WAMP PUBLISH with acknowledge (Broker: "
        "the publisher as `backend` over WAMP-CRA, subscribers with a minted user token over WAMP "
        "ticket; plain crossbar: anonymous); a socket.io emit with ack that the server re-emits to a "
        "room; a WebSocket message the Channels consumer `group_send`s (channels-redis on a local "
        "redis-server, capacity raised to 100,000 so nothing is dropped); a message the bare server "
        "`broadcast`s.",
        "",
        "Systems: **Broker** as shipped (positions, in-memory history, token-authenticated "
        f"subscribers); **{HISTORY_OFF}** (no history, so no positions); **{ANONYMOUS}** (also "
        "without tokens: only Broker's hooks remain); **plain crossbar** (one realm, anonymous "
        "allowed everything, the same web transport options, no Broker component); "
        f"**{REDIS}** is Broker as shipped on the Redis engine (`BROKER_REDIS_URL`, a redis-server "
        "of its own whose CPU counts as the server's), one node as in a cluster. "
        f"**{SSE}** is Broker as shipped with its subscribers on `GET /sse?topic=…&token=…` streams "
        "(HTTP/1.0 over raw sockets in the same client processes, `data:` decoded as the WAMP "
        "frames are) and the same WebSocket publisher; its column *serializer* is the stream's JSON.",
        "",
        "### Deliveries per second at saturation (ratio to plain crossbar)",
        "",
        *_grid(cases, throughput),
        "",
        "![deliveries/s vs N](bench/fanout_throughput.png)",
        "",
        f"### Publish-to-delivery latency at {LATENCY_RATE:,} deliveries/s: p50 / p99 ms",
        "",
        *_grid(cases, latency),
        "",
        "![p99 latency vs N](bench/fanout_latency.png)",
        "",
        "### Is Broker within 10% of plain crossbar?",
        "",
        "Broker with all features (JSON) over plain crossbar; 1 is equal, above 1 is Broker faster "
        "or cheaper. The CPU ratio is plain crossbar's server CPU per delivery over Broker's: at "
        "saturation a router's throughput is the inverse of it, and unlike deliveries/s it is barely "
        "moved by other load on the machine.",
        "",
        verdict(cases),
        "",
        "### Issue 16's targets (frame once, deliver many)",
        "",
        *issue16_targets(cases),
        "Which feature costs what, as server CPU µs per delivered event (JSON, saturation run; "
        "router and controller processes), stepping from plain crossbar to Broker one feature at a "
        "time; the last three columns are the steps and their share of plain crossbar's cost "
        "(positive = costs more). Steps within a few percent are inside the measurement's noise "
        "(CPU time is read in 10 ms ticks). The *+ hooks* step is negative for N ≥ 10 because one of "
        "Broker's router patches removes a cost: autobahn building coloured arguments for debug log "
        "lines it then drops, on every message sent (`broker/router/crossbar/logstyle.py`); the other hooks "
        "(hardening, authorizer, metrics, slow-subscriber check) cost less than that saves. At N=1 "
        "every publish is one delivery, so the per-publish work (authorization, history append) "
        "shows most there. The profile section below splits the router's own "
        "time per delivered event into crossbar, autobahn, Twisted and each of Broker's hooks.",
        "",
        *feature_split(cases),
        "",
        "### Every case",
        "",
        "| system | serializer | N | events | delivered | deliveries/s | ratio | p50 ms | p99 ms "
        "| server CPU s | client CPU s | server µs/delivery | ok |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for case in cases:
        r = ratio(cases, case)
        us = case.server_us_per_delivery
        lines.append(
            f"| {case.system} | {case.serializer} | {case.subscribers} | {case.events} "
            f"| {case.delivered}/{case.expected} | {case.rate:,.0f} | {'' if r is None else f'{r:.2f}'} "
            f"| {_ms(case.p50_ms)} | {_ms(case.p99_ms)} | {case.server_cpu:.1f} | {case.client_cpu:.1f} "
            f"| {'' if us is None else f'{us:.1f}'} | {'yes' if case.ok else case.error or 'lost events'} |"
        )
    failures = [c for c in cases if not c.ok]
    if failures:
        lines += ["", "Failed cases:", ""]
        lines += [
            f"- {c.system} {c.serializer} N={c.subscribers}: {c.error or 'lost events'}" for c in failures
        ]
    started = all(not (c.error or "").startswith("did not start") for c in cases)
    return Section(
        title="Fan-out side by side",
        markdown="\n".join(lines) + "\n",
        plots=plots,
        ok=started and all(c.ok for c in cases if c.system in CROSSBAR_BASED),
    )


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


def plot(cases: list[Case]) -> list[Path]:
    """deliveries/s vs N and p99 latency vs N, one line per system and serializer (log-log)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    PLOTS.mkdir(parents=True, exist_ok=True)
    paths = []
    charts: list[tuple[str, Callable[[Case], float | None], str]] = [
        ("fanout_throughput", lambda c: c.rate, "deliveries/s at saturation"),
        ("fanout_latency", lambda c: c.p99_ms, f"p99 latency, ms (at {LATENCY_RATE:,} deliveries/s)"),
    ]
    for name, value, ylabel in charts:
        fig, ax = plt.subplots(figsize=(10, 5))
        for system, serializer in _rows(cases):
            points = [
                (c.subscribers, value(c))
                for c in cases
                if (c.system, c.serializer) == (system, serializer) and c.ok and value(c)
            ]
            if points:
                xs, ys = zip(*points, strict=True)
                style = "--" if serializer == "msgpack" else "-"
                ax.plot(xs, ys, style, marker="o", label=f"{system} ({serializer})")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("subscribers (N)")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
        fig.tight_layout()
        path = PLOTS / f"{name}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths


def run(quick: bool, progress: Progress = progress) -> Section:
    """The section for :mod:`bench.run`."""
    return section(measure(quick, progress), quick)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"N in {QUICK_SUBSCRIBERS}, fewer events")
    args = parser.parse_args()
    result = run(args.quick)
    print(result.markdown)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
