"""No silent gap across real nodes on a real redis-server: a lagging node, a Redis restored from an old RDB.

A node whose reader fell behind what the shared log keeps (``log_max``) ends
its subscribed sessions with ``broker.error.delivery_gap`` before it delivers
anything after the gap, and counts it; the client reconnects and recovers
every missed event from the topic's history; a subscriber on the other node
and a session on the lagging node without subscriptions are unaffected.

A Redis restarted from an RDB snapshot older than what the nodes have seen
(same epoch, lower cursor) is one new epoch on both nodes: a subscriber that
recovers from a position of before gets ``unrecoverable``, and the engine's
warnings ("Redis log reader: ...") are in the node's log.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.node import Node
from tests.rawwamp import EVENT, PUBLISHED, SUBSCRIBED
from tests.redisserver import RedisServer, SocketLink
from tests.test_cluster import events, on_redis
from tests.test_cluster_outage import events_until, wait_for_health
from tests.test_metrics import scrape, series
from tests.test_publish_api import request
from tests.test_recovery import anonymous, backend, recover

pytestmark = pytest.mark.node

TIMEOUT = 0.5
#: The smallest log the config allows; the log keeps about this many entries.
LOG_MAX = 1000
#: Batches of 100 published while the lagging node is frozen; the topic's events are in batch
#: 3 (far behind what the log keeps, so lost to the frozen node's reader) and in the last one.
BATCHES = 15
IN_BATCH = {2: range(0, 5), BATCHES - 1: range(5, 10)}


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis")
    try:
        yield server
    finally:
        server.stop()


def with_log_max(mutate: Callable[[dict[str, Any]], None], log_max: int) -> Callable[[dict[str, Any]], None]:
    def change(config: dict[str, Any]) -> None:
        mutate(config)
        config["workers"][0]["components"][0]["extra"]["history"]["store"]["log_max"] = log_max

    return change


def lagging_batch(number: int, topic: str) -> list[dict[str, Any]]:
    """Batch ``number``: the topic's events of :data:`IN_BATCH` first, filler on another topic after."""
    mine = [{"topic": topic, "data": n} for n in IN_BATCH.get(number, ())]
    return mine + [{"topic": f"{topic}.filler", "data": n} for n in range(100 - len(mine))]


def test_a_node_the_log_left_behind_ends_its_subscribers_and_they_recover_everything(
    make_node: Callable[..., Node], own_redis: RedisServer
) -> None:
    """While A is frozen, B publishes 1,500 events: A's reader, thawed, finds most of them gone
    from the log, including five of the subscriber's topic."""
    mutate = with_log_max(on_redis(own_redis.url, f"g{secrets.token_hex(4)}", timeout=TIMEOUT), LOG_MAX)
    a, b = make_node(mutate), make_node(mutate)
    topic = f"public.gap.{uuid.uuid4().hex[:8]}"
    lagging, beside = anonymous(a), anonymous(b)
    publisher_on_a = backend(a)  # a session of A with no subscription
    for client in (lagging, beside):
        assert client.subscribe(topic)[0] == SUBSCRIBED
    status, body, _ = request(b, {"topic": topic, "data": "before"})
    assert status == 200, body
    [(_, before)] = events(lagging, 1)
    assert events(beside, 1) == [("before", before)]

    for worker in a.workers:
        os.kill(worker, signal.SIGSTOP)
    try:
        for number in range(BATCHES):
            status, body, _ = request(b, {"events": lagging_batch(number, topic)})
            assert status == 200, body
    finally:
        for worker in a.workers:
            os.kill(worker, signal.SIGCONT)

    message, _, closed = lagging.ended_by_gap(timeout=20)
    assert message.endswith("delivered on this node: reconnect and recover them (broker.recover)")
    assert closed.code == 1000
    assert [m for m in lagging.received_before_close if m[0] == EVENT] == []  # nothing after the gap

    # the client reconnects (to the same node) and recovers from its last position: everything
    again = anonymous(a)
    assert again.subscribe(topic)[0] == SUBSCRIBED
    answer = recover(again, topic, "exact", before["epoch"], before["cursor"])
    assert (answer["unrecoverable"], answer["more"]) == (False, False), answer
    assert [e["args"][0] for e in answer["events"]] == list(range(10))
    assert [e["position"]["seq"] for e in answer["events"]] == list(range(2, 12))

    # beside it: B's subscriber got every event, A's other session is still there
    assert [arg for arg, _ in events(beside, 10)] == list(range(10))
    assert publisher_on_a.publish(topic, ["still here"])[0] == PUBLISHED
    # what reached the new session live while A's reader caught up, it had recovered already
    live = list(events_until(again, "still here", bound=12))
    assert [p["seq"] for _, p in live] == list(range(12 - len(live) + 1, 13)), live
    samples = scrape(a)[1]
    assert samples[("broker_delivery_gaps_total", ())] == 1
    assert series(samples, "broker_rejections_total", "reason").get("DeliveryGap") == 1
    assert scrape(b)[1][("broker_delivery_gaps_total", ())] == 0
    assert "Redis log lost cursors" in a.log()


