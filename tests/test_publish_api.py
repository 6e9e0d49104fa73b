"""``POST /api/publish`` against a real node: every status code, and what a subscriber sees."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from broker.core import signing
from tests.node import PUBLISHER_SECRET, Node
from tests.rawwamp import SUBSCRIBED, RawWamp

pytestmark = pytest.mark.node


def request(
    node: Node,
    body: bytes | dict[str, Any],
    *,
    method: str = "POST",
    headers: dict[str, str] | None = None,
    sign: bool = True,
    key: str = "dev",
    secret: str = PUBLISHER_SECRET,
    path: str = "/api/publish",
) -> tuple[int, dict[str, Any], dict[str, str]]:
    """Send one request; (status, JSON body, headers)."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    all_headers = {"Content-Type": "application/json"}
    if sign:
        all_headers.update(signing.sign_headers(key, secret, method, path, raw))
    all_headers.update(headers or {})
    req = urllib.request.Request(
        node.url + path, data=raw if method == "POST" else None, headers=all_headers, method=method
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, json.loads(response.read()), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()), dict(error.headers)


@pytest.fixture
def subscriber(connect: Callable[..., RawWamp]) -> tuple[RawWamp, str]:
    topic = f"public.api.{uuid.uuid4().hex[:8]}"
    client = connect("anonymous")
    assert client.subscribe(topic)[0] == SUBSCRIBED
    return client, topic


def assert_nothing_published(node: Node, subscriber: tuple[RawWamp, str]) -> None:
    """The next event the subscriber sees is a sentinel published now: nothing came before it."""
    client, topic = subscriber
    status, body, _ = request(node, {"topic": topic, "data": "sentinel"})
    assert status == 200, body
    assert client.event()[4] == ["sentinel"]


def test_single_event_is_published_and_acknowledged(node: Node, subscriber: tuple[RawWamp, str]) -> None:
    client, topic = subscriber
    status, body, headers = request(node, {"topic": topic, "data": {"n": 1}})
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    [published] = body["published"]
    assert published["topic"] == topic
    event = client.event()
    assert event[2] == published["id"]
    assert event[4] == [{"n": 1}]
    assert published["position"] == event[5]["broker_position"]  # the position subscribers see
    assert published["position"]["seq"] == 1


def test_batch_is_published_in_order(node: Node, subscriber: tuple[RawWamp, str]) -> None:
    client, topic = subscriber
    events = [{"topic": topic, "data": n} for n in range(20)]
    status, body, _ = request(node, {"events": events})
    assert status == 200
    assert [p["topic"] for p in body["published"]] == [topic] * 20
    assert [p["position"]["seq"] for p in body["published"]] == list(range(1, 21))
    assert [client.event()[4] for _ in range(20)] == [[n] for n in range(20)]


def test_idempotent_repeat_publishes_once(node: Node, subscriber: tuple[RawWamp, str]) -> None:
    client, topic = subscriber
    message = {"topic": topic, "data": "once", "idempotency_key": uuid.uuid4().hex}
    first = request(node, message)
    second = request(node, message)  # new nonce and timestamp: a retry, not a replay
    assert first[0] == second[0] == 200
    assert second[1] == first[1]
    assert second[2]["Idempotent-Replayed"] == "true"
    assert client.event()[4] == ["once"]
    assert_nothing_published(node, subscriber)


def test_idempotency_key_with_other_body_is_422(node: Node, subscriber: tuple[RawWamp, str]) -> None:
    client, topic = subscriber
    key = uuid.uuid4().hex
    assert request(node, {"topic": topic, "data": 1, "idempotency_key": key})[0] == 200
    client.event()
    status, body, _ = request(node, {"topic": topic, "data": 2, "idempotency_key": key})
    assert (status, body["error"]) == (422, "broker.error.idempotency_mismatch")
    assert_nothing_published(node, subscriber)


def test_replayed_request_is_409(node: Node, subscriber: tuple[RawWamp, str]) -> None:
    client, topic = subscriber
    raw = json.dumps({"topic": topic, "data": "x"}).encode()
    headers = signing.sign_headers("dev", PUBLISHER_SECRET, "POST", "/api/publish", raw)
    assert request(node, raw, headers=headers, sign=False)[0] == 200
    client.event()
    status, body, _ = request(node, raw, headers=headers, sign=False)
    assert (status, body["error"]) == (409, "broker.error.replay")
    assert "already used" in body["message"]
    assert_nothing_published(node, subscriber)


