"""Two real nodes sharing one real Redis: one broker, whichever node a client talks to.

Each node's history engine is ``{"type": "redis", "url": ...}`` on the
session's redis-server (tests/redisserver.py). What must hold: an event published
on one node (HTTP ``/api/publish`` or WAMP) reaches the subscribers of the
other once, with the position the publisher was given and the origin's
subscribers saw, in seq order; ``broker.recover`` on either node answers from
the one shared history; and while Redis is away a publish is refused within
the call timeout (``broker.error.history_unavailable``), never left hanging;
and what the HTTP API promises holds on the cluster as on one node: a nonce
is accepted once, an idempotency key publishes once whichever nodes its
retries reach, and a publisher key's rate limit is one limit.
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from broker.core import signing
from tests.node import PUBLISHER_SECRET, Node
from tests.rawwamp import ERROR, PUBLISH, SUBSCRIBED, RawWamp
from tests.redisserver import RedisServer
from tests.test_publish_api import request
from tests.test_recovery import POSITION, anonymous, backend, recover

pytestmark = pytest.mark.node


def on_redis(url: str, prefix: str, timeout: float = 2.0) -> Callable[[dict[str, Any]], None]:
    """A config change: the history engine is Redis at ``url``, under ``prefix``."""

    def mutate(config: dict[str, Any]) -> None:
        extra = config["workers"][0]["components"][0]["extra"]
        extra["history"]["store"] = {"type": "redis", "url": url, "prefix": prefix, "timeout": timeout}

    return mutate


@pytest.fixture
def cluster(make_node: Callable[..., Node], redis_server: RedisServer) -> tuple[Node, Node]:
    """Two nodes on one Redis (a prefix of their own)."""
    mutate = on_redis(redis_server.url, f"c{secrets.token_hex(6)}")
    return make_node(mutate), make_node(mutate)


def events(client: RawWamp, count: int) -> list[tuple[Any, dict[str, Any]]]:
    """The next ``count`` events: (first argument, position)."""
    return [(event[4][0], event[5][POSITION]) for event in (client.event() for _ in range(count))]


def assert_next_is_a_sentinel(node: Node, topic: str, clients: list[RawWamp]) -> None:
    """Nothing more came (no event twice): the next event each client sees is one published now."""
    status, body, _ = request(node, {"topic": topic, "data": "sentinel"})
    assert status == 200, body
    for client in clients:
        assert events(client, 1) == [("sentinel", body["published"][0]["position"])]


def test_an_http_publish_reaches_the_other_node_once_with_its_position(cluster: tuple[Node, Node]) -> None:
    a, b = cluster
    topic = f"public.cluster.{uuid.uuid4().hex[:8]}"
    on_a, on_b = anonymous(a), anonymous(b)
    everything_b = anonymous(b)
    assert on_a.subscribe(topic)[0] == SUBSCRIBED
    assert on_b.subscribe(topic)[0] == SUBSCRIBED
    assert everything_b.subscribe("public.cluster.", "prefix")[0] == SUBSCRIBED
    status, body, _ = request(a, {"topic": topic, "data": "one"})
    assert status == 200, body
    answered = body["published"][0]["position"]
    assert events(on_a, 1) == [("one", answered)]
    assert events(on_b, 1) == [("one", answered)]
    assert events(everything_b, 1) == [("one", answered)]
    # a batch from B: A gets it, in order, with B's positions; nothing came twice
    status, body, _ = request(b, {"events": [{"topic": topic, "data": n} for n in range(5)]})
    assert status == 200, body
    answered_b = [item["position"] for item in body["published"]]
    assert [p["seq"] for p in answered_b] == [2, 3, 4, 5, 6]
    assert answered_b[0]["epoch"] == answered["epoch"]
    expected = list(zip(range(5), answered_b, strict=True))
    assert events(on_a, 5) == expected
    assert events(on_b, 5) == expected
    assert events(everything_b, 5) == expected
    assert_next_is_a_sentinel(a, topic, [on_a, on_b, everything_b])


def test_a_wamp_publish_reaches_the_other_node_with_the_same_positions(cluster: tuple[Node, Node]) -> None:
    a, b = cluster
    topic = f"public.cluster.{uuid.uuid4().hex[:8]}"
    on_a, on_b = anonymous(a), anonymous(b)
    assert on_a.subscribe(topic)[0] == SUBSCRIBED
    assert on_b.subscribe(topic)[0] == SUBSCRIBED
    from_a, from_b = backend(a), backend(b)
    for n in range(20):  # both nodes publish to one topic, interleaved
        assert (from_a if n % 2 == 0 else from_b).publish(topic, [n])[0] == 17
    seen_a, seen_b = events(on_a, 20), events(on_b, 20)
    assert seen_a == seen_b
    assert [arg for arg, _ in seen_a] == list(range(20))
    assert [p["seq"] for _, p in seen_a] == list(range(1, 21))  # seq order everywhere
    cursors = [p["cursor"] for _, p in seen_a]
    assert cursors == sorted(set(cursors))
    assert_next_is_a_sentinel(b, topic, [on_a, on_b])


def test_concurrent_publishers_on_both_nodes_give_one_order_everywhere(cluster: tuple[Node, Node]) -> None:
    """Publishes that race on two nodes (none waits for its ack): every subscriber, on either
    node, sees the same events with the same positions, each topic in seq order without a gap."""
    a, b = cluster
    uid = uuid.uuid4().hex[:8]
    topics = [f"public.race.{uid}.{n}" for n in range(2)]
    watchers = [anonymous(a), anonymous(b)]
    for watcher in watchers:
        assert watcher.subscribe(f"public.race.{uid}.", "prefix")[0] == SUBSCRIBED
    publishers = [backend(a), backend(a), backend(b), backend(b)]
    for n in range(40):
        for p, publisher in enumerate(publishers):
            message = [PUBLISH, publisher.next_id(), {"acknowledge": True}, topics[n % 2], [[p, n]], {}]
            publisher.send(message)
    for publisher in publishers:
        assert [publisher.recv()[0] for _ in range(40)] == [17] * 40
    seen = [events(watcher, 160) for watcher in watchers]
    assert seen[0] == seen[1]
    for topic_n in range(2):
        seqs = [position["seq"] for (p, n), position in seen[0] if n % 2 == topic_n]
        assert seqs == list(range(1, 81))
    cursors = [position["cursor"] for _, position in seen[0]]
    assert cursors == sorted(set(cursors))
    # each publisher's own events in the order it sent them
    for p in range(4):
        assert [n for (q, n), _ in seen[0] if q == p] == list(range(40))
    assert_next_is_a_sentinel(a, topics[0], watchers)


def test_recovery_on_one_node_returns_what_the_other_stored(cluster: tuple[Node, Node]) -> None:
    a, b = cluster
    uid = uuid.uuid4().hex[:8]
    publisher = backend(a)
    published = []
    for n in range(6):
        topic = f"public.{uid}.{'x' if n % 2 else 'y'}"
        published.append((topic, n))
        assert publisher.publish(topic, [n])[0] == 17
    status, body, _ = request(a, {"topic": f"public.{uid}.z", "data": "last"})
    assert status == 200, body
    last = body["published"][0]["position"]
    reader_b, reader_a = anonymous(b), anonymous(a)
    answer_b = recover(reader_b, f"public.{uid}.", "prefix", last["epoch"], 0)
    answer_a = recover(reader_a, f"public.{uid}.", "prefix", last["epoch"], 0)
    assert answer_b == answer_a
    assert answer_b["unrecoverable"] is False
    published.append((f"public.{uid}.z", "last"))
    assert [(e["topic"], e["args"][0]) for e in answer_b["events"]] == published
    assert answer_b["events"][-1]["position"] == last
    exact = recover(reader_b, f"public.{uid}.x", "exact", last["epoch"], 0)
    assert [e["args"][0] for e in exact["events"]] == [1, 3, 5]
    wildcard = recover(reader_b, f"public.{uid}.", "prefix", last["epoch"], last["cursor"])
    assert wildcard["events"] == [] and wildcard["unrecoverable"] is False


def test_a_publish_while_redis_is_down_is_refused_within_the_timeout_and_resumes_after(
    make_node: Callable[..., Node], tmp_path: Path
) -> None:
    server = RedisServer(tmp_path / "own-redis")
    try:
        node = make_node(on_redis(server.url, "down", timeout=0.5))
        topic = "public.cluster.down"
        bystander = anonymous(node)
        assert bystander.subscribe(topic)[0] == SUBSCRIBED
        publisher = backend(node)
        assert publisher.publish(topic, ["before"])[0] == 17
        arg, position = events(bystander, 1)[0]
        assert arg == "before"
        first_epoch = position["epoch"]
        server.stop()
        started = time.monotonic()
        reply = publisher.publish(topic, ["while down"])
        assert reply is not None and reply[0] == ERROR
        assert reply[4] == "broker.error.history_unavailable"
        assert time.monotonic() - started < 3.0  # the 0.5 s call timeout, not forever
        status, body, headers = request(node, {"topic": topic, "data": "http while down"})
        refused = (status, body["error"], headers.get("Retry-After"))
        assert refused == (503, "broker.error.history_unavailable", "1"), body
        assert time.monotonic() - started < 6.0
        # the subscriber stayed connected: the session still answers
        assert recover(bystander, topic, "exact", "e", 0)[0] == ERROR
        server = RedisServer(tmp_path / "own-redis", port=server.port)  # back, empty
        deadline = time.monotonic() + 30  # txredisapi reconnects with a backoff of at most 10 s
        while True:
            reply = publisher.publish(topic, ["after"])
            if (reply is not None and reply[0] == 17) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert reply is not None and reply[0] == 17, reply
        # Redis lost its data: a new epoch, and the bystander, which may have missed events, is
        # ended (GOODBYE broker.error.delivery_gap) before anything of the new history reaches it
        _, before, _ = bystander.ended_by_gap(timeout=10)
        assert before == []
        again = anonymous(node)
        assert again.subscribe(topic)[0] == SUBSCRIBED
        assert publisher.publish(topic, ["again"])[0] == 17
        arg, position = events(again, 1)[0]
        assert arg == "again"  # delivery resumed without restarting the node
        assert position["epoch"] != first_epoch
    finally:
        server.stop()


def test_a_signed_request_replayed_to_the_other_node_is_refused(cluster: tuple[Node, Node]) -> None:
    """The same signed request (body, timestamp, nonce, signature) sent to A, then to B:
    B answers 409 ``broker.error.replay`` and nothing is published twice; a fresh request to B is 200."""
    a, b = cluster
    topic = f"public.cluster.{uuid.uuid4().hex[:8]}"
    on_a, on_b = anonymous(a), anonymous(b)
    assert on_a.subscribe(topic)[0] == SUBSCRIBED
    assert on_b.subscribe(topic)[0] == SUBSCRIBED
    raw = json.dumps({"topic": topic, "data": "once"}).encode()
    signed = signing.sign_headers("dev", PUBLISHER_SECRET, "POST", "/api/publish", raw)
    status, body, _ = request(a, raw, headers=signed, sign=False)
    assert status == 200, body
    answered = body["published"][0]["position"]
    status, body, _ = request(b, raw, headers=signed, sign=False)
    assert status == 409, body
    assert body["error"] == "broker.error.replay"
    assert "another node" in body["message"]
    assert events(on_a, 1) == [("once", answered)]
    assert events(on_b, 1) == [("once", answered)]
    assert_next_is_a_sentinel(b, topic, [on_a, on_b])  # B still publishes; nothing came twice


def test_an_idempotency_key_sent_to_both_nodes_publishes_once(cluster: tuple[Node, Node]) -> None:
    """The same event and key to A, then (a retry the balancer sent elsewhere) to B: one event, delivered
    once on each node; B answers A's positions, ``Idempotent-Replayed: true`` and ``id`` null."""
    a, b = cluster
    topic = f"public.cluster.{uuid.uuid4().hex[:8]}"
    on_a, on_b = anonymous(a), anonymous(b)
    assert on_a.subscribe(topic)[0] == SUBSCRIBED
    assert on_b.subscribe(topic)[0] == SUBSCRIBED
    message = {"events": [{"topic": topic, "data": "once"}, {"topic": topic, "data": "twice?"}]}
    message["idempotency_key"] = uuid.uuid4().hex
    status, first, headers = request(a, message)
    assert status == 200, first
    assert "Idempotent-Replayed" not in headers
    answered = [item["position"] for item in first["published"]]
    status, again, headers = request(b, message)  # new nonce and timestamp: a retry, not a replay
    assert status == 200, again
    assert headers["Idempotent-Replayed"] == "true"
    assert again == {"published": [{"topic": topic, "id": None, "position": p} for p in answered]}
    status, cached, headers = request(b, message)  # from B's own cache now
    assert (status, cached, headers["Idempotent-Replayed"]) == (200, again, "true")
    expected = [("once", answered[0]), ("twice?", answered[1])]
    assert events(on_a, 2) == expected
    assert events(on_b, 2) == expected
    assert_next_is_a_sentinel(b, topic, [on_a, on_b])  # nothing came twice, on either node


