"""The dashboard at ``/`` in real headless Chromium against a real node.

Drives ``clients/js/e2e/dashboard.mjs`` (like ``watch.mjs`` in test_browser.py):
publishes on a few topics, checks the per-topic rows with their rates, the uPlot
chart's canvas, the operator panel (WAMP-CRA signed with WebCrypto) and that the
page logged no errors, and takes a screenshot (``DASHBOARD_SCREENSHOT=docs/dashboard.png``
regenerates the one in the docs). The chart's time labels are measured as DOM
boxes at 1400 and 420 px, its data against the stream's own arrival times, the
rates against the page's own clock, and a page opened after events were
published shows them from history. Screenshots go to ``DASHBOARD_SHOTS`` (a
directory, default the test's tmp_path) to be looked at by eye.
"""

from __future__ import annotations

import itertools
import math
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from broker.client import Publisher
from tests.chromium import E2E, PageDriver, opener
from tests.node import OPERATOR_SECRET, PUBLISHER_SECRET, Node

pytestmark = pytest.mark.node

DRIVER = E2E / "dashboard.mjs"
WINDOW = 10  # seconds behind a rate: WINDOW in clients/js/src/dashboard/rates.js
MIN_SPAN_S = 1  # MIN_SPAN_S there


class Dashboard(PageDriver):
    """One Chromium page on ``url``, driven through dashboard.mjs (``width``: the viewport's)."""

    def __init__(self, url: str, width: int = 1440) -> None:
        super().__init__(DRIVER, url, env={"WIDTH": str(width)})


def rate_span(now_ms: float, since_ms: float) -> float:
    """Seconds a rate shown at ``now_ms`` divides by (rateSpan in src/dashboard/rates.js)."""
    start = max(since_ms, (math.floor(now_ms / 1000) - WINDOW + 1) * 1000)
    return max(MIN_SPAN_S, (now_ms - start) / 1000)


def shots(tmp_path: Path) -> Path:
    """Where this test's screenshots go (DASHBOARD_SHOTS, to look at them by eye)."""
    where = Path(os.environ.get("DASHBOARD_SHOTS") or tmp_path)
    where.mkdir(parents=True, exist_ok=True)
    return where.resolve()


@pytest.fixture
def dashboards() -> Iterator[Callable[[str], Dashboard]]:
    yield from opener(Dashboard)  # type: ignore[misc]


def test_dashboard_shows_topics_rates_and_chart(
    node: Node, dashboards: Callable[[str], Dashboard], tmp_path: Path
) -> None:
    prefix = f"public.dash.{uuid.uuid4().hex[:6]}."
    page = dashboards(f"{node.url}/")
    publisher = Publisher(node.url, "dev", PUBLISHER_SECRET)
    # a few seconds of traffic at uneven rates, so the chart and the rate bars have a shape
    plan = {"orders": 3, "prices": 2, "alerts": 1}
    sent = {name: 0 for name in plan}
    for step in range(10):
        for name, per_step in plan.items():
            for _ in range(per_step + (step % 3 == 0 and name == "orders")):
                sent[name] += 1
                publisher.publish(f"{prefix}{name}", {"n": sent[name], "at": round(time.time(), 3)})
        time.sleep(0.4)
    total = sum(sent.values())

    shown = page.ask(expect=total, prefix=prefix, topics=len(plan))
    assert shown["events"] == total
    rows = {row["topic"]: row for row in shown["topics"]}
    assert set(rows) == {f"{prefix}{name}" for name in plan}
    for name, count in sent.items():
        row = rows[f"{prefix}{name}"]
        assert row["count"] == count
    # a 10 s sliding window (or since the page counted, if shorter): each event counts while recent
    rate = page.ask(rate=True)
    for shown_row in rate["topics"]:
        if shown_row["topic"].startswith(prefix):
            in_window = shown_row["rate"] * rate_span(rate["topicsAt"], rate["liveSince"])
            assert 0 < round(in_window) <= sent[shown_row["topic"].removeprefix(prefix)]
            assert in_window == pytest.approx(round(in_window), abs=1e-6)
    # busiest first
    assert shown["topics"][0]["topic"] == f"{prefix}orders"

    info = page.ask(inspect=True)
    assert info["state"] == "connected"
    assert info["transport"] == "websocket"
    assert info["canvas"] and info["canvas"]["width"] > 100 and info["canvas"]["height"] > 100
    assert int(info["stats"]["stat-total"].replace(",", "")) >= total
    assert info["errors"] == []

    # DASHBOARD_SCREENSHOT=docs/dashboard.png regenerates the README's picture
    shot = Path(os.environ.get("DASHBOARD_SCREENSHOT") or tmp_path / "dashboard.png")
    page.ask(screenshot=str(shot.resolve()), colorScheme=os.environ.get("DASHBOARD_SCHEME", "dark"))
    assert shot.stat().st_size > 10_000
    assert page.ask(inspect=True)["errors"] == []


