"""Redis unavailable, then back with its data: what publishers, subscribers, /health and /metrics see.

Two real nodes share one real redis-server of the test's own, which the test
freezes with SIGSTOP (its connections stay open, nothing answers: a hung or
partitioned Redis) and thaws with SIGCONT (back, with every key it had).
While frozen: a WAMP publish is refused with
``broker.error.history_unavailable`` and an HTTP publish with 503, that URI
and ``Retry-After``, both within the call timeout; ``/health`` is 503 naming
the history engine; ``/metrics`` has ``broker_history_available 0`` and the
refusals by reason; subscribers on both nodes stay connected. Once thawed,
both nodes say ready again by themselves, and what is published on either
reaches the subscribers on both, in the same epoch, seq going on.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from broker.client import Publisher, Unavailable
from tests.node import PUBLISHER_SECRET, Node
from tests.rawwamp import ERROR, SUBSCRIBED, RawWamp
from tests.redisserver import RedisServer
from tests.test_cluster import events, on_redis
from tests.test_metrics import scrape, series
from tests.test_publish_api import request
from tests.test_recovery import anonymous, backend

pytestmark = pytest.mark.node

#: The nodes' Redis call timeout (s): every refusal must come within a small multiple of it.
TIMEOUT = 0.5


def health(node: Node) -> tuple[int, dict[str, Any]]:
    """``GET /health``: (status, JSON body)."""
    try:
        with urllib.request.urlopen(f"{node.url}/health", timeout=5) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def wait_for_health(node: Node, status: int, seconds: float) -> dict[str, Any]:
    """Poll /health until it answers ``status`` (bounded by ``seconds``); its body."""
    deadline = time.monotonic() + seconds
    while True:
        code, body = health(node)
        if code == status:
            return body
        assert time.monotonic() < deadline, f"/health still {code} {body} after {seconds} s"
        time.sleep(0.05)


def available(node: Node) -> float:
    """The node's ``broker_history_available`` gauge."""
    return scrape(node)[1][("broker_history_available", ())]


