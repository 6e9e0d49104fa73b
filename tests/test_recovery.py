"""Positions and gapless recovery against a real node (memory and SQLite stores)."""

from __future__ import annotations

import signal
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tests.node import BACKEND_SECRET, Node
from tests.rawwamp import CALL, ERROR, PUBLISH, RESULT, SUBSCRIBED, RawWamp

pytestmark = pytest.mark.node

POSITION = "broker_position"


def recover(client: RawWamp, topic: str, match: str, epoch: str, after: int) -> Any:
    reply = client.call("broker.recover", [topic], {"match": match, "epoch": epoch, "after": after})
    if reply[0] == ERROR:
        return reply
    assert reply[0] == RESULT, reply
    return reply[3][0]


def backend(node: Node) -> RawWamp:
    client = RawWamp(node.ws_url, origin=node.origin)
    assert client.hello(authid="backend", secret=BACKEND_SECRET)[0] == 2
    return client


def anonymous(node: Node) -> RawWamp:
    client = RawWamp(node.ws_url, origin=node.origin)
    assert client.hello()[0] == 2
    return client


@pytest.mark.parametrize(
    ("pattern", "match", "topics"),
    [
        ("public.{id}.feed", "exact", ["public.{id}.feed"]),
        ("public.{id}..price", "wildcard", ["public.{id}.a.price", "public.{id}.b.price"]),
        ("public.{id}.", "prefix", ["public.{id}.a", "public.{id}.b.c"]),
    ],
)
def test_subscriber_away_gets_exactly_what_it_missed(
    node: Node, pattern: str, match: str, topics: list[str]
) -> None:
    uid = uuid.uuid4().hex[:8]
    pattern, topics = pattern.format(id=uid), [t.format(id=uid) for t in topics]
    publisher = backend(node)
    subscriber = anonymous(node)
    assert subscriber.subscribe(pattern, match)[0] == SUBSCRIBED
    assert publisher.publish(topics[0], ["before"])[0] == 17
    last_seen = subscriber.event()[5][POSITION]
    subscriber.close()  # away: a dropped Wi-Fi, a sleeping laptop

    missed = [(topics[n % len(topics)], n) for n in range(7)]
    for topic, n in missed:
        assert publisher.publish(topic, [n])[0] == 17
    publisher.publish(f"public.{uid}other", ["not matching"])

    back = anonymous(node)
    answer = recover(back, pattern, match, last_seen["epoch"], last_seen["cursor"])
    assert answer["unrecoverable"] is False
    assert [(e["topic"], e["args"][0]) for e in answer["events"]] == missed
    cursors = [e["position"]["cursor"] for e in answer["events"]]
    assert cursors == sorted(set(cursors)) and cursors[0] > last_seen["cursor"]
    assert answer["more"] is False


def test_concurrent_publishers_get_gapless_positions(node: Node) -> None:
    topic = f"public.race.{uuid.uuid4().hex[:8]}"
    subscriber = anonymous(node)
    assert subscriber.subscribe(topic)[0] == SUBSCRIBED
    publishers = [backend(node) for _ in range(4)]
    for n in range(50):  # interleaved, without waiting for acks
        for p in publishers:
            p.send([PUBLISH, p.next_id(), {"acknowledge": True}, topic, [n], {}])
    for p in publishers:
        assert [p.recv()[0] for _ in range(50)] == [17] * 50
    seqs = [subscriber.event()[5][POSITION]["seq"] for _ in range(200)]
    assert seqs == list(range(1, 201))


def test_recovery_needs_subscribe_permission(node: Node) -> None:
    publisher = backend(node)
    assert publisher.publish("orders.secret", [1])[0] == 17
    reply = recover(anonymous(node), "orders.", "prefix", "any", 0)
    assert reply[0] == ERROR and reply[4] == "wamp.error.not_authorized"
    assert "may not subscribe to 'orders.'" in reply[5][0]


def test_changed_epoch_is_unrecoverable(node: Node) -> None:
    answer = recover(anonymous(node), "public.x", "exact", "not-this-epoch", 0)
    assert answer["unrecoverable"] is True
    assert answer["reason"] == "epoch changed: the history was reset"
    assert isinstance(answer["epoch"], str) and isinstance(answer["cursor"], int)