def test_operator_panel_signs_in_with_wampcra(node: Node, dashboards: Callable[[str], Dashboard]) -> None:
    page = dashboards(f"{node.url}/?operator")
    signed_in = page.ask(operator=OPERATOR_SECRET)
    assert signed_in["sessions"] is not None, signed_in
    assert int(signed_in["sessions"]) >= 2  # this page's anonymous session and the operator's
    assert int(signed_in["subscriptions"]) >= 1  # the page's public. prefix subscription
    assert "signed in as operator" in signed_in["status"]
    assert page.ask(inspect=True)["errors"] == []


def test_operator_panel_refuses_a_wrong_secret(node: Node, dashboards: Callable[[str], Dashboard]) -> None:
    page = dashboards(f"{node.url}/?operator")
    refused = page.ask(operator="not-the-secret")
    assert refused["sessions"] is None
    assert "refused" in refused["status"] or "disconnected" in refused["status"]


def test_stream_keeps_the_newest_rows_only(node: Node, dashboards: Callable[[str], Dashboard]) -> None:
    """A page left open for days: #events stays at EVENTS_CAP rows, newest first, filter still works."""
    cap = 500  # EVENTS_CAP in clients/js/src/dashboard/events.js
    extra = 23
    prefix = f"public.cap.{uuid.uuid4().hex[:6]}."
    page = dashboards(f"{node.url}/")
    earlier = page.ask(inspect=True)["rows"]  # other tests' events, from history: removed first
    publisher = Publisher(node.url, "dev", PUBLISHER_SECRET)
    plan = [(f"{prefix}{'ab'[n % 2]}", {"n": n}) for n in range(cap + extra)]
    sent = [
        p for start in range(0, len(plan), 100) for p in publisher.publish_many(plan[start : start + 100])
    ]
    cursors = [p.position["cursor"] for p in sent if p.position]
    assert len(cursors) == cap + extra

    shown = page.ask(stream=True, prefix=prefix, last=cursors[-1])
    assert shown["total"] == cap
    rows = shown["rows"]
    assert len(rows) == cap
    # newest first: the last `cap` published, in reverse
    assert [r["cursor"] for r in rows] == cursors[::-1][:cap]
    assert [r["data"]["n"] for r in rows] == list(range(cap + extra - 1, extra - 1, -1))
    assert not any(r["hidden"] for r in rows)
    assert shown["note"] == f"showing the newest {cap} events ({extra + earlier} older ones removed)"

    # the filter applies to the kept rows, and to rows arriving while it is set
    page.ask(filter=f"{prefix}a")
    [late] = publisher.publish_many([(f"{prefix}b", {"n": "late"})])
    assert late.position is not None
    shown = page.ask(stream=True, prefix=prefix, last=late.position["cursor"])
    assert shown["total"] == cap
    rows = shown["rows"]
    assert rows[0]["data"] == {"n": "late"}
    assert rows[-1]["data"] == {"n": extra + 1}  # one more older row went
    assert {r["topic"] for r in rows if not r["hidden"]} == {f"{prefix}a"}
    assert all(r["hidden"] == (r["topic"] != f"{prefix}a") for r in rows)
    assert shown["note"] == f"showing the newest {cap} events ({extra + earlier + 1} older ones removed)"
    page.ask(filter="")
    assert not any(
        r["hidden"] for r in page.ask(stream=True, prefix=prefix, last=late.position["cursor"])["rows"]
    )
    assert page.ask(inspect=True)["errors"] == []


def publish_paced(publisher: Publisher, topic: str, count: int, seconds: float) -> list[Any]:
    """``count`` events on ``topic`` spread over ``seconds``; their publications."""
    sent = []
    for n in range(count):
        sent.append(publisher.publish(topic, {"n": n}))
        time.sleep(seconds / count)
    return sent


