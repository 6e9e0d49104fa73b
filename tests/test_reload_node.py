"""Live reload against real nodes: ``broker config`` edits, then ``broker reload`` or SIGHUP.

Each test starts a node of its own from a copy of the project config (in the
node's work directory, next to its own dev secrets file) and edits that copy.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus

from broker.config import devsecrets
from broker.core import signing
from tests.node import BACKEND_SECRET, BROKER, OPERATOR_SECRET, Node, children
from tests.rawwamp import ERROR, EVENT, PUBLISHED, RESULT, SUBSCRIBED, RawWamp

pytestmark = pytest.mark.node

EXTRA = "$.workers[0].components[0].extra"


def config_of(node: Node) -> Path:
    return node.workdir / "config" / "config.json"


def broker(node: Node, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``broker ARGS --config <the node's config>`` against ``node``."""
    env = node.env()
    env["BROKER_WS_URL"] = node.ws_url
    return subprocess.run(
        [str(BROKER), *args, "--config", str(config_of(node))],
        capture_output=True,
        text=True,
        env=env,
        cwd=node.workdir,
        timeout=120,
        check=False,
    )


def join(node: Node, role: str = "anonymous") -> RawWamp:
    client = RawWamp(node.ws_url, origin=node.origin)
    if role == "anonymous":
        welcome = client.hello()
    else:
        welcome = client.hello(
            authid=role, secret={"backend": BACKEND_SECRET, "operator": OPERATOR_SECRET}[role]
        )
    assert welcome[0] == 2, welcome
    return client


def edit(node: Node, change: Callable[[dict[str, Any]], None]) -> None:
    """A hand edit of the node's config file."""
    path = config_of(node)
    config = json.loads(path.read_text())
    change(config)
    path.write_text(json.dumps(config, indent=2))


def wait_for_log(node: Node, text: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while text not in node.log():
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} not logged; log:\n{node.log()[-3000:]}")
        time.sleep(0.1)


def healthy(node: Node) -> bool:
    with urllib.request.urlopen(f"{node.url}/health", timeout=5) as response:
        return response.status == 200


def test_a_grant_applies_to_new_subscriptions_and_sessions_stay(make_node: Callable[..., Node]) -> None:
    node = make_node(lambda config: None)
    old = join(node)
    backend = join(node, "backend")
    operator = join(node, "operator")
    assert old.subscribe("public.news")[0] == SUBSCRIBED
    assert old.subscribe("orders.created")[:5] == [ERROR, 32, 2, {}, "wamp.error.not_authorized"]
    before = {old.session_id, backend.session_id}

    granted = broker(
        node, "config", "grant", "anonymous", "orders.", "--match", "prefix", "--allow", "subscribe"
    )
    assert granted.returncode == 0, granted.stderr
    reloaded = broker(node, "reload")
    assert reloaded.returncode == 0, reloaded.stderr
    assert reloaded.stdout.splitlines() == [f"changed: {EXTRA}.grants.anonymous[2]"]

    # new subscriptions, in a new session and in one from before the reload
    assert join(node).subscribe("orders.created")[0] == SUBSCRIBED
    assert old.subscribe("orders.created")[0] == SUBSCRIBED
    # the sessions from before are the same sessions, and still subscribed
    listed = operator.call("wamp.session.list")
    assert listed[0] == RESULT
    assert before <= set(listed[3][0])
    assert backend.publish("public.news", [1])[0] == PUBLISHED  # type: ignore[index]
    event = old.event()
    assert event[0] == EVENT
    assert event[4] == [1]
    assert node.proc is not None and node.proc.poll() is None
    assert children(node.pid) == node.workers  # the same router worker
    # only the operator may reload
    for client in (old, backend):
        refused = client.call("broker.reload")
        assert (refused[0], refused[4]) == (ERROR, "wamp.error.not_authorized")


def test_an_invalid_edit_is_refused_with_its_path_and_nothing_applies(make_node: Callable[..., Node]) -> None:
    node = make_node(lambda config: None)
    client = join(node)

    def bad(config: dict[str, Any]) -> None:
        extra = config["workers"][0]["components"][0]["extra"]
        extra["grants"]["anonymous"].append({"uri": "orders.", "match": "prefix", "allow": ["subscribe"]})
        extra["hello_timeout"] = "soon"

    edit(node, bad)
    refused = broker(node, "reload")
    assert refused.returncode == 1
    assert f"{EXTRA}.hello_timeout" in refused.stderr
    assert "Broker reload" not in refused.stdout
    # the valid half of the edit did not apply either, and the node serves on
    assert join(node).subscribe("orders.created")[:3] == [ERROR, 32, 1]
    assert client.subscribe("public.news")[0] == SUBSCRIBED
    assert healthy(node)


