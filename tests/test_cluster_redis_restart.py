"""Redis killed with SIGKILL and started again, without and with persistence (issue 14).

Two real nodes share a redis-server of the test's own. While it is dead, publishes on either
node are refused (HTTP 503 ``broker.error.history_unavailable`` with ``Retry-After``, WAMP
that error), never answered 200; both nodes say so on ``/health`` and come back by themselves
once it is started again on the same port, no node restarted.

- Without persistence (``--save '' --appendonly no``, what ``make cluster`` runs) Redis comes
  back empty: the cluster moves to one new epoch, the same on both nodes; every subscriber
  connected through it is ended with GOODBYE ``broker.error.delivery_gap`` (its node may not
  have delivered all it had acknowledged), and one that recovers from a position of the old
  epoch gets ``unrecoverable``, never a silent gap; new publishes on both nodes work and reach
  the subscribers of both with the same positions.
- With AOF and ``appendfsync always`` (in the same directory) Redis comes back with every
  write it acknowledged: the same epoch goes on, seq and cursor continue where they were,
  every publish acknowledged as it was killed (a pipelined burst) is there, and a subscriber
  away across the outage recovers exactly what it missed, on the other node.

With persistence a ``broker tail --from`` connected through it all prints what is published
after the restart, at its positions; without, it is ended like every subscriber, and stops
saying so.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.node import Node
from tests.rawwamp import ERROR, EVENT, PUBLISH, PUBLISHED, SUBSCRIBED, RawWamp
from tests.redisserver import RedisServer
from tests.test_cli_e2e import Tail
from tests.test_cluster import assert_next_is_a_sentinel, events, on_redis
from tests.test_cluster_outage import events_until, wait_for_health
from tests.test_publish_api import request
from tests.test_recovery import POSITION, anonymous, backend, recover

pytestmark = pytest.mark.node

#: The nodes' Redis call timeout (s): generous, a pipelined burst is one script on a busy machine.
TIMEOUT = 2.0
#: How long a node may take to notice Redis back (its link reconnects with a backoff), s.
BACK_WITHIN = 30
#: Publishes pipelined on one node as Redis is killed (some acknowledged before, some refused).
BURST = 300
#: Events published elsewhere before the tail's start, so its cursor is above a new history's.
FILLER = 50
#: Any single read here gives up after this long (s).
READ_TIMEOUT = 15


class Restartable:
    """A redis-server of the test's own that can be killed and started again in its directory."""

    def __init__(self, directory: Path, persistence: bool) -> None:
        self.directory = directory
        self.persistence = persistence
        self.server = RedisServer(directory, persistence=persistence)

    @property
    def url(self) -> str:
        return self.server.url

    def restart(self) -> None:
        """Start it again on the same port, in the same directory (its AOF, if any)."""
        self.server = RedisServer(self.directory, port=self.server.port, persistence=self.persistence)


@pytest.fixture(params=[False, True], ids=["no-persistence", "aof-always"])
def redis(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Restartable]:
    """A redis-server of the test's own (no persistence, or AOF ``appendfsync always``)."""
    own = Restartable(tmp_path / "redis", persistence=request.param)
    try:
        yield own
    finally:
        own.server.stop()


def watcher(node: Node) -> RawWamp:
    """An anonymous session whose reader never stops, however many events wait unread: the test
    reads them only after Redis is back, and a reader stopped at websockets' high-water mark
    (16 messages; the burst is 300) answers no ping, so the node's auto-ping would end the
    session, with no GOODBYE, before the reset it waits for."""
    client = RawWamp(node.ws_url, origin=node.origin, max_queue=None)
    assert client.hello()[0] == 2
    return client


def publish(node: Node, topic: str, data: Any) -> dict[str, Any]:
    """An HTTP publish on ``node`` that must succeed; its position."""
    status, body, _ = request(node, {"topic": topic, "data": data})
    assert status == 200, body
    return body["published"][0]["position"]  # type: ignore[no-any-return]


