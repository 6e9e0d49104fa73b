"""Presence on two real nodes sharing one real Redis (tests/test_cluster.py's setup).

What must hold: ``broker.presence`` answers the same on either node (the union of both nodes'
sessions), each node's joins reach the other node's subscribers of ``broker.presence.<topic>``,
and the entries of a node killed with ``kill -9`` are gone from the other node's answer within
``node_ttl`` seconds (docs/presence.md), while its own sessions stay counted.
"""

from __future__ import annotations

import secrets
import signal
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tests.node import Node
from tests.rawwamp import SUBSCRIBED
from tests.redisserver import RedisServer
from tests.test_cluster import on_redis
from tests.test_presence_node import presence, presence_event, user
from tests.test_recovery import anonymous, backend

pytestmark = pytest.mark.node

#: The shortest ``node_ttl`` the config allows: a dead node's entries last at most this long.
NODE_TTL = 3


def presence_cluster(url: str) -> Callable[[dict[str, Any]], None]:
    history = on_redis(url, f"p{secrets.token_hex(6)}")

    def mutate(config: dict[str, Any]) -> None:
        history(config)
        config["workers"][0]["components"][0]["extra"]["presence"]["node_ttl"] = NODE_TTL

    return mutate


@pytest.fixture
def cluster(make_node: Callable[..., Node], redis_server: RedisServer) -> tuple[Node, Node]:
    mutate = presence_cluster(redis_server.url)
    return make_node(mutate), make_node(mutate)


def settled(node: Node, topic: str, expected: dict[str, Any], within: float) -> dict[str, Any]:
    """Ask ``node`` until it answers ``expected`` or ``within`` seconds pass; the last answer."""
    asker = backend(node)
    deadline = time.monotonic() + within
    while True:
        answer = presence(asker, topic)
        if answer == expected or time.monotonic() > deadline:
            asker.close()
            return answer
        time.sleep(0.1)


def test_presence_is_the_union_of_both_nodes_and_a_dead_nodes_entries_expire(
    cluster: tuple[Node, Node],
) -> None:
    a, b = cluster
    topic = f"public.room.{uuid.uuid4().hex[:8]}"
    watcher_a = backend(a)
    assert watcher_a.subscribe(f"broker.presence.{topic}")[0] == SUBSCRIBED
    visitor_a, alice_a, alice_b, bob_b = (
        anonymous(a),
        user(a, "alice", topic),
        user(b, "alice", topic),
        user(b, "bob", topic),
    )
    for client in (visitor_a, alice_a, alice_b, bob_b):
        assert client.subscribe(topic)[0] == SUBSCRIBED

    # every join, local or B's, reaches A's watcher (B's through the shared log), each once
    joins = sorted(
        (str(event["user"]), event["presence"]) for event in (presence_event(watcher_a) for _ in range(4))
    )
    assert joins == [("None", "join"), ("alice", "join"), ("alice", "join"), ("bob", "join")]

    everyone = {
        "topic": topic,
        "count": 4,
        "users": [{"id": "alice", "sessions": 2}, {"id": "bob", "sessions": 1}],
        "anonymous": 1,
    }
    assert settled(a, topic, everyone, within=NODE_TTL + 5) == everyone
    assert settled(b, topic, everyone, within=NODE_TTL + 5) == everyone

    b.stop(signal.SIGKILL)
    only_a = {"topic": topic, "count": 2, "users": [{"id": "alice", "sessions": 1}], "anonymous": 1}
    # the bound: node_ttl after B's last heartbeat; the slack covers one answer's round trip
    assert settled(a, topic, only_a, within=NODE_TTL + 2) == only_a
    # A's own members are unaffected, and still followed
    alice_a.close()
    assert presence_event(watcher_a) == {"topic": topic, "presence": "leave", "user": "alice"}
    assert settled(a, topic, {**only_a, "count": 1, "users": []}, within=5) == {
        **only_a,
        "count": 1,
        "users": [],
    }