def test_resplit_signature_is_401(node: Node, subscriber: tuple[RawWamp, str]) -> None:
    """Move a digit from the timestamp into the nonce, keep the signature: refused."""
    raw = json.dumps({"topic": subscriber[1], "data": "x"}).encode()
    headers = signing.sign_headers("dev", PUBLISHER_SECRET, "POST", "/api/publish", raw)
    ts, nonce = headers[signing.HEADER_TIMESTAMP], headers[signing.HEADER_NONCE]
    headers[signing.HEADER_TIMESTAMP], headers[signing.HEADER_NONCE] = ts[:-1], ts[-1] + nonce
    status, body, _ = request(node, raw, headers=headers, sign=False)
    assert (status, body["error"]) == (401, "broker.error.unauthenticated")
    assert_nothing_published(node, subscriber)


@pytest.mark.parametrize(
    ("case", "kwargs", "message"),
    [
        ("unsigned", {"sign": False}, "missing X-Broker-Key header"),
        ("wrong secret", {"secret": "wrong"}, "signature does not match"),
        ("unknown key", {"key": "nobody"}, "unknown publisher key 'nobody'"),
        ("stale timestamp", {"headers": {"X-Broker-Timestamp": "1000000000"}}, "signature does not match"),
    ],
)
def test_authentication_failures_are_401(
    node: Node, subscriber: tuple[RawWamp, str], case: str, kwargs: dict[str, Any], message: str
) -> None:
    status, body, _ = request(node, {"topic": subscriber[1], "data": case}, **kwargs)
    assert (status, body["error"]) == (401, "broker.error.unauthenticated")
    assert message in body["message"]
    assert_nothing_published(node, subscriber)


def test_old_but_correctly_signed_timestamp_is_401(node: Node) -> None:
    raw = json.dumps({"topic": "public.x", "data": 1}).encode()
    headers = signing.sign_headers("dev", PUBLISHER_SECRET, "POST", "/api/publish", raw, now=1_000_000_000)
    status, body, _ = request(node, raw, headers=headers, sign=False)
    assert status == 401
    assert "outside the allowed window of 300 s" in body["message"]


@pytest.mark.parametrize(
    ("body", "status", "error", "message"),
    [
        (b"{not json", 400, "broker.error.bad_request", "body is not valid JSON"),
        (b"[1, 2]", 400, "broker.error.bad_request", "body must be a JSON object"),
        (
            b'{"topic": "public.x", "data": [18446744073709551616]}',
            400,
            "broker.error.bad_request",
            "body is not valid: an integer of 65 bits: MessagePack subscribers can be sent at most 64",
        ),
        (
            b'{"topic": "public.x", "data": "\\udc00"}',
            400,
            "broker.error.bad_request",
            "body is not valid: a JSON string holds a lone surrogate (\\udc00), not Unicode text",
        ),
        ({"data": 1}, 400, "broker.error.bad_request", "missing field 'topic'"),
        ({"topic": "public.x", "extra": 1}, 400, "broker.error.bad_request", "unknown field 'extra'"),
        ({"events": []}, 400, "broker.error.bad_request", "events must be a list of 1 to 100 events"),
        ({"topic": "a b", "data": 1}, 400, "wamp.error.invalid_uri", "invalid topic 'a b'"),
        ({"topic": 12345, "data": 1}, 400, "wamp.error.invalid_uri", "a URI must be a string"),
        (
            {"events": [{"topic": "public.x"}, {"topic": "a#b"}]},
            400,
            "wamp.error.invalid_uri",
            "invalid topic of events[1] 'a#b'",
        ),
        ({"topic": "broker.internal", "data": 1}, 403, "wamp.error.not_authorized", "may not publish"),
        ({"topic": "wamp.session.on_join", "data": 1}, 403, "wamp.error.not_authorized", "may not publish"),
    ],
)
def test_bad_bodies(
    node: Node, subscriber: tuple[RawWamp, str], body: Any, status: int, error: str, message: str
) -> None:
    got_status, got, _ = request(node, body)
    assert (got_status, got["error"]) == (status, error)
    assert message in got["message"]
    assert_nothing_published(node, subscriber)