def acknowledged(publisher: RawWamp, topic: str, arg: Any) -> bool:
    """Whether a WAMP publish of ``arg`` was answered PUBLISHED."""
    reply = publisher.publish(topic, [arg])
    return reply is not None and reply[0] == PUBLISHED


def ended_by_reset(client: RawWamp) -> list[tuple[Any, dict[str, Any]]]:
    """The events ``client`` got before its node ended it for a reset history (GOODBYE
    ``broker.error.delivery_gap`` naming the new epoch), which must come."""
    message, got, _ = client.ended_by_gap(timeout=READ_TIMEOUT)
    assert "(the history was reset: a new epoch)" in message, message
    return [(m[4][0], m[5][POSITION]) for m in got if m[0] == EVENT]


def refused_while_dead(nodes: list[Node], publisher: RawWamp, topic: str) -> None:
    """Every publish path on every node is refused: never 200."""
    for node in nodes:
        status, body, headers = request(node, {"topic": topic, "data": "while dead"})
        refused = (status, body.get("error"), headers.get("Retry-After"))
        assert refused == (503, "broker.error.history_unavailable", "1"), body
    reply = publisher.publish(topic, ["wamp while dead"])
    assert reply is not None and reply[0] == ERROR and reply[4] == "broker.error.history_unavailable", reply
    for node in nodes:
        assert wait_for_health(node, 503, 10)["problem"].startswith("history engine: ")


