"""``POST /api/publish`` across a kill -9: a captured request stays refused, a retry publishes once."""

from __future__ import annotations

import json
import signal
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from broker.core import signing
from broker.engines.publish_memory import MEMORY_STORE_FILE
from tests.node import PUBLISHER_SECRET, Node
from tests.rawwamp import SUBSCRIBED
from tests.test_publish_api import request
from tests.test_recovery import anonymous, recover, sqlite_store

pytestmark = pytest.mark.node


def captured(topic: str, data: Any, now: float | None = None) -> tuple[bytes, dict[str, str]]:
    """A signed request as an eavesdropper would keep it: the exact body and headers."""
    raw = json.dumps({"topic": topic, "data": data}).encode()
    return raw, signing.sign_headers("dev", PUBLISHER_SECRET, "POST", "/api/publish", raw, now=now)


def killed_and_restarted(node: Node) -> Node:
    """kill -9 the node, start a new one on the same directory (same history file, a new port)."""
    node.stop(signal.SIGKILL)
    return Node(node.workdir, mutate=node.mutate).start()


def test_sqlite_node_refuses_a_captured_request_and_answers_a_retry_after_kill_9(
    make_node: Callable[..., Node],
) -> None:
    node = make_node(sqlite_store)
    topic = f"public.restart.{uuid.uuid4().hex[:8]}"
    raw, headers = captured(topic, "captured")
    assert request(node, raw, headers=headers, sign=False)[0] == 200
    message = {"topic": topic, "data": "retried", "idempotency_key": uuid.uuid4().hex}
    status, first, _ = request(node, message)
    assert status == 200
    restarted = killed_and_restarted(node)
    try:
        status, body, _ = request(restarted, raw, headers=headers, sign=False)  # the identical request
        assert (status, body["error"]) == (409, "broker.error.replay")
        nonce = headers[signing.HEADER_NONCE]
        assert body["message"] == f"nonce {nonce!r} was already used: every request needs a fresh nonce"
        status, again, answer_headers = request(restarted, message)  # signed anew, same key
        assert status == 200
        assert again == first  # the same id, position and cursor: nothing published again
        assert answer_headers["Idempotent-Replayed"] == "true"
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
    topic = f"public.restart.{uuid.uuid4().hex[:8]}"
    raw, headers = captured(topic, "captured")
    assert request(node, raw, headers=headers, sign=False)[0] == 200
    message = {"topic": topic, "data": "retried", "idempotency_key": uuid.uuid4().hex}
    status, first, _ = request(node, message)
    assert status == 200
    restarted = killed_and_restarted(node)
    try:
        assert (restarted.workdir / "run" / MEMORY_STORE_FILE).is_file()
        watcher = anonymous(restarted)
        assert watcher.subscribe(topic)[0] == SUBSCRIBED
        status, body, _ = request(restarted, raw, headers=headers, sign=False)  # the identical request
        assert (status, body["error"]) == (409, "broker.error.replay")
        nonce = headers[signing.HEADER_NONCE]
        assert body["message"] == f"nonce {nonce!r} was already used: every request needs a fresh nonce"
        status, again, answer_headers = request(restarted, message)  # signed anew, same key
        assert status == 200
        assert again == first  # the same id and position (of the old epoch): nothing published again
        assert answer_headers["Idempotent-Replayed"] == "true"
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