@pytest.mark.parametrize("width", [1400, 420])
def test_chart_time_labels_do_not_overlap(
    node: Node, dashboards: Callable[..., Dashboard], tmp_path: Path, width: int
) -> None:
    """The time axis's labels are one line each, apart, and inside the chart, at desktop and phone widths."""
    page = dashboards(f"{node.url}/", width=width)
    publisher = Publisher(node.url, "dev", PUBLISHER_SECRET)
    publish_paced(publisher, f"public.labels.{uuid.uuid4().hex[:6]}", 12, 2.5)
    chart = page.ask(chart=True, points=2)
    labels = sorted(chart["labels"], key=lambda b: b["left"])
    assert len(labels) >= 2, chart
    for label in labels:
        assert chart["box"]["left"] <= label["left"] and label["right"] <= chart["box"]["right"], label
        assert label["bottom"] - label["top"] < 20, f"{label} is more than one line"
        assert label["text"].count(":") >= 1 and "/" not in label["text"], label
    for left, right in itertools.pairwise(labels):
        assert left["right"] + 4 <= right["left"], f"{left} overlaps {right}"
    assert len({label["text"] for label in labels}) == len(labels)
    shot = shots(tmp_path) / f"chart-{width}.png"
    page.ask(screenshot=str(shot), colorScheme="dark")
    assert shot.stat().st_size > 5_000
    assert page.ask(inspect=True)["errors"] == []


def test_chart_draws_complete_seconds_since_the_page_counted(
    node: Node, dashboards: Callable[..., Dashboard], tmp_path: Path
) -> None:
    """Each drawn second is whole and counted exactly; none before the page counted, nor the current one."""
    page = dashboards(f"{node.url}/")
    publisher = Publisher(node.url, "dev", PUBLISHER_SECRET)
    publish_paced(publisher, f"public.chart.{uuid.uuid4().hex[:6]}", 30, 3.0)
    chart = page.ask(chart=True, points=3)
    xs, ys, live_since, now = chart["xs"], chart["ys"], chart["liveSince"], chart["now"]
    assert xs == list(range(xs[0], xs[0] + len(xs)))
    # nothing before the page counted: the first second drawn is the first whole one after it
    assert xs[0] == math.ceil(live_since / 1000)
    assert chart["range"][0] < xs[0]  # the axis shows that time, empty
    # the current second, still filling, is not drawn; the last complete one is, within one refresh
    assert xs[-1] < math.floor(now / 1000)
    assert xs[-1] >= math.floor((now - page.ask(rate=True)["staleMs"]) / 1000) - 1
    # each drawn second holds exactly the events that arrived in it (the stream's data-at)
    arrivals = [math.floor(at / 1000) for at in chart["arrivals"]]
    assert sum(ys) > 0
    assert ys == [arrivals.count(x) for x in xs]
    shot = shots(tmp_path) / "chart-seconds.png"
    page.ask(screenshot=str(shot), colorScheme="light")
    assert page.ask(inspect=True)["errors"] == []


def test_rate_over_the_elapsed_time_in_the_first_seconds(
    node: Node, dashboards: Callable[..., Dashboard], tmp_path: Path
) -> None:
    """20 events in the first 2 s read as 20 / elapsed, not 20 / 10 s, by the page's own clock."""
    page = dashboards(f"{node.url}/")
    topic = f"public.rate.{uuid.uuid4().hex[:6]}"
    publisher = Publisher(node.url, "dev", PUBLISHER_SECRET)
    publish_paced(publisher, topic, 20, 2.0)
    page.ask(expect=20, prefix=topic, topics=1)
    shown = page.ask(rate=True)
    elapsed = (shown["at"] - shown["liveSince"]) / 1000
    assert elapsed < WINDOW - 1, f"the test took {elapsed} s: too slow to check the first seconds"
    # fresh: computed at most staleMs (the code's refresh bound) before it was read
    assert 0 <= shown["now"] - shown["at"] <= shown["staleMs"]
    expected = 20 / max(MIN_SPAN_S, elapsed)
    assert shown["rate"] == pytest.approx(expected, rel=1e-9)
    assert float(shown["text"]) == pytest.approx(expected, abs=0.01)
    [row] = [r for r in shown["topics"] if r["topic"] == topic]
    assert row["rate"] == pytest.approx(20 / rate_span(shown["topicsAt"], shown["liveSince"]), rel=1e-9)
    assert row["rate"] > 20 / WINDOW * 1.5  # what the old 10 s divisor showed, well below
    shot = shots(tmp_path) / "rate.png"
    page.ask(screenshot=str(shot), colorScheme="dark")
    assert page.ask(inspect=True)["errors"] == []