def test_batch_with_one_forbidden_topic_publishes_nothing(
    node: Node, subscriber: tuple[RawWamp, str]
) -> None:
    events = [{"topic": subscriber[1], "data": 1}, {"topic": "broker.x", "data": 2}]
    assert request(node, {"events": events})[0] == 403
    assert_nothing_published(node, subscriber)


def test_too_large_is_413(node: Node, subscriber: tuple[RawWamp, str]) -> None:
    status, body, _ = request(node, {"topic": subscriber[1], "data": "x" * 70_000})
    assert (status, body["error"]) == (413, "broker.error.too_large")
    assert_nothing_published(node, subscriber)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
def test_wrong_content_type_is_415(node: Node, subscriber: tuple[RawWamp, str], content_type: str) -> None:
    status, body, _ = request(
        node, {"topic": subscriber[1], "data": 1}, headers={"Content-Type": content_type}
    )
    assert (status, body["error"]) == (415, "broker.error.unsupported_media_type")
    assert_nothing_published(node, subscriber)


def test_get_is_405(node: Node) -> None:
    status, body, _ = request(node, b"", method="GET", sign=False)
    assert (status, body["error"]) == (405, "broker.error.method_not_allowed")


def test_cross_origin_browser_request_is_refused_without_cors(
    node: Node, subscriber: tuple[RawWamp, str]
) -> None:
    """A browser on another site: even correctly signed, no CORS header and no publish."""
    status, body, headers = request(
        node, {"topic": subscriber[1], "data": 1}, headers={"Origin": "https://evil.example"}
    )
    assert (status, body["error"]) == (403, "wamp.error.not_authorized")
    assert "Access-Control-Allow-Origin" not in headers
    preflight = request(node, b"", method="OPTIONS", sign=False, headers={"Origin": "https://evil.example"})
    assert preflight[0] == 405
    assert "Access-Control-Allow-Origin" not in preflight[2]
    assert_nothing_published(node, subscriber)


def test_unknown_api_path_is_404(node: Node) -> None:
    status, body, _ = request(node, {"topic": "public.x"}, path="/api/nothing")
    assert (status, body["error"]) == (404, "broker.error.not_found")


def test_rate_limited_key_gets_429(make_node: Callable[..., Node]) -> None:
    def slow(config: dict[str, Any]) -> None:
        extra = config["workers"][0]["components"][0]["extra"]
        extra["publishers"]["dev"]["rate_limit"] = {"per_second": 0.01, "burst": 2}

    small = make_node(slow)
    statuses = [request(small, {"topic": "public.x", "data": n}) for n in range(3)]
    assert [s[0] for s in statuses] == [200, 200, 429]
    assert statuses[2][1]["error"] == "broker.error.rate_limited"
    assert int(statuses[2][2]["Retry-After"]) >= 1


def nested(depth: int) -> Any:
    """A JSON value of ``depth`` levels of arrays (``depth`` 0: a number)."""
    return json.loads("[" * depth + "0" + "]" * depth)


@pytest.mark.parametrize("depth", [101, 990, 32_000])
def test_body_nested_deeper_than_websocket_allows_is_400(
    node: Node, subscriber: tuple[RawWamp, str], depth: int
) -> None:
    """The body is one level (the object) plus ``data``: the same 100 levels a WAMP message may have."""
    data = b"[" * (depth - 1) + b"]" * (depth - 1)
    raw = b'{"topic": "%s", "data": %s}' % (subscriber[1].encode(), data)
    assert len(raw) < 65536  # under the size limit: refused for its nesting alone
    status, body, headers = request(node, raw)
    assert (status, headers["Content-Type"]) == (400, "application/json")
    message = "body is JSON nested deeper than 100 levels"
    assert body == {"error": "broker.error.bad_request", "message": message}
    assert_nothing_published(node, subscriber)


def test_body_nested_exactly_100_deep_is_published(node: Node, subscriber: tuple[RawWamp, str]) -> None:
    client, topic = subscriber
    status, body, _ = request(node, {"topic": topic, "data": nested(99)})
    assert status == 200, body
    assert client.event()[4] == [nested(99)]