@pytest.mark.parametrize(
    ("after", "message"), [(-1, "after must be a cursor"), ("x", "after must be a cursor")]
)
def test_bad_recovery_arguments_are_errors(node: Node, after: object, message: str) -> None:
    client = anonymous(node)
    client.send([CALL, 1, {}, "broker.recover", ["public.x"], {"epoch": "e", "after": after}])
    reply = client.recv()
    assert reply[0] == ERROR and reply[4] == "broker.error.bad_request"
    assert message in reply[5][0]


def small_history(config: dict[str, Any]) -> None:
    extra = config["workers"][0]["components"][0]["extra"]
    extra["history"]["policies"] = [{"uri": "public.", "match": "prefix", "max_events": 3, "max_age": 3600}]


def test_more_missed_than_history_keeps_is_unrecoverable(make_node: Callable[..., Node]) -> None:
    node = make_node(small_history)
    publisher = backend(node)
    subscriber = anonymous(node)
    assert subscriber.subscribe("public.small")[0] == SUBSCRIBED
    publisher.publish("public.small", ["seen"])
    last_seen = subscriber.event()[5][POSITION]
    subscriber.close()
    reader = anonymous(node)
    for n in range(2):  # within the limit: recoverable
        publisher.publish("public.small", [n])
    assert (
        recover(reader, "public.small", "exact", last_seen["epoch"], last_seen["cursor"])["unrecoverable"]
        is False
    )
    for n in range(2, 5):  # now the first missed event has been trimmed
        publisher.publish("public.small", [n])
    answer = recover(reader, "public.small", "exact", last_seen["epoch"], last_seen["cursor"])
    assert answer["unrecoverable"] is True
    assert answer["reason"] == "some missed events are no longer in history"
    assert answer["epoch"] == last_seen["epoch"]


def sqlite_store(config: dict[str, Any]) -> None:
    extra = config["workers"][0]["components"][0]["extra"]
    extra["history"]["store"] = {"type": "sqlite", "path": "history.sqlite3"}


def test_sqlite_history_survives_sigkill(make_node: Callable[..., Node], tmp_path: Any) -> None:
    node = make_node(sqlite_store)
    publisher = backend(node)
    subscriber = anonymous(node)
    assert subscriber.subscribe("public.durable")[0] == SUBSCRIBED
    publisher.publish("public.durable", ["first"])
    first = subscriber.event()[5][POSITION]
    for n in range(10):
        assert publisher.publish("public.durable", [n])[0] == 17  # acknowledged: must survive
    node.stop(signal.SIGKILL)

    restarted = Node(node.workdir, mutate=sqlite_store).start()
    try:
        answer = recover(anonymous(restarted), "public.durable", "exact", first["epoch"], first["cursor"])
        assert answer["unrecoverable"] is False
        assert [e["args"][0] for e in answer["events"]] == list(range(10))
        assert [e["position"]["seq"] for e in answer["events"]] == list(range(2, 12))
        # positions continue after the restart, in the same epoch
        after = backend(restarted)
        listener = anonymous(restarted)
        assert listener.subscribe("public.durable")[0] == SUBSCRIBED
        after.publish("public.durable", ["after restart"])
        position = listener.event()[5][POSITION]
        assert (position["epoch"], position["seq"]) == (first["epoch"], 12)
    finally:
        restarted.stop()


def test_memory_history_restarts_with_a_new_epoch(make_node: Callable[..., Node]) -> None:
    node = make_node()
    subscriber = anonymous(node)
    assert subscriber.subscribe("public.volatile")[0] == SUBSCRIBED
    backend(node).publish("public.volatile", [1])
    before = subscriber.event()[5][POSITION]
    node.stop()
    restarted = Node(node.workdir).start()
    try:
        answer = recover(anonymous(restarted), "public.volatile", "exact", before["epoch"], before["cursor"])
        assert answer["unrecoverable"] is True
        assert answer["epoch"] != before["epoch"]
    finally:
        restarted.stop()
