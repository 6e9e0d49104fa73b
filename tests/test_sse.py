"""``GET /sse`` against real nodes: streams, resume from ``Last-Event-ID``, every refusal.

Each stream is read over a raw socket (tests/sseclient.py, as curl reads it)
or by curl itself; events are published with the HTTP API. Every refused
request is answered with its exact status and JSON body while a good stream
open beside it goes on receiving.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from broker.client import Publisher
from broker.core.tokens import mint
from tests.node import PUBLISHER_SECRET, TOKEN_SECRET, Node
from tests.sseclient import SseClient
from tests.test_metrics import scrape, series

pytestmark = pytest.mark.node


def publisher(node: Node) -> Publisher:
    return Publisher(node.url, "dev", PUBLISHER_SECRET)


def target(*topics: str, **params: str) -> str:
    query = [("topic", t) for t in topics] + list(params.items())
    return "/sse?" + urllib.parse.urlencode(query)


@pytest.fixture
def streams() -> Iterator[Callable[..., SseClient]]:
    opened: list[SseClient] = []

    def open_(node: Node, path: str, **kwargs: Any) -> SseClient:
        client = SseClient(node.port, path, **kwargs).open()
        opened.append(client)
        return client

    yield open_
    for client in opened:
        client.close()


def ready(client: SseClient) -> dict[str, Any]:
    """The stream's ``ready`` event (first, or after a replay): its position."""
    assert client.status == 200, client.body()
    first = client.next()
    assert first.event == "ready", first
    assert first.id == f"{first.data['epoch']}:{first.data['cursor']}"
    return dict(first.data)


def test_a_stream_gets_live_events_with_positions_as_ids(
    node: Node, streams: Callable[..., SseClient]
) -> None:
    prefix = f"public.sse.{uuid.uuid4().hex[:8]}."
    client = streams(node, target(prefix, match="prefix"))
    assert client.response_headers["content-type"] == "text/event-stream; charset=utf-8"
    assert client.response_headers["x-accel-buffering"] == "no"
    ready(client)
    assert client.retry == 2000
    sent = [publisher(node).publish(f"{prefix}{n}", {"n": n}) for n in range(3)]
    publisher(node).publish("public.other.x", "not for this stream")
    got = client.events(3)
    for event, result, n in zip(got, sent, range(3), strict=True):
        assert result.position is not None
        assert event.event == "event"
        assert event.id == f"{result.position['epoch']}:{result.position['cursor']}"
        assert event.data == {
            "topic": f"{prefix}{n}",
            "args": [{"n": n}],
            "kwargs": {},
            "position": result.position,
        }


def test_last_event_id_replays_exactly_what_was_missed(node: Node, streams: Callable[..., SseClient]) -> None:
    topic = f"public.sse.{uuid.uuid4().hex[:8]}"
    first = streams(node, target(topic))
    ready(first)
    publisher(node).publish(topic, 1)
    [seen] = first.events(1)
    first.close()
    for n in (2, 3, 4):  # while the browser is away
        publisher(node).publish(topic, n)
    again = streams(node, target(topic), headers={"Last-Event-ID": str(seen.id)})
    replayed = again.events(3)
    assert [e.data["args"] for e in replayed] == [[2], [3], [4]]
    assert [e.data["position"]["seq"] for e in replayed] == [2, 3, 4]
    position = ready(again)
    assert position["cursor"] >= replayed[-1].data["position"]["cursor"]
    publisher(node).publish(topic, 5)
    [live] = again.events(1)
    assert live.data["args"] == [5]  # nothing twice across the replay/live boundary


def test_since_in_the_query_resumes_like_last_event_id(node: Node, streams: Callable[..., SseClient]) -> None:
    topic = f"public.sse.{uuid.uuid4().hex[:8]}"
    one = publisher(node).publish(topic, 1).position
    publisher(node).publish(topic, 2)
    assert one is not None
    client = streams(node, target(topic, since=f"{one['epoch']}:{one['cursor']}"))
    [event] = client.events(1)
    assert event.data["args"] == [2]
    ready(client)


def test_another_epoch_is_one_unrecoverable_event_then_live(
    node: Node, streams: Callable[..., SseClient]
) -> None:
    topic = f"public.sse.{uuid.uuid4().hex[:8]}"
    before = series(scrape(node)[1], "broker_recoveries_total", "outcome").get("unrecoverable", 0)
    client = streams(node, target(topic), headers={"Last-Event-ID": "0123456789abcdef:5"})
    event = client.next()
    assert event.event == "unrecoverable"
    assert event.data["reason"] == "epoch changed: the history was reset"
    assert event.id == f"{event.data['epoch']}:{event.data['cursor']}"
    assert ready(client) == {"epoch": event.data["epoch"], "cursor": event.data["cursor"]}
    publisher(node).publish(topic, "live")
    assert [e.data["args"] for e in client.events(1)] == [["live"]]
    # counted as broker.recover counts it: the lost-events alert covers streams too
    after = series(scrape(node)[1], "broker_recoveries_total", "outcome").get("unrecoverable", 0)
    assert after == before + 1


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")


