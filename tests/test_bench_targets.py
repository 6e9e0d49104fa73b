"""``bench.targets``: issue 16's verdict lines from fan-out cases, met or not met with the numbers.

Pure: cases made here (``bench.fanout.Case``), no system started.
"""

from __future__ import annotations

from bench.fanout import Case
from bench.targets import Names, verdicts

NAMES = Names(broker="Broker", baseline="plain crossbar", bare="bare websockets")


def case(
    system: str, n: int, rate: float, p99: float = 5.0, us: float = 3.0, error: str | None = None
) -> Case:
    measured = Case(system, "json", n, delivered=1000, expected=1000, rate=rate, p99_ms=p99, error=error)
    measured.server_cpu = us * measured.delivered / 1e6
    return measured


def lines_for(cases: list[Case], system: str = "Broker") -> list[str]:
    return [line for line in verdicts(cases, NAMES, [system]) if line.startswith("- ")]


def test_each_target_met_with_its_numbers() -> None:
    cases = [
        case("plain crossbar", 1, 1000, p99=2.0),
        case("plain crossbar", 100, 10_000, p99=9.0),
        case("plain crossbar", 1000, 20_000, p99=12.0),
        case("bare websockets", 100, 25_000),
        case("bare websockets", 1000, 40_000),
        case("Broker", 1, 2500, p99=1.5),
        case("Broker", 100, 30_000, us=3.5, p99=3.0),
        case("Broker", 1000, 60_000, p99=4.0),
    ]
    assert lines_for(cases) == [
        "- deliveries/s ≥ 3x plain crossbar at N = 100 and 1000: **met** — "
        "N=100: 30,000 / 10,000 = 3.00x; N=1000: 60,000 / 20,000 = 3.00x.",
        "- deliveries/s ≥ bare websockets at N ≥ 100: **met** — "
        "N=100: 30,000 / 25,000 = 1.20x; N=1000: 60,000 / 40,000 = 1.50x.",
        "- server CPU per delivered event ≤ 3.5 µs at N = 100 (the router's worker and the node's "
        "controller together, and redis-server where there is one: an upper bound on the router's own): "
        "**met** — N=100: 3.50 µs.",
        "- publishes/s at N = 1 ≥ 2x plain crossbar: **met** — N=1: 2,500 / 1,000 = 2.50x.",
        "- p99 publish-to-delivery at the latency runs' rate, per N (no worse than today's: compare with "
        "docs/benchmarks.md) — N=1: 1.5 ms (plain crossbar 2.0 ms); N=100: 3.0 ms (plain crossbar 9.0 ms); "
        "N=1000: 4.0 ms (plain crossbar 12.0 ms).",
    ]


def test_one_n_short_is_not_met_and_a_failed_case_is_not_measured() -> None:
    cases = [
        case("plain crossbar", 100, 10_000),
        case("plain crossbar", 1000, 20_000),
        case("bare websockets", 100, 25_000),
        case("bare websockets", 1000, 40_000, error="did not start"),
        case("Broker", 100, 29_999, us=3.6),
        case("Broker", 1000, 90_000),
    ]
    crossbar, bare, cpu, publishes, _ = lines_for(cases)
    assert crossbar.startswith(
        "- deliveries/s ≥ 3x plain crossbar at N = 100 and 1000: **not met** — N=100: 29,999"
    )
    assert bare == (
        "- deliveries/s ≥ bare websockets at N ≥ 100: **met** where measured — "
        "N=100: 29,999 / 25,000 = 1.20x; N=1000: not measured."
    )
    assert cpu.endswith("**not met** — N=100: 3.60 µs.")
    assert (
        publishes
        == "- publishes/s at N = 1 ≥ 2x plain crossbar: not measured in this run (N=1: not measured)."
    )


def test_each_broker_variant_gets_its_own_block() -> None:
    cases = [case("plain crossbar", 100, 10_000), case("Broker, Redis engine", 100, 20_000)]
    text = verdicts(cases, NAMES, ["Broker", "Broker, Redis engine"])
    assert text[0] == "**Broker** (JSON):"
    assert "**Broker, Redis engine** (JSON):" in text
    redis_block = text[text.index("**Broker, Redis engine** (JSON):") :]
    assert "N=100: 20,000 / 10,000 = 2.00x" in redis_block[2]
    assert "not met" in redis_block[2]
