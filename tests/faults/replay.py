"""Replays and idempotent retries across a restart of the node.

docs/http-publish.md promises that each signed request (its nonce) is
accepted once and that a retry with the same ``idempotency_key`` publishes
once. A backend captures a signed ``POST /api/publish``, the node is killed
(kill -9) and started again, and the backend sends the captured request again
and retries with the same idempotency key. Both must be answered as before
the restart, whichever history store the node has (its publish memory is on
disk either way, docs/http-publish.md "Across restarts"): 409 for the replay,
the first answer for the retry, and no second event in history.
"""

from __future__ import annotations

import json
import signal
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from broker.core import signing
from tests.faults import Finding, Scale
from tests.faults.crash import sqlite_store
from tests.faults.gapless import GaplessSubscriber
from tests.node import PUBLISHER_SECRET, Node

PATH = "/api/publish"


def _post(node: Node, raw: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        node.url + PATH, data=raw, headers={"Content-Type": "application/json", **headers}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _signed(body: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(body).encode()
    return raw, signing.sign_headers("dev", PUBLISHER_SECRET, "POST", PATH, raw)


def _events(node: Node, topic: str) -> int:
    """How many events ``topic`` has in the node's current history (-1 if recovery failed)."""
    probe = GaplessSubscriber(topic, "exact", epoch="?", last=0)  # answered unrecoverable: the epoch
    probe.connect(node)
    probe.drop()
    sub = GaplessSubscriber(topic, "exact", epoch=probe.epoch, last=0)
    sub.connect(node)
    sub.drop()
    return len(sub.received) if not sub.errors else -1


def _one(workdir: Path, durable: bool) -> list[Finding]:
    node = Node(workdir, mutate=sqlite_store if durable else None).start()
    try:
        topic = f"public.replay.{uuid.uuid4().hex[:8]}"
        captured = _signed({"topic": topic, "data": "captured"})
        key = uuid.uuid4().hex
        first_status, first = _post(node, *_signed({"topic": topic, "data": "keyed", "idempotency_key": key}))
        assert _post(node, *captured)[0] == 200
        node.stop(signal.SIGKILL)
        node.start()
        replay_status, replay = _post(node, *captured)
        retry_status, retry = _post(node, *_signed({"topic": topic, "data": "keyed", "idempotency_key": key}))
        count = _events(node, topic)
    finally:
        node.stop()  # whatever happened above: a scenario never leaves its node running
    store = "SQLite" if durable else "memory"
    expected = 2 if durable else 0  # a memory node starts a new, empty history
    return [
        Finding(
            f"a captured signed request sent again after kill -9 and restart ({store} history)",
            f"HTTP {replay_status} {replay.get('error', '')}",
            replay_status == 409,
        ),
        Finding(
            f"a retry with the same idempotency_key after kill -9 and restart ({store} history)",
            f"HTTP {retry_status} {retry.get('error', '')}"
            + (" (the first answer)" if retry == first else ""),
            retry_status == first_status and retry == first,
        ),
        Finding(
            f"events of that topic in history after both ({store} history)",
            f"{count} ({expected} expected)",
            count == expected,
        ),
    ]


def run(workdir: Path, scale: Scale) -> list[Finding]:
    """Both stores, each on a node of its own (the scale does not change a replay)."""
    return _one(workdir / "sqlite", durable=True) + _one(workdir / "memory", durable=False)