@pytest.fixture
def frozen_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own (so freezing it freezes no other test), always thawed
    and stopped at the end."""
    server = RedisServer(tmp_path / "redis")
    try:
        yield server
    finally:
        if server.proc.poll() is None:
            os.kill(server.proc.pid, signal.SIGCONT)
        server.stop()


@pytest.fixture
def pair(make_node: Callable[..., Node], frozen_redis: RedisServer) -> tuple[Node, Node]:
    """Two nodes on ``frozen_redis`` with a short call timeout."""
    mutate = on_redis(frozen_redis.url, f"o{secrets.token_hex(6)}", timeout=TIMEOUT)
    return make_node(mutate), make_node(mutate)


def test_a_frozen_redis_refuses_publishes_says_so_and_resumes_without_loss(
    pair: tuple[Node, Node], frozen_redis: RedisServer
) -> None:
    a, b = pair
    topic = f"public.outage.{uuid.uuid4().hex[:8]}"
    watchers: list[RawWamp] = [anonymous(a), anonymous(b)]
    for watcher in watchers:
        assert watcher.subscribe(topic)[0] == SUBSCRIBED
    publisher = backend(a)
    assert publisher.publish(topic, ["before"])[0] == 17
    before = [events(watcher, 1) for watcher in watchers]
    assert before[0] == before[1] and before[0][0][0] == "before"
    epoch = before[0][0][1]["epoch"]
    assert health(a)[0] == health(b)[0] == 200
    assert available(a) == available(b) == 1

    os.kill(frozen_redis.proc.pid, signal.SIGSTOP)
    started = time.monotonic()
    reply = publisher.publish(topic, ["wamp while frozen"])
    assert reply is not None and reply[0] == ERROR and reply[4] == "broker.error.history_unavailable", reply
    assert time.monotonic() - started < 4 * TIMEOUT + 1
    started = time.monotonic()
    status, body, headers = request(b, {"topic": topic, "data": "http while frozen"})
    refused = (status, body["error"], headers.get("Retry-After"))
    assert refused == (503, "broker.error.history_unavailable", "1"), body
    assert time.monotonic() - started < 4 * TIMEOUT + 1
    # the SDK retries that 503 (after at least its Retry-After), then says the node is unavailable
    slept: list[float] = []
    sdk = Publisher(b.url, "dev", PUBLISHER_SECRET, retries=2, sleep=slept.append)
    with pytest.raises(Unavailable) as caught:
        sdk.publish(topic, "sdk while frozen")
    assert (caught.value.status, caught.value.error) == (503, "broker.error.history_unavailable")
    assert caught.value.retry_after == 1.0 and len(slept) == 2 and min(slept) >= 1.0, slept
    for node in (a, b):
        unhealthy = wait_for_health(node, 503, 10)
        assert unhealthy["status"] == "unavailable", unhealthy
        assert unhealthy["problem"].startswith("history engine: "), unhealthy
        assert "Redis" in unhealthy["problem"], unhealthy
        assert available(node) == 0
    rejections_a = series(scrape(a)[1], "broker_rejections_total", "reason")
    rejections_b = series(scrape(b)[1], "broker_rejections_total", "reason")
    assert rejections_a.get("history_unavailable") == 1, rejections_a
    assert rejections_b.get("http_history_unavailable") == 4, rejections_b  # 1 + the SDK's 3 attempts
    assert series(scrape(b)[1], "broker_http_publish_requests_total", "status").get("503") == 4

    os.kill(frozen_redis.proc.pid, signal.SIGCONT)
    for node in (a, b):
        ready = wait_for_health(node, 200, 15)  # by itself: no node restarted
        assert ready["status"] == "ready"
        assert available(node) == 1
    # subscribers stayed connected all along; what is published now reaches both nodes
    assert publisher.publish(topic, ["after on a"])[0] == 17
    status, body, _ = request(b, {"topic": topic, "data": "after on b"})
    assert status == 200, body
    answered_b = body["published"][0]["position"]
    seen = [[e for e in events_until(watcher, "after on b")] for watcher in watchers]
    assert seen[0] == seen[1]
    args = [arg for arg, _ in seen[0]]
    # a refused publish may still have been stored (Redis ran it once thawed): then it is
    # delivered on both nodes alike, like any stored event (docs/http-publish.md)
    refused = ("wamp while frozen", "http while frozen", "sdk while frozen")
    assert [arg for arg in args if arg not in refused] == ["after on a", "after on b"]
    positions = [position for _, position in seen[0]]
    assert {p["epoch"] for p in positions} == {epoch}  # Redis kept its data: the same history
    assert [p["seq"] for p in positions] == list(range(2, 2 + len(positions)))  # no gap, no loss
    assert positions[-1] == answered_b


def events_until(client: RawWamp, last: Any, bound: int = 10) -> Iterator[tuple[Any, dict[str, Any]]]:
    """The client's next events up to and including the one whose first argument is ``last``."""
    for _ in range(bound):
        [(arg, position)] = events(client, 1)
        yield arg, position
        if arg == last:
            return
    raise AssertionError(f"{last!r} not among the next {bound} events")


def test_an_idle_node_notices_redis_gone_through_its_reader_and_back_by_itself(
    make_node: Callable[..., Node], frozen_redis: RedisServer, tmp_path: Path
) -> None:
    """No publish at all: the log reader alone tells /health that Redis is gone (stopped), and
    that it is back (restarted empty on the same port); its subscriber, connected throughout, is
    then told the history was reset (GOODBYE ``broker.error.delivery_gap``) and resubscribes."""
    node = make_node(on_redis(frozen_redis.url, "idle", timeout=TIMEOUT))
    topic = "public.outage.idle"
    bystander = anonymous(node)
    assert bystander.subscribe(topic)[0] == SUBSCRIBED
    assert health(node)[0] == 200
    frozen_redis.stop()
    gone = wait_for_health(node, 503, 5)  # the reader's XREAD fails as its connection drops
    assert gone["status"] == "unavailable" and "the Redis log reader fails" in gone["problem"], gone
    assert available(node) == 0
    assert gone["rejections"].get("history_unavailable") is None  # nothing was refused: none was sent
    back = RedisServer(tmp_path / "redis-again", port=frozen_redis.port)
    try:
        assert wait_for_health(node, 200, 10)["status"] == "ready"
        assert available(node) == 1
        # Redis came back empty, a new history: what the node had not delivered of the old one
        # is gone, so its subscribers are told (never a silent gap) and come back to recover
        message, _, _ = bystander.ended_by_gap(timeout=10)
        assert "(the history was reset: a new epoch)" in message
        again = anonymous(node)
        assert again.subscribe(topic)[0] == SUBSCRIBED
        status, body, _ = request(node, {"topic": topic, "data": "after"})
        assert status == 200, body
        [(arg, position)] = events(again, 1)
        assert (arg, position) == ("after", body["published"][0]["position"])
        assert position["seq"] == 1
    finally:
        back.stop()