def test_each_bad_request_is_refused_exactly_and_a_good_stream_goes_on(
    node: Node, streams: Callable[..., SseClient]
) -> None:
    topic = f"public.sse.{uuid.uuid4().hex[:8]}"
    good = streams(node, target(topic))
    ready(good)
    issued = float(int(time.time()) - 3600)  # tokens carry whole seconds
    expired = mint(TOKEN_SECRET, "42", [{"uri": "user.42.", "match": "prefix"}], ttl=60, now=issued)
    cases: list[tuple[str, dict[str, str], int, dict[str, str]]] = [
        (
            target("public..x"),
            {},
            400,
            {
                "error": "wamp.error.invalid_uri",
                "message": "invalid topic 'public..x': URI components must be non-empty and contain "
                "no whitespace, '.' or '#'",
            },
        ),
        (
            target("public.", match="glob"),
            {},
            400,
            {
                "error": "wamp.error.invalid_uri",
                "message": "invalid match policy 'glob' (expected one of exact, prefix, wildcard)",
            },
        ),
        (
            "/sse",
            {},
            400,
            {"error": "broker.error.bad_request", "message": "name at least one topic: /sse?topic=<uri>"},
        ),
        (
            target("private.x"),
            {},
            403,
            {
                "error": "wamp.error.not_authorized",
                "message": "an anonymous stream (no token) may not subscribe to 'private.x' (exact)",
            },
        ),
        (
            target(topic),
            {"Last-Event-ID": "nope"},
            400,
            {
                "error": "broker.error.bad_request",
                "message": "invalid Last-Event-ID 'nope': expected <epoch>:<cursor> "
                "as this node sent it in id:",
            },
        ),
        (
            target("user.42.inbox", token=expired),
            {},
            401,
            {"error": "wamp.error.not_authorized", "message": f"token expired at {_iso(issued + 60)}"},
        ),
        (
            target(topic),
            {"Origin": "http://evil.example"},
            403,
            {"error": "wamp.error.not_authorized", "message": "origin 'http://evil.example' is not allowed"},
        ),
    ]
    for path, headers, status, body in cases:
        refused = streams(node, path, headers=headers)
        assert (refused.status, refused.body()) == (status, body), path
        assert refused.response_headers["content-type"] == "application/json"
    posted = urllib.request.Request(f"{node.url}{target(topic)}", data=b"{}", method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused_post:
        urllib.request.urlopen(posted, timeout=10)
    assert (refused_post.value.code, json.loads(refused_post.value.read())) == (
        405,
        {"error": "broker.error.method_not_allowed", "message": "/sse answers GET only"},
    )
    result = publisher(node).publish(topic, "still here")
    [event] = good.events(1)
    assert event.data["args"] == ["still here"]
    assert event.data["position"] == result.position


def test_a_token_in_the_query_or_a_cookie_opens_its_own_topics(
    node: Node, streams: Callable[..., SseClient]
) -> None:
    token = mint(TOKEN_SECRET, "42", [{"uri": "user.42.", "match": "prefix"}], ttl=600)
    by_query = streams(node, target("user.42.", match="prefix", token=token))
    by_cookie = streams(node, target("user.42.", match="prefix"), headers={"Cookie": f"broker_token={token}"})
    ready(by_query)
    ready(by_cookie)
    other = streams(node, target("user.43.", match="prefix", token=token))
    assert (other.status, other.body()) == (
        403,
        {
            "error": "wamp.error.not_authorized",
            "message": "this token may not subscribe to 'user.43.' (prefix)",
        },
    )
    publisher(node).publish("user.43.inbox", "for 43")
    publisher(node).publish("user.42.inbox", "for 42")
    for client in (by_query, by_cookie):
        [event] = client.events(1)
        assert (event.data["topic"], event.data["args"]) == ("user.42.inbox", ["for 42"])


def short_token_life(config: dict[str, Any]) -> None:
    extra = config["workers"][0]["components"][0]["extra"]
    extra["tokens"]["leeway"] = 1
    web = config["workers"][0]["transports"][0]
    web["paths"]["sse"]["extra"] = {"keepalive_seconds": 0.5}


def test_token_expiry_ends_the_stream_with_a_closed_event(
    make_node: Callable[..., Node], streams: Callable[..., SseClient]
) -> None:
    node = make_node(short_token_life)
    token = mint(TOKEN_SECRET, "7", [{"uri": "user.7.", "match": "prefix"}], ttl=2)
    client = streams(node, target("user.7.", match="prefix", token=token))
    ready(client)
    anonymous = streams(node, target("public.", match="prefix"))
    ready(anonymous)
    ending = client.next()  # at exp + leeway: 3 s; keep-alives meanwhile
    assert (ending.event, ending.data) == (
        "closed",
        {"error": "broker.error.token_expired", "message": "the token expired: reconnect with a fresh one"},
    )
    assert client.ended()
    assert "keepalive" in client.comments
    publisher(node).publish("public.after", "anonymous goes on")
    assert [e.data["args"] for e in anonymous.events(1)] == [["anonymous goes on"]]
    _, samples = scrape(node)
    assert series(samples, "broker_sse_closes_total", "reason").get("token_expired") == 1


def access_log(config: dict[str, Any]) -> None:
    config["workers"][0]["transports"][0]["options"]["access_log"] = True


def test_the_token_stays_out_of_the_access_log(
    make_node: Callable[..., Node], streams: Callable[..., SseClient]
) -> None:
    node = make_node(access_log, loglevel="info")
    token = mint(TOKEN_SECRET, "7", [{"uri": "user.7.", "match": "prefix"}], ttl=600)
    client = streams(node, target("user.7.", match="prefix", token=token))
    ready(client)
    client.close()
    refused = streams(node, target("user.8.x", token=token))  # refused: logged at once
    assert refused.status == 403
    refused.body()
    # Twisted logs a request when it is answered: a stream the client left never is
    logged = "GET /sse?topic=user.8.x&token=REDACTED HTTP/1.0"
    deadline = time.monotonic() + 20
    while logged not in node.log() and time.monotonic() < deadline:
        time.sleep(0.1)
    log = node.log()
    assert logged in log
    assert token not in log


def test_curl_reads_the_stream(node: Node) -> None:
    topic = f"public.sse.{uuid.uuid4().hex[:8]}"
    curl = subprocess.Popen(["curl", "-sN", f"{node.url}{target(topic)}"], stdout=subprocess.PIPE, text=True)
    try:
        assert curl.stdout is not None
        lines = [curl.stdout.readline() for _ in range(6)]  # retry, blank, the ready event
        assert lines[0] == "retry: 2000\n"
        assert lines[3] == "event: ready\n"
        result = publisher(node).publish(topic, {"via": "curl"})
        assert result.position is not None
        event = [curl.stdout.readline() for _ in range(4)]
        assert event[:2] == [
            f"id: {result.position['epoch']}:{result.position['cursor']}\n",
            "event: event\n",
        ]
        assert event[2].startswith('data: {"topic":"' + topic + '","args":[{"via":"curl"}]')
    finally:
        curl.terminate()
        curl.wait(timeout=10)


def small_buffer(config: dict[str, Any]) -> None:
    config["workers"][0]["components"][0]["extra"]["slow_subscriber"]["max_buffer_bytes"] = 64 * 1024


def test_a_stream_that_does_not_read_is_closed_and_counted(
    make_node: Callable[..., Node], streams: Callable[..., SseClient]
) -> None:
    node = make_node(small_buffer)
    topic = f"public.slow.{uuid.uuid4().hex[:8]}"
    streams(node, target(topic), rcvbuf=4096)  # opened, never read
    good = streams(node, target(topic))
    ready(good)
    backend = publisher(node)
    payload = "x" * 20_000
    closes: dict[str, float] = {}
    sent = 0
    while closes.get("slow", 0) < 1 and sent < 2000:  # the kernel's buffers fill first
        backend.publish(topic, payload)
        sent += 1
        if sent % 20 == 0:
            closes = series(scrape(node)[1], "broker_sse_closes_total", "reason")
    assert closes.get("slow") == 1
    assert len(good.events(sent)) == sent  # the reader beside it got every event
    _, samples = scrape(node)
    assert series(samples, "broker_rejections_total", "reason").get("SlowSubscriber") == 1
    assert samples[("broker_sse_connections", ())] == 1.0  # the good one


def test_metrics_count_streams_and_events(node: Node, streams: Callable[..., SseClient]) -> None:
    topic = f"public.sse.{uuid.uuid4().hex[:8]}"
    before = series(scrape(node)[1], "broker_sse_events_total", "kind").get("live", 0)
    client = streams(node, target(topic))
    ready(client)
    publisher(node).publish(topic, 1)
    client.events(1)
    _, samples = scrape(node)
    assert series(samples, "broker_sse_events_total", "kind").get("live", 0) == before + 1
    assert samples[("broker_sse_connections", ())] >= 1


def three_connections(config: dict[str, Any]) -> None:
    config["workers"][0]["transports"][0]["max_connections"] = 3


def test_streams_count_against_max_connections(
    make_node: Callable[..., Node], streams: Callable[..., SseClient]
) -> None:
    node = make_node(three_connections)
    topic = f"public.sse.{uuid.uuid4().hex[:8]}"
    opened = [streams(node, target(topic)) for _ in range(3)]
    for client in opened:
        ready(client)
    with pytest.raises((EOFError, ConnectionError)):  # crossbar's cap: closed at accept
        streams(node, target(topic))
    opened[2].close()
    deadline = time.monotonic() + 20
    while True:  # the node notices the freed slot when it reads the close
        try:
            fourth = streams(node, target(topic))
            break
        except (EOFError, ConnectionError):
            assert time.monotonic() < deadline, "the freed slot was never reused"
            time.sleep(0.1)
    ready(fourth)
    fourth.close()  # a slot for the publish (the SDK retries until the node has freed it)
    publisher(node).publish(topic, "to the streams that stayed")
    for client in opened[:2]:
        assert [e.data["args"] for e in client.events(1)] == [["to the streams that stayed"]]