def test_an_idempotency_key_reused_on_the_other_node_with_another_body_is_422(
    cluster: tuple[Node, Node],
) -> None:
    a, b = cluster
    topic = f"public.cluster.{uuid.uuid4().hex[:8]}"
    on_b = anonymous(b)
    assert on_b.subscribe(topic)[0] == SUBSCRIBED
    key = uuid.uuid4().hex
    status, body, _ = request(a, {"topic": topic, "data": 1, "idempotency_key": key})
    assert status == 200, body
    assert events(on_b, 1) == [(1, body["published"][0]["position"])]
    status, body, _ = request(b, {"topic": topic, "data": 2, "idempotency_key": key})
    assert (status, body) == (
        422,
        {
            "error": "broker.error.idempotency_mismatch",
            "message": f"idempotency key {key!r} was already used for a different request",
        },
    )
    assert_next_is_a_sentinel(a, topic, [on_b])


def test_concurrent_retries_to_both_nodes_publish_one_event(cluster: tuple[Node, Node]) -> None:
    """Eight copies of one request (each signed afresh) sent at once, half to each node: every answer
    is 200 with the same positions, and each node's subscriber gets the event once."""
    a, b = cluster
    topic = f"public.cluster.{uuid.uuid4().hex[:8]}"
    on_a, on_b = anonymous(a), anonymous(b)
    assert on_a.subscribe(topic)[0] == SUBSCRIBED
    assert on_b.subscribe(topic)[0] == SUBSCRIBED
    message = {"topic": topic, "data": "raced", "idempotency_key": uuid.uuid4().hex}
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda n: request((a, b)[n % 2], message), range(8)))
    assert [status for status, _, _ in answers] == [200] * 8, answers
    positions = {json.dumps(body["published"][0]["position"], sort_keys=True) for _, body, _ in answers}
    assert len(positions) == 1
    [position] = [json.loads(p) for p in positions]
    assert events(on_a, 1) == [("raced", position)]
    assert events(on_b, 1) == [("raced", position)]
    assert_next_is_a_sentinel(a, topic, [on_a, on_b])