def _publish(node: Node, key: str, secret: str) -> int:
    body = json.dumps({"topic": "public.rotated", "data": 1}).encode()
    headers = {
        "Content-Type": "application/json",
        **signing.sign_headers(key, secret, "POST", "/api/publish", body),
    }
    request = urllib.request.Request(f"{node.url}/api/publish", data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def test_a_rotated_publisher_key_stops_working_without_a_restart(
    make_node: Callable[..., Node], tmp_path: Path
) -> None:
    # the key's secret comes from the dev secrets file, as `broker run` exports it at start
    secrets = tmp_path / "node0" / "config" / "secrets.env"
    secrets.parent.mkdir(parents=True)
    devsecrets.update(secrets, {"BROKER_PUBLISHER_CI_SECRET": "old-ci-secret"})

    def with_ci_key(config: dict[str, Any]) -> None:
        config["workers"][0]["components"][0]["extra"]["publishers"]["ci"] = {
            "secret": "${BROKER_PUBLISHER_CI_SECRET}",
            "topics": [{"uri": "public.", "match": "prefix"}],
        }

    node = make_node(with_ci_key)
    assert node.workdir == tmp_path / "node0"
    assert _publish(node, "ci", "old-ci-secret") == 200

    rotated = broker(node, "config", "rotate-publisher", "ci")
    assert rotated.returncode == 0, rotated.stderr
    new_secret = dict(line.split("=", 1) for line in rotated.stdout.splitlines())["secret"]
    reloaded = broker(node, "reload")
    assert reloaded.returncode == 0, reloaded.stderr
    assert reloaded.stdout.splitlines() == [f"changed: {EXTRA}.publishers.ci.secret"]
    assert _publish(node, "ci", "old-ci-secret") == 401
    assert _publish(node, "ci", new_secret) == 200
    # a key added since start works after a reload too; the operator's own env value still wins
    added = broker(node, "config", "add-publisher", "ops", "--topic", "public.", "--match", "prefix")
    assert added.returncode == 0, added.stderr
    ops_secret = dict(line.split("=", 1) for line in added.stdout.splitlines())["secret"]
    assert broker(node, "reload").returncode == 0
    assert _publish(node, "ops", ops_secret) == 200
    assert _publish(node, "dev", "test-publisher-secret") == 200  # from the test's environment


def test_sighup_to_the_node_reloads(make_node: Callable[..., Node]) -> None:
    node = make_node(lambda config: None)
    client = join(node)
    granted = broker(
        node, "config", "grant", "anonymous", "orders.", "--match", "prefix", "--allow", "subscribe"
    )
    assert granted.returncode == 0, granted.stderr
    signalled = broker(node, "reload", "--signal", "--cbdir", str(node.workdir / "run"))
    assert signalled.returncode == 0, signalled.stderr
    assert f"PID {node.pid}" in signalled.stdout
    wait_for_log(node, f"Broker reload (SIGHUP): changed {EXTRA}.grants.anonymous[2]")
    assert client.subscribe("orders.created")[0] == SUBSCRIBED
    # an operator's own `kill -HUP` is the same; a second one finds nothing new
    os.kill(node.pid, 1)
    wait_for_log(node, "Broker reload (SIGHUP): no changes")
    assert node.proc is not None and node.proc.poll() is None
    assert children(node.pid) == node.workers


def test_a_port_change_is_reported_as_needing_a_restart(make_node: Callable[..., Node]) -> None:
    node = make_node(lambda config: None)

    def move(config: dict[str, Any]) -> None:
        config["workers"][0]["transports"][0]["endpoint"]["port"] = 18080
        config["workers"][0]["components"][0]["extra"]["grants"]["anonymous"].append(
            {"uri": "orders.", "match": "prefix", "allow": ["subscribe"]}
        )

    edit(node, move)
    reloaded = broker(node, "reload")
    assert reloaded.returncode == 0, reloaded.stderr
    assert reloaded.stdout.splitlines() == [
        f"changed: {EXTRA}.grants.anonymous[2]",
        "restart needed: $.workers[0].transports[0].endpoint.port",
    ]
    assert join(node).subscribe("orders.created")[0] == SUBSCRIBED  # the live part applied
    assert healthy(node)  # still on its old port


def test_allowed_origins_change_on_the_running_websocket(make_node: Callable[..., Node]) -> None:
    node = make_node(lambda config: None)
    with pytest.raises(InvalidStatus):
        RawWamp(node.ws_url, origin="https://dash.example.com")

    def allow(config: dict[str, Any]) -> None:
        options = config["workers"][0]["transports"][0]["paths"]["ws"]["options"]
        options["allowed_origins"].append("https://dash.example.com:*")

    edit(node, allow)
    reloaded = broker(node, "reload")
    assert reloaded.returncode == 0, reloaded.stderr
    assert reloaded.stdout.splitlines() == [
        "changed: $.workers[0].transports[0].paths.ws.options.allowed_origins[2]"
    ]
    client = RawWamp(node.ws_url, origin="https://dash.example.com")
    assert client.hello()[0] == 2
    client.close()
