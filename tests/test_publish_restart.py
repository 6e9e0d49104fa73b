"""``POST /api/publish`` across a kill -9: a captured request stays refused, a retry publishes once."""

from __future__ import annotations

import json
import secrets
import signal
import sqlite3
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from broker.core import signing
from broker.engines.publish_memory import MEMORY_STORE_FILE
from tests.node import PUBLISHER_SECRET, Node
from tests.rawwamp import SUBSCRIBED
from tests.redisserver import RedisServer
from tests.test_cluster import on_redis
from tests.test_publish_api import request
from tests.test_recovery import anonymous, recover, sqlite_store

pytestmark = pytest.mark.node


def captured(topic: str, data: Any, now: float | None = None) -> tuple[bytes, dict[str, str]]:
    """A signed request as an eavesdropper would keep it: the exact body and headers."""
    raw = json.dumps({"topic": topic, "data": data}).encode()
    return raw, signing.sign_headers("dev", PUBLISHER_SECRET, "POST", "/api/publish", raw, now=now)


def published_twice(node: Node) -> tuple[str, bytes, dict[str, str], dict[str, Any], dict[str, Any]]:
    """Two events published to a fresh topic on ``node``, each answered 200: one request kept as
    an eavesdropper would (:func:`captured`), then one with an idempotency key.

    ``(topic, raw, headers, message, first)``: the topic, the captured body and headers, the
    keyed message and its answer.
    """
    topic = f"public.restart.{uuid.uuid4().hex[:8]}"
    raw, headers = captured(topic, "captured")
    assert request(node, raw, headers=headers, sign=False)[0] == 200
    message = {"topic": topic, "data": "retried", "idempotency_key": uuid.uuid4().hex}
    status, first, _ = request(node, message)
    assert status == 200
    return topic, raw, headers, message, first


def refuses_the_replay_and_answers_the_retry(
    node: Node, raw: bytes, headers: dict[str, str], message: dict[str, Any], first: dict[str, Any]
) -> None:
    """The identical captured request is refused as a replay by ``node``; ``message`` signed anew
    (same idempotency key) gets ``first``, its earlier answer (the same id and position: nothing
    published again), marked replayed."""
    status, body, _ = request(node, raw, headers=headers, sign=False)
    assert (status, body["error"]) == (409, "broker.error.replay")
    nonce = headers[signing.HEADER_NONCE]
    assert body["message"] == f"nonce {nonce!r} was already used: every request needs a fresh nonce"
    status, again, answer_headers = request(node, message)
    assert (status, again, answer_headers["Idempotent-Replayed"]) == (200, first, "true")


def killed_and_restarted(node: Node) -> Node:
    """kill -9 the node, start a new one on the same directory (same history file, a new port)."""
    node.stop(signal.SIGKILL)
    return Node(node.workdir, mutate=node.mutate).start()


def test_sqlite_node_refuses_a_captured_request_and_answers_a_retry_after_kill_9(
    make_node: Callable[..., Node],
) -> None:
    node = make_node(sqlite_store)
    topic, raw, headers, message, first = published_twice(node)
    restarted = killed_and_restarted(node)
    try:
        refuses_the_replay_and_answers_the_retry(restarted, raw, headers, message, first)
        # an honest publisher beside them is unaffected, and history holds each event once
        status, honest, _ = request(restarted, {"topic": topic, "data": "honest"})
        assert status == 200
        position = honest["published"][0]["position"]
        answer = recover(anonymous(restarted), topic, "exact", position["epoch"], 0)
        assert [e["args"] for e in answer["events"]] == [["captured"], ["retried"], ["honest"]]
        assert [e["position"]["seq"] for e in answer["events"]] == [1, 2, 3]
    finally:
        restarted.stop()


def test_memory_node_refuses_a_captured_request_and_answers_a_retry_after_kill_9(
    make_node: Callable[..., Node],
) -> None:
    """Memory history forgets events, not the publish memory: it is in a file of its own."""
    node = make_node()
    topic, raw, headers, message, first = published_twice(node)
    restarted = killed_and_restarted(node)
    try:
        assert (restarted.workdir / "run" / MEMORY_STORE_FILE).is_file()
        watcher = anonymous(restarted)
        assert watcher.subscribe(topic)[0] == SUBSCRIBED
        refuses_the_replay_and_answers_the_retry(restarted, raw, headers, message, first)
        # an honest publisher beside them is unaffected; the watcher sees only its event
        status, honest, _ = request(restarted, {"topic": topic, "data": "honest"})
        assert status == 200
        assert watcher.event()[4] == ["honest"]
        position = honest["published"][0]["position"]
        answer = recover(anonymous(restarted), topic, "exact", position["epoch"], 0)
        assert [e["args"] for e in answer["events"]] == [["honest"]]
        assert [e["position"]["seq"] for e in answer["events"]] == [1]
        # the first answer's position belongs to the previous epoch: recovering from it is unrecoverable
        old = first["published"][0]["position"]
        assert old["epoch"] != position["epoch"]
        answer = recover(anonymous(restarted), topic, "exact", old["epoch"], old["cursor"])
        assert (answer["unrecoverable"], answer["reason"]) == (True, "epoch changed: the history was reset")
    finally:
        restarted.stop()


