"""``GET /metrics``: known workloads against fresh nodes and the exact series they produce,
plus the pure parts (namespace cap, latency buckets, the setting) on their own."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.exceptions import InvalidStatus

from broker.client import Publisher, Unauthenticated
from broker.config.settings import parse_settings
from broker.core import signing
from broker.core.metering import OTHER, LatencyHistogram, NamespaceLabels
from broker.errors import ConfigError
from tests.node import BACKEND_SECRET, PUBLISHER_SECRET, Node
from tests.rawwamp import ABORT, ERROR, PUBLISHED, RESULT, SUBSCRIBED, Closed, RawWamp

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


def post(node: Node, raw: bytes, headers: dict[str, str]) -> int:
    """POST ``raw`` to /api/publish with ``headers``; the status."""
    request = urllib.request.Request(
        f"{node.url}/api/publish",
        data=raw,
        headers={"Content-Type": "application/json", **headers},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


@pytest.mark.node
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
    # nobody subscribed to public.m.* or orders.x: nothing delivered, no latency observed
    assert set(series(samples, "broker_deliveries_total", "namespace")) <= {"wamp"}
    assert samples[("broker_delivery_latency_seconds_count", ())] == 0
    assert before[("broker_history_cursor", ())] == 0
    assert samples[("broker_history_cursor", ())] == 5  # 3 over HTTP, then 2 over WAMP


@pytest.mark.node
def test_a_first_load_asking_for_the_position_is_not_counted_unrecoverable(
    make_node: Callable[..., Node],
) -> None:
    """What a fresh page's subscription asks first (epoch "": no position yet) is a
    position request; a real gap beside it still counts as unrecoverable."""
    node = make_node()
    publisher = Publisher(node.url, "dev", PUBLISHER_SECRET)
    publisher.publish("public.first.load", {"n": 1})
    page = RawWamp(node.ws_url, origin=node.origin)
    try:
        assert page.hello()[0] == 2  # anonymous, as a dashboard
        assert page.subscribe("public.", match="prefix")[0] == SUBSCRIBED
        first = page.call("broker.recover", ["public."], {"match": "prefix", "epoch": "", "after": 0})
        assert first[0] == RESULT
        answer = first[3][0]
        nothing_missed = {"unrecoverable": False, "events": [], "more": False, "cursor": 1}
        assert answer == {**nothing_missed, "epoch": answer["epoch"]}
        gone = page.call("broker.recover", ["public."], {"match": "prefix", "epoch": "gone", "after": 0})
        assert gone[0] == RESULT and gone[3][0]["unrecoverable"]
        _, samples = scrape(node)
    finally:
        page.close()
    assert series(samples, "broker_recoveries_total", "outcome") == {"position": 1, "unrecoverable": 1}


def chunked(size: int) -> Callable[[dict[str, Any]], None]:
    """A config change: crossbar dispatches to at most ``size`` receivers per reactor turn."""

    def mutate(config: dict[str, Any]) -> None:
        config["workers"][0]["realms"][0]["options"]["event_dispatching_chunk_size"] = size

    return mutate


@pytest.mark.node
@pytest.mark.parametrize("chunk_size", [None, 2], ids=["one-turn", "chunked"])
def test_deliveries_and_latency_of_a_fan_out(make_node: Callable[..., Node], chunk_size: int | None) -> None:
    """3 subscribers, 5 publishes and a batch of 4: 27 deliveries, 9 latencies — also when
    crossbar sends the 3 EVENTs of a publication in two reactor turns (chunks of 2). The batch
    is one step of the metrics (a run of one namespace), counted once per event."""
    node = make_node(chunked(chunk_size) if chunk_size else None)
    _, before = scrape(node)
    subscribers = [RawWamp(node.ws_url, origin=node.origin) for _ in range(3)]
    try:
        for subscriber in subscribers:
            assert subscriber.hello()[0] == 2
            assert subscriber.subscribe("public.fan")[0] == SUBSCRIBED
        _, subscribed = scrape(node)
        publisher = Publisher(node.url, "dev", PUBLISHER_SECRET)
        for n in range(5):
            publisher.publish("public.fan", {"n": n})
        publisher.publish_many([("public.fan", {"n": n}) for n in range(5, 9)])
        for subscriber in subscribers:  # every EVENT arrived, so every dispatch step has run
            assert [subscriber.event()[4] for _ in range(9)] == [[{"n": n}] for n in range(9)]
        _, samples = scrape(node)
    finally:
        for subscriber in subscribers:
            subscriber.close()

    assert series(samples, "broker_deliveries_total", "namespace")["public"] == 27
    assert series(samples, "broker_publishes_total", "namespace")["public"] == 9
    latency = "broker_delivery_latency_seconds"
    assert samples[(f"{latency}_count", ())] == 9
    assert samples[(f"{latency}_bucket", (("le", "+Inf"),))] == 9
    assert 0 < samples[(f"{latency}_sum", ())] < 9 * 10
    # one subscription (public.fan, exact) with three sessions on it
    assert subscribed[("broker_subscriptions", ())] == before[("broker_subscriptions", ())] + 1
    assert subscribed[("broker_subscribers", ())] == before[("broker_subscribers", ())] + 3


@pytest.mark.node
def test_rejections_cover_auth_size_and_replay(make_node: Callable[..., Node]) -> None:
    node = make_node()
    wrong_secret = RawWamp(node.ws_url, origin=node.origin)
    bad_token = RawWamp(node.ws_url, origin=node.origin)
    anonymous = RawWamp(node.ws_url, origin=node.origin)
    oversize = RawWamp(node.ws_url, origin=node.origin)
    try:
        assert wrong_secret.hello(authid="backend", secret="not-the-secret")[0] == ABORT
        assert bad_token.hello(ticket="not-a-token")[0] == ABORT
        assert anonymous.hello()[0] == 2
        assert anonymous.subscribe("orders.x")[0] == ERROR  # anonymous may subscribe to public. only
        assert anonymous.publish("public.x", [1])[0] == ERROR  # ... and publish nowhere
        assert anonymous.publish("public.x", [2])[0] == ERROR  # (refused from crossbar's cache now)
        assert oversize.hello()[0] == 2
        oversize.send(json.dumps([16, 1, {}, "public.x", ["x" * 70_000]]))
        closed = oversize.wait_closed()
        assert isinstance(closed, Closed) and closed.code == 1009
    finally:
        for client in (wrong_secret, bad_token, anonymous, oversize):
            client.close()

    with pytest.raises(InvalidStatus) as refused:  # a page from an origin not in allowed_origins
        RawWamp(node.ws_url, origin="https://evil.example")
    assert refused.value.response.status_code == 400

    assert post(node, b"x" * 70_000, {}) == 413
    body = json.dumps({"topic": "public.x", "data": 1}).encode()
    headers = signing.sign_headers("dev", PUBLISHER_SECRET, "POST", "/api/publish", body)
    assert post(node, body, headers) == 200
    assert post(node, body, headers) == 409  # the same signed request again: a replay

    expected = {
        "AuthenticationFailed": 2,  # failed WAMP-CRA and ticket logins
        "NotAuthorized": 3,  # one subscribe, two publishes
        "MessageTooLarge": 1,  # over the WebSocket's max_message_size
        "ForeignOrigin": 1,  # a WebSocket handshake from an origin not allowed
        "http_PayloadTooLarge": 1,
        "http_Replayed": 1,
    }
    _, samples = scrape(node)
    assert series(samples, "broker_rejections_total", "reason") == expected
    assert node.rejections() == expected


@pytest.mark.node
def test_namespace_label_is_capped(make_node: Callable[..., Node]) -> None:
    def cap(config: dict[str, Any]) -> None:
        config["workers"][0]["components"][0]["extra"]["metrics"] = {"max_namespaces": 2}

    node = make_node(cap)
    publisher = Publisher(node.url, "dev", PUBLISHER_SECRET)
    for topic in ("alpha.1", "beta.1", "gamma.1", "delta.1", "alpha.2"):
        publisher.publish(topic, {})
    _, samples = scrape(node)
    publishes = series(samples, "broker_publishes_total", "namespace")
    publishes.pop("wamp", None)  # meta events: always labelled, never capped
    assert publishes == {"alpha": 2, "beta": 1, OTHER: 2}


def test_namespace_labels_cap_distinct_namespaces() -> None:
    labels = NamespaceLabels(limit=2)
    assert [labels.label(t) for t in ("a.1", "wamp.session.on_join", "b", "c.1", "a.2", "d.x.y")] == [
        "a",
        "wamp",
        "b",
        OTHER,
        "a",
        OTHER,
    ]
    assert labels.admitted() == ["a", "b"]  # overflow namespaces are not remembered
    for _ in range(1000):
        labels.label("x.1")
    assert labels.admitted() == ["a", "b"]
    with pytest.raises(ValueError, match="positive integer"):
        NamespaceLabels(limit=0)


def test_latency_histogram_buckets_are_cumulative_and_inclusive() -> None:
    histogram = LatencyHistogram((0.001, 0.01, 1.0))
    for seconds in (0.0005, 0.001, 0.002, 0.5, 30.0):
        histogram.observe(seconds)
    assert histogram.cumulative() == [("0.001", 2), ("0.01", 3), ("1.0", 4), ("+Inf", 5)]
    assert histogram.count == 5
    assert histogram.sum == pytest.approx(30.5035)
    histogram.observe(0.005, count=3)  # three publishes of one batch's run, one latency
    assert histogram.cumulative() == [("0.001", 2), ("0.01", 6), ("1.0", 7), ("+Inf", 8)]
    assert histogram.sum == pytest.approx(30.5185)
    with pytest.raises(ValueError, match="strictly increasing"):
        LatencyHistogram((0.1, 0.01))


@pytest.mark.parametrize(
    ("metrics", "message"),
    [
        ({"max_namespaces": 0}, "must be an integer from 1 to 10000"),
        ({"max_namespaces": "100"}, "must be an integer from 1 to 10000"),
        ({"max_labels": 5}, "unknown key 'max_labels'"),
    ],
)
def test_metrics_setting_errors_name_the_path(metrics: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        parse_settings({"metrics": metrics}, "$.extra")
    bad = next(iter(metrics))
    assert caught.value.path == f"$.extra.metrics.{bad}"


def test_metrics_setting_default() -> None:
    assert parse_settings({}).metrics.max_namespaces == 100
    assert parse_settings({"metrics": {"max_namespaces": 7}}).metrics.max_namespaces == 7
