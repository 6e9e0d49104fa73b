"""Long-poll transport ids name the node that issued them (:mod:`broker.core.nodeid`,
:mod:`broker.router.crossbar.longpoll_sticky`, item 16), so a proxy can route a session to its node;
a transport a node does not hold is a JSON 404 that says which node it belongs to.

The pure rules run without a node; the rest against real nodes (one, or two to send
one's transport to the other, as a misconfigured proxy would).
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from broker.core.nodeid import (
    NODE_ID_PATTERN,
    check_node_id,
    issuing_node,
    new_transport_id,
    node_id_from,
)
from broker.errors import ConfigError
from broker.router.crossbar.longpoll_sticky import (
    UnknownTransportResource,
    _make_get_child,
    _make_render_post,
    unknown_transport_message,
)
from broker.router.state import NodeState
from tests.lpclient import LongPollSession, post
from tests.node import BROKER, PROJECT_CONFIG, Node, free_port
from tests.rawwamp import EVENT, PUBLISHED, SUBSCRIBED, WELCOME
from tests.test_longpoll import backend
from tests.test_longpoll import post as lp_post
from tools.nginxconf import doc_cluster_block

# -- the rules (no node) ------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["node-1", "n", "A_b-9", "f" * 64, "0123456789abcdef0123456789abcdef"])
def test_valid_node_ids(value: str) -> None:
    assert check_node_id(value) == value


@pytest.mark.parametrize("value", ["node.1", "", "f" * 65, "node 1", "nöde", "a/b", "a%2eb", "node-1\n"])
def test_invalid_node_ids_are_refused_naming_the_rule(value: str) -> None:
    with pytest.raises(ConfigError) as refused:
        check_node_id(value)
    assert str(refused.value) == (
        f"BROKER_NODE_ID: {value!r} is not a node id: 1 to 64 characters of A-Z a-z 0-9 _ - "
        "(no dot: long-poll transport ids are <node id>.<random>)"
    )


def test_node_id_comes_from_the_environment_else_is_drawn() -> None:
    assert node_id_from({"BROKER_NODE_ID": "node-2"}) == "node-2"
    drawn = {node_id_from({}), node_id_from({"BROKER_NODE_ID": ""})}
    assert len(drawn) == 2 and all(re.fullmatch("[0-9a-f]{32}", d) for d in drawn)
    with pytest.raises(ConfigError):
        node_id_from({"BROKER_NODE_ID": "a.b"})


def test_transport_ids_name_their_node_and_are_url_safe() -> None:
    ids = {new_transport_id("node-2") for _ in range(100)}
    assert len(ids) == 100
    for transport in ids:
        node, _, token = transport.partition(".")
        assert node == "node-2" and issuing_node(transport) == "node-2"
        assert re.fullmatch(r"[A-Za-z0-9_-]{22}", token), transport  # 16 random bytes, base64url


@pytest.mark.parametrize("transport", ["K3XKJ7WH4RRA", "node-1.", ".abc", "bad node.abc", "x" * 65 + ".abc"])
def test_ids_naming_no_node_have_no_issuer(transport: str) -> None:
    # crossbar's own ids (12 characters, no dot) and malformed ones name no node
    assert issuing_node(transport) is None


def test_unknown_transport_messages() -> None:
    assert unknown_transport_message("node-1.abc", "node-2") == (
        "long-poll transport 'node-1.abc' was opened on node 'node-1', this is node 'node-2': "
        "the proxy must send /lp/node-1.*/ to node 'node-1' (docs/operators.md, several nodes)",
        True,
    )
    for transport in ("node-2.abc", "K3XKJ7WH4RRA"):
        assert unknown_transport_message(transport, "node-2") == (
            f"no long-poll transport {transport!r} on this node (closed or expired): open a new one",
            False,
        )


class FakeLongPoll:
    """What the wrappers read of crossbar's long-poll resource."""

    def __init__(self, debug_transport_id: str | None = None) -> None:
        self._debug_transport_id = debug_transport_id
        self._transports = {"node-2.held": object()}
        self._parent = self  # the /open child's parent is the resource itself

    def _set_standard_headers(self, request: object) -> None:
        pass


def test_open_uses_a_fresh_id_naming_this_node_for_that_one_call() -> None:
    state = NodeState(node_id="node-2")
    seen: list[str | None] = []

    def crossbars(self: FakeLongPoll, request: object) -> bytes:
        seen.append(self._debug_transport_id)  # what crossbar's render_POST would use
        return b"{}"

    render = _make_render_post(state, crossbars)
    resource = FakeLongPoll()
    render(resource, None)
    render(resource, None)
    assert all(issuing_node(str(transport)) == "node-2" for transport in seen) and seen[0] != seen[1]
    assert resource._debug_transport_id is None  # crossbar draws no fixed id afterwards
    # an operator's debug_transport_id stays what they configured
    fixed = FakeLongPoll("fixed-id")
    render(fixed, None)
    assert seen[-1] == fixed._debug_transport_id == "fixed-id"