def test_redis_killed_and_restarted(
    make_node: Callable[..., Node], redis: Restartable, tails: list[Tail]
) -> None:
    mutate = on_redis(redis.url, f"r{uuid.uuid4().hex[:8]}", timeout=TIMEOUT)
    a, b = make_node(mutate), make_node(mutate)
    topic = f"public.restart.{uuid.uuid4().hex[:8]}"
    watchers = [watcher(a), watcher(b)]
    away = anonymous(b)
    for client in (*watchers, away):
        assert client.subscribe(topic)[0] == SUBSCRIBED
    from_a = backend(a)
    first = publish(a, topic, 0)
    assert events(away, 1) == [(0, first)]
    away.close()  # away from here on, with its last position
    assert acknowledged(from_a, topic, 1)
    third = publish(b, topic, 2)
    before = events(watchers[0], 3)
    assert events(watchers[1], 3) == before
    assert before[0] == (0, first) and before[1][0] == 1 and before[2] == (2, third)
    epoch = first["epoch"]
    # ``broker tail --from`` on B, on a topic of its own, connected through it all
    tail_topic = f"{topic}.tail"
    filler = {"events": [{"topic": f"{topic}.filler", "data": n} for n in range(FILLER)]}
    assert request(a, filler)[0] == 200  # the tail's start cursor well above a new history's
    start = publish(a, tail_topic, "t0")
    tail = Tail(b, tail_topic, "--anonymous", "--from", f"{epoch}:{start['cursor']}", "--count", "2")
    tails.append(tail)
    assert "subscribed" in tail.ready_line, tail.ready_line

    # publishes in flight as Redis dies: a burst from a backend on A, Redis killed at its first ack
    burst = backend(a)
    requests: dict[int, str] = {}
    for k in range(BURST):
        requests[burst.next_id()] = f"b{k}"
        burst.send([PUBLISH, max(requests), {"acknowledge": True}, topic, [f"b{k}"], {}])
    reply = burst.recv(READ_TIMEOUT)
    assert reply[0] == PUBLISHED, reply
    redis.server.kill()
    acked = [requests[reply[1]]]
    for _ in range(BURST - 1):
        reply = burst.recv(READ_TIMEOUT)
        if reply[0] == PUBLISHED:
            acked.append(requests[reply[1]])
        else:
            assert reply[0] == ERROR and reply[4] == "broker.error.history_unavailable", reply
    refused_while_dead([a, b], from_a, topic)
    redis.restart()
    for node in (a, b):
        assert wait_for_health(node, 200, BACK_WITHIN)["status"] == "ready"  # no node restarted

    if not redis.persistence:  # a new history: every subscriber is told, and comes back
        before_reset = [ended_by_reset(watcher) for watcher in watchers]
        for each in before_reset:
            assert all(p["epoch"] == epoch for _, p in each)  # what it got before: the old history
            args = [arg for arg, _ in each]
            assert args == sorted(args, key=lambda b: int(b[1:])), args  # in the order sent
        assert tail.proc.wait(timeout=READ_TIMEOUT) != 0  # it cannot go on: it says so and stops
        assert tail.proc.stderr is not None
        said = tail.proc.stderr.read()  # why, in the node's words
        assert "broker.error.delivery_gap: " in said and "(the history was reset: a new epoch)" in said, said
        watchers = [watcher(a), watcher(b)]
        for client in watchers:
            assert client.subscribe(topic)[0] == SUBSCRIBED
    after = [(3, publish(a, topic, 3)), (4, publish(b, topic, 4))]
    assert acknowledged(from_a, topic, 5)
    seen = [list(events_until(watcher, 5, BURST + 3)) for watcher in watchers]
    for each in seen:
        args = [arg for arg, _ in each]
        assert len(args) == len(set(args)), args  # nothing twice
        assert args[-3:] == [3, 4, 5] and each[-3:-1] == after
        burst_seen = args[:-3]
        assert burst_seen == sorted(burst_seen, key=lambda b: int(b[1:]))  # in the order sent
    positions = [position for _, position in seen[0][-3:]]
    new_epoch = positions[0]["epoch"]
    assert {p["epoch"] for p in positions} == {new_epoch}  # one epoch, both nodes

    back = anonymous(a)  # the one away recovers on the other node, from what it saw last
    answer = recover(back, topic, "exact", epoch, first["cursor"])
    again = recover(anonymous(b), topic, "exact", epoch, first["cursor"])
    if redis.persistence:
        # every acknowledged write kept: the same history goes on where it was
        assert seen[0] == seen[1]  # delivery resumed on both nodes, the same positions
        assert new_epoch == epoch
        assert set(acked) <= {arg for arg, _ in seen[0]}, "an acknowledged publish was lost"
        assert [p["seq"] for _, p in seen[0]] == list(range(4, 4 + len(seen[0])))  # seq goes on
        assert seen[0][0][1]["cursor"] > third["cursor"]
        assert answer == again
        assert answer["unrecoverable"] is False
        assert [(e["args"][0], e["position"]) for e in answer["events"]] == [*before[1:], *seen[0]]
    else:
        # empty: a new history, and whoever comes from the old one is told so; the burst's events
        # a node had delivered before the kill are of the old epoch, the rest is gone with Redis
        assert seen[0][-3:] == seen[1][-3:]
        assert all(p["epoch"] == epoch for each in seen for _, p in each[:-3])
        assert new_epoch != epoch
        assert [p["seq"] for p in positions] == [1, 2, 3]
        for told in (answer, again):
            assert told["unrecoverable"] is True, told
            assert told["reason"] == "epoch changed: the history was reset"
            assert (told["epoch"], told["cursor"]) == (new_epoch, positions[-1]["cursor"])
        fresh = [recover(anonymous(node), topic, "exact", new_epoch, 0) for node in (a, b)]
        assert fresh[0] == fresh[1]
        assert [(e["args"][0], e["position"]) for e in fresh[0]["events"]] == seen[0][-3:]
    assert_next_is_a_sentinel(b, topic, watchers)
    if not redis.persistence:
        return
    # the tail prints what is published after the restart, at its positions
    ends = [publish(a, tail_topic, "t1"), publish(b, tail_topic, "t2")]
    printed = [(line["args"], line["position"]) for line in tail.lines(timeout=READ_TIMEOUT)]
    assert printed == [(["t1"], ends[0]), (["t2"], ends[1])]
    assert tail.proc.returncode == 0