def test_page_opened_later_shows_recent_history(
    node: Node, dashboards: Callable[..., Dashboard], tmp_path: Path
) -> None:
    """30 events published before the page opened: listed newest first, marked as history, live ones above."""
    prefix = f"public.hist.{uuid.uuid4().hex[:6]}."
    publisher = Publisher(node.url, "dev", PUBLISHER_SECRET)
    sent = publisher.publish_many([(f"{prefix}{'ab'[n % 2]}", {"n": n}) for n in range(30)])
    cursors = [p.position["cursor"] for p in sent if p.position]
    assert len(cursors) == 30

    page = dashboards(f"{node.url}/")
    assert page.ready["history"] == "loaded"
    shown = page.ask(history=30, prefix=prefix)
    rows = shown["rows"]
    assert [r["cursor"] for r in rows] == cursors[::-1]
    assert [r["data"]["n"] for r in rows] == list(range(29, -1, -1))
    assert [r["seq"] for r in rows[:2]] == [15, 15]  # each topic's newest
    assert all(r["history"] and r["time"] == "history" and r["at"] is None for r in rows)
    topics = page.ask(expect=30, prefix=prefix, topics=2)
    assert sorted(t["count"] for t in topics["topics"]) == [15, 15]
    assert all(t["rate"] == 0 for t in topics["topics"])  # history is not a rate now

    [late] = publisher.publish_many([(f"{prefix}a", {"n": "live"})])
    assert late.position is not None
    rows = page.ask(stream=True, prefix=prefix, last=late.position["cursor"])["rows"]
    assert rows[0]["data"] == {"n": "live"} and not rows[0]["hidden"]
    assert [r["cursor"] for r in rows[1:]] == cursors[::-1]
    shot = shots(tmp_path) / "history.png"
    page.ask(screenshot=str(shot), colorScheme="light")
    assert page.ask(inspect=True)["errors"] == []


def test_recent_history_is_capped_at_the_list_size(node: Node, dashboards: Callable[..., Dashboard]) -> None:
    """History larger than the list, spread among other topics' events: the newest 500, in order, no gap."""
    cap = 500  # EVENTS_CAP in clients/js/src/dashboard/events.js
    prefix = f"public.big.{uuid.uuid4().hex[:6]}."
    publisher = Publisher(node.url, "dev", PUBLISHER_SECRET)
    # two events the page does not watch for each one it does: the newest 500 cursors hold ~167 of them
    plan = [(f"{prefix}t" if n % 3 == 0 else f"other.{prefix[7:]}x", {"n": n}) for n in range(3 * (cap + 40))]
    sent = [p for at in range(0, len(plan), 100) for p in publisher.publish_many(plan[at : at + 100])]
    watched = [p.position["cursor"] for p, (t, _) in zip(sent, plan, strict=True) if t.startswith(prefix)]
    assert len(watched) == cap + 40

    page = dashboards(f"{node.url}/")
    assert page.ready["history"] == "loaded"
    shown = page.ask(history=cap, prefix=prefix)
    assert shown["total"] == cap
    assert [r["cursor"] for r in shown["rows"]] == watched[::-1][:cap]
    assert page.ask(inspect=True)["errors"] == []


def small_history(config: dict[str, Any]) -> None:
    """Keep only 10 events of each ``public.small.`` topic (the default keeps 1000)."""
    extra = config["workers"][0]["components"][0]["extra"]
    small = {"uri": "public.small.", "match": "prefix", "max_events": 10, "max_age": 3600}
    extra["history"]["policies"] = [small, *extra["history"].get("policies", [])]


def test_recent_history_stops_where_a_topic_was_trimmed(
    make_node: Callable[..., Node], dashboards: Callable[..., Dashboard]
) -> None:
    """A watched topic trimmed its history: every event after the trim is listed, none before, no gap."""
    node = make_node(small_history)
    publisher = Publisher(node.url, "dev", PUBLISHER_SECRET)
    plan = [(f"public.{kind}.t", {"n": n, "kind": kind}) for n in range(200) for kind in ("small", "wide")]
    sent = [p for at in range(0, len(plan), 100) for p in publisher.publish_many(plan[at : at + 100])]
    cursors = [p.position["cursor"] for p in sent if p.position]
    assert len(cursors) == len(plan)
    # public.small.t keeps its newest 10: recovery can answer only after its last trimmed event
    small = [c for c, (topic, _) in zip(cursors, plan, strict=True) if topic == "public.small.t"]
    trimmed = small[-11]
    expected = [c for c in cursors if c > trimmed]

    page = dashboards(f"{node.url}/")
    assert page.ready["history"] == "partial"  # fewer than 500: the older ones were trimmed
    shown = page.ask(history=len(expected), prefix="public.")
    assert [r["cursor"] for r in shown["rows"]] == expected[::-1]
    assert shown["total"] == len(expected)
    assert page.ask(inspect=True)["errors"] == []