def test_unknown_transports_get_the_json_resource_and_misrouted_ones_are_counted() -> None:
    state = NodeState(node_id="node-2")
    get_child = _make_get_child(state, lambda self, name, request: "crossbar's")

    class Request:
        def getClientIP(self) -> str:
            return "127.0.0.1"

    resource = FakeLongPoll()
    assert get_child(resource, b"node-2.held", Request()) == "crossbar's"
    assert get_child(resource, b"", Request()) == "crossbar's"
    own = get_child(resource, b"node-2.gone", Request())
    assert isinstance(own, UnknownTransportResource) and state.rejections == {}
    other = get_child(resource, b"node-1.abc", Request())
    assert isinstance(other, UnknownTransportResource) and state.rejections == {"MisroutedLongPoll": 1}


def test_the_docs_nginx_map_matches_exactly_the_node_ids_broker_accepts() -> None:
    assert f'"~^/lp/({NODE_ID_PATTERN})\\."  $1;' in doc_cluster_block()


# -- real nodes -----------------------------------------------------------------------------------


def subscribed(node: Node, topic: str) -> LongPollSession:
    session = LongPollSession(node.url)
    assert session.hello()[0] == WELCOME
    assert session.subscribe(topic)[0] == SUBSCRIBED
    return session


def delivers(node: Node, session: LongPollSession, topic: str, payload: int) -> None:
    publisher = backend(node)
    try:
        published = publisher.publish(topic, [payload])
        assert published is not None and published[0] == PUBLISHED
    finally:
        publisher.close()
    event = session.recv()
    assert (event[0], event[4]) == (EVENT, [payload])


@pytest.mark.node
def test_a_node_names_itself_in_the_transports_it_opens(node: Node) -> None:
    session = subscribed(node, "public.sticky.own")
    assert issuing_node(session.transport) == node.node_id
    delivers(node, session, "public.sticky.own", 1)
    session.close()
    # closed: the node says so in JSON, and counts nothing (the client just opens a new one)
    gone = session.request("receive")
    assert gone.status == 404 and gone.headers["Content-Type"] == "application/json"
    assert gone.json() == {
        "error": "broker.error.unknown_transport",
        "message": f"no long-poll transport {session.transport!r} on this node (closed or expired): "
        "open a new one",
    }
    assert "MisroutedLongPoll" not in node.rejections()
    # a page of an allowed origin may read the answer (CORS as the path's other answers), another not
    allowed = lp_post(node, f"{session.transport}/receive", origin=node.origin)
    assert (allowed.status, allowed.headers["Access-Control-Allow-Origin"]) == (404, node.origin)
    foreign = lp_post(node, f"{session.transport}/receive", origin="https://evil.example")
    assert (foreign.status, foreign.headers["Access-Control-Allow-Origin"]) == (404, None)
    assert "Traceback" not in node.log()


@pytest.mark.node
def test_another_nodes_transport_is_refused_naming_its_node(make_node: Callable[..., Node]) -> None:
    opener, other = make_node(), make_node()
    session = subscribed(opener, "public.sticky.misrouted")
    # what a proxy without the map would do: send the session's next request to another node
    misrouted = post(other.url, f"/lp/{session.transport}/receive")
    assert misrouted.status == 404
    assert misrouted.json() == {
        "error": "broker.error.unknown_transport",
        "message": f"long-poll transport {session.transport!r} was opened on node {opener.node_id!r}, "
        f"this is node {other.node_id!r}: the proxy must send /lp/{opener.node_id}.*/ to node "
        f"{opener.node_id!r} (docs/operators.md, several nodes)",
    }
    assert other.rejections()["MisroutedLongPoll"] == 1
    assert "MisroutedLongPoll" not in opener.rejections()
    # the session itself is untouched on its node
    delivers(opener, session, "public.sticky.misrouted", 2)
    session.close()
    assert "Traceback" not in other.log() + opener.log()


@pytest.mark.node
@pytest.mark.parametrize("value", ["node.1", "node 1", "x" * 65])
def test_broker_run_refuses_an_invalid_node_id(tmp_path: Path, value: str) -> None:
    env = dict(os.environ, BROKER_NODE_ID=value)
    port = str(free_port())
    cbdir = str(tmp_path / "run")
    ran = subprocess.run(
        [str(BROKER), "run", "--config", str(PROJECT_CONFIG), "--port", port, "--cbdir", cbdir],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ran.returncode == 1
    assert ran.stderr == (
        f"broker: config error: BROKER_NODE_ID: {value!r} is not a node id: 1 to 64 characters of "
        "A-Z a-z 0-9 _ - (no dot: long-poll transport ids are <node id>.<random>)\n"
    )
    assert not (tmp_path / "run").exists()
