"""``GET /sse`` on a cluster: two real nodes sharing one real Redis.

A stream on one node receives what is published on the other (HTTP API and
WAMP alike) once, with the position the publisher was given, because the
stream taps the same delivery path WAMP subscribers are served from, the
engine's feed included; and a stream that reconnects to either node resumes
from the one shared history.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from broker.client import Publisher
from tests.node import PUBLISHER_SECRET, Node
from tests.rawwamp import PUBLISHED
from tests.redisserver import RedisServer
from tests.sseclient import SseClient
from tests.test_cluster import on_redis
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
