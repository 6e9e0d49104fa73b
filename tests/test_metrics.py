"""``GET /metrics`` against a fresh node: a known workload, then the exact series it produced."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable

import pytest
from prometheus_client.parser import text_string_to_metric_families

from broker.client import Publisher, Unauthenticated
from tests.node import BACKEND_SECRET, PUBLISHER_SECRET, Node
from tests.rawwamp import ERROR, PUBLISHED, RESULT, RawWamp

pytestmark = pytest.mark.node

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(node: Node) -> tuple[str, Samples]:
    """The content type and every sample, by (name, sorted labels)."""
    with urllib.request.urlopen(f"{node.url}/metrics", timeout=10) as response:
        assert response.status == 200
        content_type = response.headers["Content-Type"]
        text = response.read().decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return content_type, samples


def series(samples: Samples, name: str, label: str) -> dict[str, float]:
    """``{label value: sample value}`` of one labelled counter or gauge."""
    return {dict(labels)[label]: value for (n, labels), value in samples.items() if n == name}


def test_metrics_count_a_known_workload(make_node: Callable[..., Node]) -> None:
    node = make_node()
    _, before = scrape(node)
    sessions_before = before[("broker_sessions", ())]

    publisher = Publisher(node.url, "dev", PUBLISHER_SECRET)
    published = [publisher.publish(f"public.m.{n}", {"n": n}) for n in range(3)]
    with pytest.raises(Unauthenticated):
        Publisher(node.url, "dev", "not-the-secret").publish("public.m.0", {})

    backend = RawWamp(node.ws_url, origin=node.origin)
    try:
        assert backend.hello(authid="backend", secret=BACKEND_SECRET)[0] == 2
        assert backend.publish("orders.x", [1])[0] == PUBLISHED
        assert backend.publish("orders.x", [2])[0] == PUBLISHED
        epoch = published[0].position["epoch"]  # type: ignore[index]
        recovered = backend.call("broker.recover", ["orders.x"], {"epoch": epoch, "after": 0})
        assert recovered[0] == RESULT and not recovered[3][0]["unrecoverable"]
        unrecoverable = backend.call("broker.recover", ["orders.x"], {"epoch": "gone", "after": 0})
        assert unrecoverable[0] == RESULT and unrecoverable[3][0]["unrecoverable"]
        refused = backend.call("broker.recover", ["orders.x"], {"match": "nonsense"})
        assert refused[0] == ERROR

        content_type, samples = scrape(node)
        assert samples[("broker_sessions", ())] == sessions_before + 1
    finally:
        backend.close()

    assert content_type.startswith("text/plain; version=")
    publishes = series(samples, "broker_publishes_total", "namespace")
    assert (publishes["public"], publishes["orders"]) == (3, 2)
    assert series(samples, "broker_http_publish_requests_total", "status") == {"200": 3, "401": 1}
    assert series(samples, "broker_rejections_total", "reason") == {"http_Unauthenticated": 1}
    assert series(samples, "broker_recoveries_total", "outcome") == {
        "recovered": 1,
        "unrecoverable": 1,
        "refused": 1,
    }
    # the router's meta events (wamp.session.on_join, ...) count under "wamp" but keep no history
    assert set(publishes) <= {"public", "orders", "wamp"}
    assert before[("broker_history_cursor", ())] == 0
    assert samples[("broker_history_cursor", ())] == 5  # 3 over HTTP, then 2 over WAMP
