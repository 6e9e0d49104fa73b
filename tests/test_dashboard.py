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
