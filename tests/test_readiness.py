"""``/health`` says ready only once every configured web path is attached (crossbar adds them after it)."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from broker.router import readiness
from broker.router.crossbar import readiness as readiness_hook
from tests.node import Node, free_port, tests_importable
from tests.rawwamp import RawWamp


class FakeTransport:
    def __init__(self, paths: dict[str, Any]) -> None:
        self.id = "web"
        self._config = {"paths": paths}
        self.root: Any = None


class FakeService:
    """Crossbar's ``RouterWebService`` as far as the readiness hook reads it."""

    def __init__(self, transport: FakeTransport, path: str) -> None:
        self._transport, self._path, self._paths = transport, path, {}

    def __setitem__(self, path: str, service: Any) -> None:
        self._paths[path] = service


def test_pending_paths_shrink_as_crossbar_attaches_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(readiness, "_pending", {})
    transport = FakeTransport({"/": {}, "health": {}, "ws": {}, "lp": {}})
    root = FakeService(transport, "/")
    transport.root = root
    setitem = readiness_hook._make_setitem(FakeService.__setitem__)
    setitem(root, "health", object())
    assert readiness.pending_paths() == ["web:lp", "web:ws"]
    setitem(root, "ws", object())
    assert readiness.pending_paths() == ["web:lp"]
    setitem(root, "lp", object())
    assert readiness.pending_paths() == []


def test_nested_services_are_not_the_transport_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(readiness, "_pending", {})
    transport = FakeTransport({"/": {}, "ws": {}})
    transport.root = FakeService(transport, "/")
    nested = FakeService(transport, "/")  # the root of a nested "path" service
    readiness_hook._make_setitem(FakeService.__setitem__)(nested, "x", object())
    assert readiness.pending_paths() == []


def _health(node: Node) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"{node.url}/health", timeout=5) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


@pytest.mark.node
def test_health_waits_for_paths_attached_after_it(tmp_path: Path) -> None:
    """A path slow to attach (crossbar attaches them in sorted order: api, health, lp, metrics, sse,
    trickle, ws): /health answers 503 naming what is missing until /ws is there, and its first 200 means a
    WebSocket connects at once."""

    def slow_path(config: dict[str, Any]) -> None:
        paths = config["workers"][0]["transports"][0]["paths"]
        paths["trickle"] = {"type": "resource", "classname": "tests.slowresource.SlowResource"}

    env = {"BROKER_TEST_SLOW_PATH_SECONDS": "3", **tests_importable()}
    node = Node(tmp_path / "node", mutate=slow_path, env=env, port=free_port())
    starting = threading.Thread(target=node.start, daemon=True)
    starting.start()
    seen: list[tuple[int, dict[str, Any]]] = []
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            try:
                status, body = _health(node)
            except (OSError, ValueError):
                time.sleep(0.02)
                continue
            seen.append((status, body))
            if status == 200:
                client = RawWamp(node.ws_url, origin=node.origin)  # at once: no retry
                try:
                    assert client.hello()[0] == 2  # WELCOME: /ws was attached already
                finally:
                    client.close()
                break
            time.sleep(0.02)
        starting.join(60)
    finally:
        node.stop()
    pending = [body["pending_paths"] for status, body in seen if status == 503 and body.get("pending_paths")]
    assert pending and pending[-1] == ["web:ws"], seen  # paused: every path but /ws attached
    assert seen[-1][0] == 200 and seen[-1][1]["status"] == "ready", seen
    assert seen[-1][1]["node_id"] == node.node_id
