"""``GET /sse`` on a cluster: two real nodes sharing one real Redis.

A stream on one node receives what is published on the other (HTTP API and
WAMP alike) once, with the position the publisher was given, because the
stream taps the same delivery path WAMP subscribers are served from, the
engine's feed included; and a stream that reconnects to either node resumes
from the one shared history. A node the shared log left behind closes its
streams (``broker.error.delivery_gap``), and their reconnects replay the rest.
"""

from __future__ import annotations

import os
import secrets
import signal
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from broker.client import Publisher
from tests.node import PUBLISHER_SECRET, Node
from tests.rawwamp import PUBLISHED
from tests.redisserver import RedisServer
from tests.sseclient import SseClient
from tests.test_cluster import on_redis
from tests.test_cluster_integrity import BATCHES, LOG_MAX, TIMEOUT, lagging_batch, with_log_max
from tests.test_metrics import scrape, series
from tests.test_publish_api import request
from tests.test_recovery import backend

pytestmark = pytest.mark.node


@pytest.fixture
def pair(make_node: Callable[..., Node], redis_server: RedisServer) -> tuple[Node, Node]:
    mutate = on_redis(redis_server.url, f"s{secrets.token_hex(6)}")
    return make_node(mutate), make_node(mutate)


@pytest.fixture
def streams() -> Iterator[Callable[..., SseClient]]:
    opened: list[SseClient] = []

    def open_(node: Node, target: str, **kwargs: Any) -> SseClient:
        client = SseClient(node.port, target, **kwargs).open()
        opened.append(client)
        return client

    yield open_
    for client in opened:
        client.close()


def test_events_published_on_one_node_reach_a_stream_on_the_other(
    pair: tuple[Node, Node], streams: Callable[..., SseClient]
) -> None:
    a, b = pair
    prefix = f"public.ssecluster.{uuid.uuid4().hex[:8]}."
    on_b = streams(b, f"/sse?topic={prefix}&match=prefix")
    on_a = streams(a, f"/sse?topic={prefix}&match=prefix")
    for stream in (on_a, on_b):
        assert stream.status == 200
        assert stream.next().event == "ready"
    by_http = Publisher(a.url, "dev", PUBLISHER_SECRET).publish(f"{prefix}http", "via http on a")
    wamp = backend(a)
    try:
        answer = wamp.publish(f"{prefix}wamp", ["via wamp on a"])
        assert answer is not None and answer[0] == PUBLISHED
    finally:
        wamp.close()
    for stream in (on_b, on_a):  # the other node's stream, and the origin's, alike
        got = stream.events(2)
        assert [(e.data["topic"], e.data["args"]) for e in got] == [
            (f"{prefix}http", ["via http on a"]),
            (f"{prefix}wamp", ["via wamp on a"]),
        ]
        assert got[0].data["position"] == by_http.position
        assert [e.data["position"]["seq"] for e in got] == [1, 1]
    # nothing came twice: the next event on b is one published now, on b
    sentinel = Publisher(b.url, "dev", PUBLISHER_SECRET).publish(f"{prefix}http", "sentinel")
    [next_one] = on_b.events(1)
    assert (next_one.data["args"], next_one.data["position"]) == (["sentinel"], sentinel.position)
    last_id = next_one.id
    on_b.close()
    missed = Publisher(a.url, "dev", PUBLISHER_SECRET).publish(f"{prefix}http", "while away")
    # the browser reconnects to the other node (a proxy picked it): the shared history answers
    resumed = streams(a, f"/sse?topic={prefix}&match=prefix", headers={"Last-Event-ID": str(last_id)})
    [replayed] = resumed.events(1)
    assert (replayed.data["args"], replayed.data["position"]) == (["while away"], missed.position)
    assert resumed.next().event == "ready"


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis")
    try:
        yield server
    finally:
        server.stop()


def test_a_stream_on_a_node_the_log_left_behind_is_closed_and_its_reconnect_replays_everything(
    make_node: Callable[..., Node], own_redis: RedisServer, streams: Callable[..., SseClient]
) -> None:
    """As a WAMP subscriber there is ended with broker.error.delivery_gap (test_cluster_integrity.py),
    a stream gets ``closed`` naming it, nothing after the gap; its Last-Event-ID replays the rest."""
    mutate = with_log_max(on_redis(own_redis.url, f"g{secrets.token_hex(4)}", timeout=TIMEOUT), LOG_MAX)
    a, b = make_node(mutate), make_node(mutate)
    topic = f"public.ssegap.{uuid.uuid4().hex[:8]}"
    lagging, beside = streams(a, f"/sse?topic={topic}"), streams(b, f"/sse?topic={topic}")
    for stream in (lagging, beside):
        assert stream.next().event == "ready"
    status, body, _ = request(b, {"topic": topic, "data": "before"})
    assert status == 200, body
    [before] = lagging.events(1)
    assert before.data["position"] == body["published"][0]["position"]
    for worker in a.workers:
        os.kill(worker, signal.SIGSTOP)
    try:
        for number in range(BATCHES):
            status, body, _ = request(b, {"events": lagging_batch(number, topic)})
            assert status == 200, body
    finally:
        for worker in a.workers:
            os.kill(worker, signal.SIGCONT)
    closing = lagging.next()
    assert closing.event == "closed"
    assert closing.data["error"] == "broker.error.delivery_gap"
    assert closing.data["message"].endswith("reconnect and recover them (broker.recover)")
    assert lagging.ended()  # and nothing after the gap
    again = streams(a, f"/sse?topic={topic}", headers={"Last-Event-ID": str(before.id)})
    replayed = again.events(10)
    assert [e.data["args"][0] for e in replayed] == list(range(10))
    assert [e.data["position"]["seq"] for e in replayed] == list(range(2, 12))
    assert [e.data["args"][0] for e in beside.events(11)] == ["before", *range(10)]
    samples = scrape(a)[1]
    assert series(samples, "broker_sse_closes_total", "reason").get("delivery_gap") == 1