def test_a_keys_rate_limit_is_one_limit_for_the_cluster(
    make_node: Callable[..., Node], redis_server: RedisServer
) -> None:
    """A burst of 3 (refilling once a minute) spread over two nodes: the 4th request is 429 on either
    node, with ``Retry-After``; another key, with its own limit, still publishes on both."""
    on_cluster = on_redis(redis_server.url, f"c{secrets.token_hex(6)}")

    def limited(config: dict[str, Any]) -> None:
        on_cluster(config)
        publishers = config["workers"][0]["components"][0]["extra"]["publishers"]
        publishers["dev"]["rate_limit"] = {"per_second": 1 / 60, "burst": 3}
        publishers["other"] = {**publishers["dev"], "rate_limit": {"per_second": 1 / 60, "burst": 3}}

    a, b = make_node(limited), make_node(limited)
    topic = f"public.cluster.{uuid.uuid4().hex[:8]}"
    statuses = [request(node, {"topic": topic, "data": n})[0] for n, node in enumerate([a, b, a])]
    assert statuses == [200, 200, 200]
    for node in (b, a):
        status, body, headers = request(node, {"topic": topic, "data": "one too many"})
        assert (status, body) == (
            429,
            {"error": "broker.error.rate_limited", "message": "publisher key 'dev' is over its rate limit"},
        )
        assert 1 <= int(headers["Retry-After"]) <= 60
    for node in (a, b):
        status, body, _ = request(node, {"topic": topic, "data": "other"}, key="other")
        assert status == 200, body
