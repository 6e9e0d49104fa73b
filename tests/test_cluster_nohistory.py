"""Topics without history on two real nodes sharing one real Redis: every node delivers them, once.

The nodes' history policies keep nothing for ``public.live.`` (``max_events``
0) and keep everything else. An event on such a topic has no position, yet a
cluster node appends it to the shared log (``NO_HISTORY``), so it reaches the
subscribers of both nodes exactly once, in the log's one order, by every
publish path (``POST /api/publish``, a WAMP client, ``broker publish``) and for
exact, prefix and wildcard subscriptions; a mixed HTTP batch keeps its order
on both nodes; the publisher's own ``exclude_me`` holds; and with Redis away
such a publish is refused like one with history, never acknowledged and lost.
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.node import Node
from tests.rawwamp import ERROR, EVENT, PUBLISH, PUBLISHED, SUBSCRIBED, RawWamp
from tests.redisserver import RedisServer
from tests.test_cli_e2e import publish as cli_publish
from tests.test_cluster import on_redis
from tests.test_publish_api import request
from tests.test_recovery import POSITION, anonymous, backend, recover

pytestmark = pytest.mark.node

#: Topics under this prefix keep no history (and get no position); every other topic keeps it.
LIVE = "public.live."


def on_redis_live(url: str, prefix: str, timeout: float = 2.0) -> Callable[[dict[str, Any]], None]:
    """The history engine is Redis at ``url``; ``public.live.`` keeps no history."""
    store = on_redis(url, prefix, timeout)

    def mutate(config: dict[str, Any]) -> None:
        store(config)
        config["workers"][0]["components"][0]["extra"]["history"]["policies"] = [
            {"uri": LIVE, "match": "prefix", "max_events": 0, "max_age": 60},
            {"uri": "", "match": "prefix", "max_events": 1000, "max_age": 3600},
        ]

    return mutate


@pytest.fixture
def cluster(make_node: Callable[..., Node], redis_server: RedisServer) -> tuple[Node, Node]:
    """Two nodes on one Redis (a prefix of their own), ``public.live.`` without history."""
    mutate = on_redis_live(redis_server.url, f"l{secrets.token_hex(6)}")
    return make_node(mutate), make_node(mutate)


def plain(client: RawWamp, count: int) -> list[tuple[str, Any]]:
    """The next ``count`` events as (topic, first argument); each must come without a position."""
    seen = []
    for _ in range(count):
        event = client.event()
        kwargs = event[5] if len(event) > 5 else {}
        assert POSITION not in kwargs, event
        seen.append((event[3].get("topic", ""), event[4][0]))
    return seen


def args_of(client: RawWamp, count: int) -> list[Any]:
    return [arg for _, arg in plain(client, count)]


def assert_next_is(node: Node, topic: str, clients: list[RawWamp]) -> None:
    """Nothing more came (no event twice): the next event each client sees is one published now."""
    status, body, _ = request(node, {"topic": topic, "data": "sentinel"})
    assert (status, body["published"][0]["position"]) == (200, None), body
    for client in clients:
        assert args_of(client, 1) == ["sentinel"]


def test_each_publish_path_on_one_node_reaches_both_nodes_once_without_a_position(
    cluster: tuple[Node, Node],
) -> None:
    a, b = cluster
    uid = uuid.uuid4().hex[:8]
    topic = f"{LIVE}{uid}.x"
    watchers = []
    for node in (a, b):
        for pattern, match in (
            (topic, "exact"),
            (f"{LIVE}{uid}.", "prefix"),
            (f"public..{uid}.x", "wildcard"),
        ):
            client = anonymous(node)
            assert client.subscribe(pattern, match)[0] == SUBSCRIBED
            watchers.append(client)
    status, body, _ = request(a, {"topic": topic, "data": "http"})
    assert status == 200, body
    assert body["published"][0]["position"] is None
    assert backend(a).publish(topic, ["wamp"])[0] == PUBLISHED
    done = cli_publish(a, topic, '"cli"')
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["position"] is None
    for watcher in watchers:
        assert args_of(watcher, 3) == ["http", "wamp", "cli"]
    assert_next_is(b, topic, watchers)
    # nothing of them is kept: recovery from the start of the history returns only a kept topic's
    status, body, _ = request(a, {"topic": f"public.k{uid}", "data": "kept"})
    assert status == 200, body
    kept = body["published"][0]["position"]
    assert (kept["seq"], kept["cursor"]) == (1, 5)  # after the 4 unpositioned events' cursors
    answer = recover(watchers[-1], "public.", "prefix", kept["epoch"], 0)
    assert answer["unrecoverable"] is False
    assert [(e["topic"], e["args"], e["position"]) for e in answer["events"]] == [
        (f"public.k{uid}", ["kept"], kept)
    ]


def test_the_publisher_gets_its_own_event_once_only_if_it_asks(cluster: tuple[Node, Node]) -> None:
    """``exclude_me`` (the default) holds on the origin; ``exclude_me: false`` brings it once."""
    a, b = cluster
    topic = f"{LIVE}{uuid.uuid4().hex[:8]}"
    publisher = backend(a)
    assert publisher.subscribe(topic)[0] == SUBSCRIBED
    on_a, on_b = anonymous(a), anonymous(b)
    assert on_a.subscribe(topic)[0] == SUBSCRIBED
    assert on_b.subscribe(topic)[0] == SUBSCRIBED
    assert publisher.publish(topic, ["not mine"])[0] == PUBLISHED
    publisher.send(
        [PUBLISH, publisher.next_id(), {"acknowledge": True, "exclude_me": False}, topic, ["mine"]]
    )
    assert publisher.recv()[0] == PUBLISHED
    assert args_of(publisher, 1) == ["mine"]
    assert args_of(on_a, 2) == args_of(on_b, 2) == ["not mine", "mine"]
    assert_next_is(b, topic, [publisher, on_a, on_b])


def test_a_mixed_http_batch_keeps_its_order_on_both_nodes(cluster: tuple[Node, Node]) -> None:
    a, b = cluster
    uid = uuid.uuid4().hex[:8]
    kept, live = f"public.m{uid}", f"{LIVE}m{uid}"
    on_a, on_b = anonymous(a), anonymous(b)
    for client in (on_a, on_b):
        assert client.subscribe("public.", "prefix")[0] == SUBSCRIBED
    batch = [{"topic": kept if n % 2 == 0 else live, "data": n} for n in range(6)]
    status, body, _ = request(b, {"events": batch})
    assert status == 200, body
    positions = [item["position"] for item in body["published"]]
    assert [p and p["seq"] for p in positions] == [1, None, 2, None, 3, None]
    for client in (on_a, on_b):
        seen = [client.event() for _ in range(6)]
        assert [(e[3]["topic"], e[4][0]) for e in seen] == [(e["topic"], e["data"]) for e in batch]
        assert [(e[5] if len(e) > 5 else {}).get(POSITION) for e in seen] == positions
    assert_next_is(a, live, [on_a, on_b])


def test_concurrent_publishers_on_both_nodes_give_one_order_everywhere(cluster: tuple[Node, Node]) -> None:
    """Publishes racing on two nodes (none waits for its ack): both nodes' subscribers see the same
    events in the same order, each publisher's in the order it sent them, the origin's included."""
    a, b = cluster
    topic = f"{LIVE}{uuid.uuid4().hex[:8]}"
    watchers = [anonymous(a), anonymous(b)]
    for watcher in watchers:
        assert watcher.subscribe(topic)[0] == SUBSCRIBED
    publishers = [backend(a), backend(b)]
    for n in range(30):
        for p, publisher in enumerate(publishers):
            publisher.send([PUBLISH, publisher.next_id(), {"acknowledge": True}, topic, [[p, n]], {}])
    for publisher in publishers:
        assert [publisher.recv()[0] for _ in range(30)] == [PUBLISHED] * 30
    seen = [args_of(watcher, 60) for watcher in watchers]
    assert seen[0] == seen[1]
    for p in range(2):
        assert [n for q, n in seen[0] if q == p] == list(range(30))
    assert_next_is(a, topic, watchers)


def test_with_redis_away_a_topic_without_history_is_refused_not_delivered(
    make_node: Callable[..., Node], tmp_path: Path
) -> None:
    server = RedisServer(tmp_path / "own-redis")
    try:
        node = make_node(on_redis_live(server.url, "away", timeout=0.5))
        topic = f"{LIVE}away"
        bystander = anonymous(node)
        assert bystander.subscribe(topic)[0] == SUBSCRIBED
        publisher = backend(node)
        assert publisher.publish(topic, ["before"])[0] == PUBLISHED
        assert args_of(bystander, 1) == ["before"]
        server.stop()
        reply = publisher.publish(topic, ["while away"])
        assert reply is not None and (reply[0], reply[4]) == (ERROR, "broker.error.history_unavailable")
        status, body, headers = request(node, {"topic": topic, "data": "http while away"})
        refused = (status, body["error"], headers.get("Retry-After"))
        assert refused == (503, "broker.error.history_unavailable", "1"), body
        server = RedisServer(tmp_path / "own-redis", port=server.port)
        deadline = time.monotonic() + 30  # the link reconnects by itself
        while True:
            reply = publisher.publish(topic, ["after"])
            if (reply is not None and reply[0] == PUBLISHED) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert reply is not None and reply[0] == PUBLISHED, reply
        # neither refused event was delivered here; Redis came back empty (a new epoch), so the
        # bystander is ended before anything of the new history reaches it
        _, before, _ = bystander.ended_by_gap(timeout=10)
        assert before == []
        again = anonymous(node)
        assert again.subscribe(topic)[0] == SUBSCRIBED
        assert publisher.publish(topic, ["after, again"])[0] == PUBLISHED
        message = again.recv()
        assert message[0] == EVENT and message[4] == ["after, again"], message
    finally:
        server.stop()
