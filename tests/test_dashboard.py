"""The dashboard at ``/`` in real headless Chromium against a real node.

Drives ``clients/js/e2e/dashboard.mjs`` (like ``watch.mjs`` in test_browser.py):
publishes on a few topics, checks the per-topic rows with their rates, the uPlot
chart's canvas, the operator panel (WAMP-CRA signed with WebCrypto) and that the
page logged no errors, and takes a screenshot (``DASHBOARD_SCREENSHOT=docs/dashboard.png``
regenerates the one in the docs).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from broker.client import Publisher
from tests.chromium import E2E, PageDriver, opener
from tests.node import OPERATOR_SECRET, PUBLISHER_SECRET, Node

pytestmark = pytest.mark.node

DRIVER = E2E / "dashboard.mjs"


class Dashboard(PageDriver):
    """One Chromium page on ``url``, driven through dashboard.mjs."""

    def __init__(self, url: str) -> None:
        super().__init__(DRIVER, url)


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
        # a 10 s sliding window: every event counts while it is recent, never more
        assert 0 < row["rate"] <= count / 10 + 1e-9
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
    cap = 500  # EVENTS_CAP in clients/js/src/dashboard-events.js
    extra = 23
    prefix = f"public.cap.{uuid.uuid4().hex[:6]}."
    page = dashboards(f"{node.url}/")
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
    assert shown["note"] == f"showing the newest {cap} events ({extra} older ones removed)"

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
    assert shown["note"] == f"showing the newest {cap} events ({extra + 1} older ones removed)"
    page.ask(filter="")
    assert not any(
        r["hidden"] for r in page.ask(stream=True, prefix=prefix, last=late.position["cursor"])["rows"]
    )
    assert page.ask(inspect=True)["errors"] == []
