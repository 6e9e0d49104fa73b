"""A grant into the reserved ``wamp.``/``broker.`` namespaces, refused where a real node reads it.

``broker config grant`` and ``broker check`` refuse it (tests/test_config_edit.py, the
checker corpus); here a hand-edited file meets ``broker run`` (no node starts) and
``broker reload`` (the running node keeps its grants and serves on).
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.node import BROKER, Node, free_port
from tests.rawwamp import ERROR, EVENT, PUBLISHED, SUBSCRIBED
from tests.test_reload_node import broker, edit, healthy, join

pytestmark = pytest.mark.node

EXTRA = "$.workers[0].components[0].extra"
REFUSAL = (
    f"{EXTRA}.grants.anonymous[2]: a prefix grant on 'wamp.session.' would cover every name under it: "
    "the wamp. and broker. namespaces are reserved for the node; grant exact URIs"
)


def grant_session_meta(config: dict[str, Any]) -> None:
    """What ``broker config grant anonymous wamp.session. --match prefix --allow subscribe`` used to write."""
    grants = config["workers"][0]["components"][0]["extra"]["grants"]["anonymous"]
    grants.append({"uri": "wamp.session.", "match": "prefix", "allow": ["subscribe"]})


def test_a_node_refuses_to_start_with_a_reserved_grant(tmp_path: Path) -> None:
    node = Node(tmp_path / "node", mutate=grant_session_meta)
    run = subprocess.Popen(
        [str(BROKER), "run", "--config", str(node.config_path()), "--port", str(free_port())],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=node.env(),
        cwd=node.workdir,
        start_new_session=True,
    )
    try:
        stdout, stderr = run.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(run.pid, signal.SIGKILL)  # it started: stop the node and its workers
        run.communicate()
        raise AssertionError("the node started with a reserved grant") from None
    assert run.returncode == 1
    assert stderr == f"broker: config error: {REFUSAL}\n"
    assert "ready" not in stdout


def test_a_reload_with_a_reserved_grant_is_refused_and_the_node_serves_on(
    make_node: Callable[..., Node],
) -> None:
    node = make_node(lambda config: None)
    canary = join(node)
    assert canary.subscribe("public.news")[0] == SUBSCRIBED
    edit(node, grant_session_meta)

    refused = broker(node, "reload")
    assert refused.returncode == 1
    assert REFUSAL in refused.stderr
    assert "Broker reload" not in refused.stdout

    # nothing applied: an anonymous browser still gets no session meta events
    browser = join(node)
    assert browser.subscribe("wamp.session.on_join")[:5] == [ERROR, 32, 1, {}, "wamp.error.not_authorized"]
    assert browser.subscribe("wamp.session.", "prefix")[:5] == [ERROR, 32, 2, {}, "wamp.error.not_authorized"]
    # and the node serves on: the canary from before the reload still receives
    assert join(node, "backend").publish("public.news", [1])[0] == PUBLISHED  # type: ignore[index]
    event = canary.event()
    assert (event[0], event[4]) == (EVENT, [1])
    assert healthy(node)