def test_memory_node_with_a_fresh_directory_refuses_a_request_signed_before_it_started(
    make_node: Callable[..., Node],
) -> None:
    """Without its publish memory file the node cannot tell a replay from new: it refuses it."""
    node = make_node()
    topic = f"public.restart.{uuid.uuid4().hex[:8]}"
    signed_at = int(time.time())
    raw, headers = captured(topic, "captured", now=signed_at)
    assert request(node, raw, headers=headers, sign=False)[0] == 200
    node.stop(signal.SIGKILL)
    for leftover in (node.workdir / "run").glob(MEMORY_STORE_FILE + "*"):  # with its -wal and -shm
        leftover.unlink()
    restarted = Node(node.workdir, mutate=node.mutate).start()
    try:
        status, body, _ = request(restarted, raw, headers=headers, sign=False)
        assert (status, body["error"]) == (401, "broker.error.unauthenticated")
        assert body["message"].startswith(
            f"timestamp {signed_at} is before the node's replay memory begins ("
        )
        assert body["message"].endswith(
            ", when it started without memory of earlier requests): "
            "sign the request again with a fresh timestamp"
        )
        # the same event signed again now is published once
        status, published, _ = request(restarted, {"topic": topic, "data": "captured"})
        assert status == 200
        position = published["published"][0]["position"]
        answer = recover(anonymous(restarted), topic, "exact", position["epoch"], 0)
        assert [e["args"] for e in answer["events"]] == [["captured"]]
    finally:
        restarted.stop()


def _journalled(node: Node) -> list[str]:
    """The nonces in the node's publish memory file."""
    with sqlite3.connect(node.workdir / "run" / MEMORY_STORE_FILE) as db:
        return [nonce for (nonce,) in db.execute("SELECT nonce FROM publish_nonces ORDER BY rowid")]


def test_redis_node_refuses_a_captured_request_after_kill_9_by_the_cluster_wide_claim(
    make_node: Callable[..., Node], redis_server: RedisServer
) -> None:
    """A Redis node writes no nonce Redis claimed to its own journal (the claim, kept two timestamp
    windows, refuses the replay on every node, this one restarted too); a repeat answered from
    the node's idempotency cache never reaches Redis, so its nonce is written here."""
    node = make_node(on_redis(redis_server.url, f"r{secrets.token_hex(6)}"))
    topic, raw, headers, message, first = published_twice(node)
    repeat = json.dumps(message).encode()
    repeat_headers = signing.sign_headers("dev", PUBLISHER_SECRET, "POST", "/api/publish", repeat)
    status, again, answer_headers = request(node, repeat, headers=repeat_headers, sign=False)
    assert (status, again, answer_headers["Idempotent-Replayed"]) == (200, first, "true")
    assert _journalled(node) == [repeat_headers[signing.HEADER_NONCE]]
    restarted = killed_and_restarted(node)
    try:
        watcher = anonymous(restarted)
        assert watcher.subscribe(topic)[0] == SUBSCRIBED
        for body, signed in ((raw, headers), (repeat, repeat_headers)):  # both identical requests
            status, answer, _ = request(restarted, body, headers=signed, sign=False)
            assert (status, answer["error"]) == (409, "broker.error.replay")
            nonce = signed[signing.HEADER_NONCE]
            assert answer["message"].startswith(f"nonce {nonce!r} was already used")
        # an honest publisher beside them is unaffected; the watcher sees only its event
        status, honest, _ = request(restarted, {"topic": topic, "data": "honest"})
        assert status == 200
        assert watcher.event()[4] == ["honest"]
        position = honest["published"][0]["position"]
        answer = recover(anonymous(restarted), topic, "exact", position["epoch"], 0)
        assert [e["args"] for e in answer["events"]] == [["captured"], ["retried"], ["honest"]]
    finally:
        restarted.stop()