def test_a_redis_restarted_from_an_older_snapshot_is_one_new_epoch_and_recovery_says_unrecoverable(
    make_node: Callable[..., Node], own_redis: RedisServer, tmp_path: Path
) -> None:
    a, b = (make_node(on_redis(own_redis.url, "snap", timeout=TIMEOUT)) for _ in range(2))
    topic = "public.snapshot.t"
    watcher = anonymous(b)
    assert watcher.subscribe(topic)[0] == SUBSCRIBED
    assert request(a, {"topic": topic, "data": "kept"})[0] == 200
    assert SocketLink.raw(own_redis.port, "SAVE") == "OK"  # the snapshot: cursor 1
    workdir = own_redis.log.parent
    shutil.copy(workdir / "dump.rdb", tmp_path / "old.rdb")
    status, body, _ = request(a, {"topic": topic, "data": "after the snapshot"})
    assert status == 200, body
    seen = body["published"][0]["position"]
    assert [arg for arg, _ in events(watcher, 2)] == ["kept", "after the snapshot"]

    own_redis.stop()
    shutil.copy(tmp_path / "old.rdb", workdir / "dump.rdb")
    for node in (a, b):
        wait_for_health(node, 503, 10)
    restored = RedisServer(workdir, port=own_redis.port)  # back from the old copy: cursor 1, same epoch
    try:
        for node in (a, b):
            wait_for_health(node, 200, 15)
        # a new history under B's subscriber: it is told (it may have missed events), and comes back
        message, _, _ = watcher.ended_by_gap(timeout=15)
        assert "(the history was reset: a new epoch)" in message
        watcher = anonymous(b)
        assert watcher.subscribe(topic)[0] == SUBSCRIBED
        status, body, _ = request(b, {"topic": topic, "data": "after the restore"})
        assert status == 200, body
        fresh = body["published"][0]["position"]
        assert fresh["epoch"] != seen["epoch"]
        assert (fresh["seq"], fresh["cursor"]) == (1, 1)  # never (old epoch, cursor 2) for another event
        assert events(watcher, 1) == [("after the restore", fresh)]
        status, body, _ = request(a, {"topic": topic, "data": "on a"})
        assert status == 200 and body["published"][0]["position"]["epoch"] == fresh["epoch"], body
        answer = recover(anonymous(a), topic, "exact", seen["epoch"], seen["cursor"])
        assert (answer["unrecoverable"], answer["reason"]) == (True, "epoch changed: the history was reset")
        deadline = time.monotonic() + 10
        while "Redis history is a new epoch" not in b.log() + a.log():
            assert time.monotonic() < deadline, "no warning about the new epoch in the nodes' logs"
            time.sleep(0.1)
        assert "Redis log reader: " in a.log()  # the engine's stdlib warnings reach the node's log
    finally:
        restored.stop()
