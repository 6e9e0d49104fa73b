"""WAMP over long-poll (``/lp``) against a real node: crossbar 26.10 cannot open
a long-poll session at all, reflects any ``Origin`` with credentials, and never
bounds a session's receive queue (:mod:`broker.router.hardening`, item 7).
"""

from __future__ import annotations

import http.client
import json
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from broker.tokens import mint
from tests.node import BACKEND_SECRET, TOKEN_SECRET, Node
from tests.rawwamp import (
    ABORT,
    AUTHENTICATE,
    CHALLENGE,
    ERROR,
    EVENT,
    HELLO,
    PUBLISHED,
    SUBSCRIBE,
    SUBSCRIBED,
    WELCOME,
    RawWamp,
)

pytestmark = pytest.mark.node

ROLES = {"subscriber": {}, "publisher": {}, "caller": {}}


class Response:
    def __init__(self, status: int, headers: http.client.HTTPMessage, body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body


def post(
    node: Node, path: str, body: bytes = b"", origin: str | None = None, timeout: float = 20
) -> Response:
    """One ``POST /lp/<path>``; long-poll receives block until data or the session ends."""
    conn = http.client.HTTPConnection("127.0.0.1", node.port, timeout=timeout)
    headers = {"Content-Type": "application/json"}
    if origin is not None:
        headers["Origin"] = origin
    try:
        conn.request("POST", f"/lp/{path}", body=body, headers=headers)
        response = conn.getresponse()
        return Response(response.status, response.headers, response.read())
    finally:
        conn.close()


class LongPoll:
    """One long-poll transport speaking unbatched WAMP JSON: one message per receive."""

    def __init__(self, node: Node, origin: str | None = None) -> None:
        self.node = node
        self.origin = origin
        opened = post(node, "open", json.dumps({"protocols": ["wamp.2.json"]}).encode(), origin)
        assert opened.status == 200, opened.body
        answer = json.loads(opened.body)
        assert answer["protocol"] == "wamp.2.json"
        self.transport: str = answer["transport"]
        self._request = 0

    def send(self, msg: list[Any]) -> None:
        sent = post(self.node, f"{self.transport}/send", json.dumps(msg).encode(), self.origin)
        assert sent.status == 204, (sent.status, sent.body)

    def receive(self) -> Response:
        return post(self.node, f"{self.transport}/receive", origin=self.origin)

    def recv(self) -> list[Any]:
        got = self.receive()
        assert got.status == 200, (got.status, got.body)
        return json.loads(got.body)  # type: ignore[no-any-return]

    def hello(self) -> list[Any]:
        self.send([HELLO, "app", {"roles": ROLES}])
        return self.recv()

    def subscribe(self, topic: str) -> list[Any]:
        self._request += 1
        self.send([SUBSCRIBE, self._request, {}, topic])
        return self.recv()

    def close(self) -> None:
        post(self.node, f"{self.transport}/close", origin=self.origin)


def backend(node: Node) -> RawWamp:
    client = RawWamp(node.ws_url, origin=node.origin)
    assert client.hello(authid="backend", secret=BACKEND_SECRET)[0] == WELCOME
    return client


def rejections(node: Node) -> dict[str, int]:
    with urllib.request.urlopen(f"{node.url}/health", timeout=10) as response:
        return json.load(response)["rejections"]  # type: ignore[no-any-return]


def test_subscribe_and_receive_events(node: Node) -> None:
    # crossbar: RouterSession.onOpen asserts the transport type, HELLO over long-poll fails
    client = LongPoll(node)
    welcome = client.hello()
    assert welcome[0] == WELCOME, welcome
    assert welcome[2]["authrole"] == "anonymous"
    topic = f"public.lp.{uuid.uuid4().hex[:8]}"
    assert client.subscribe(topic)[0] == SUBSCRIBED
    publisher = backend(node)
    try:
        assert publisher.publish(topic, [1], {"n": 1})[0] == PUBLISHED
        event = client.recv()
    finally:
        publisher.close()
    assert event[0] == EVENT
    assert event[4] == [1]
    assert event[5]["n"] == 1
    assert "broker_position" in event[5]
    client.close()
    assert "Traceback" not in node.log()


@pytest.mark.parametrize("origin", ["https://evil.example", "http://127.0.0.1.evil.example:80", "null"])
def test_foreign_origin_is_refused(node: Node, origin: str) -> None:
    # crossbar: any Origin is echoed with Access-Control-Allow-Credentials: true
    refused = post(node, "open", json.dumps({"protocols": ["wamp.2.json"]}).encode(), origin)
    assert refused.status == 403
    assert refused.headers.get("Access-Control-Allow-Origin") is None
    assert refused.headers.get("Access-Control-Allow-Credentials") is None
    assert "Traceback" not in node.log()


@pytest.mark.parametrize("origin", ["http://127.0.0.1:{port}", "http://localhost:{port}"])
def test_allowed_origin_gets_cors(node: Node, origin: str) -> None:
    # the same origins as the WebSocket path's allowed_origins
    origin = origin.format(port=node.port)
    client = LongPoll(node, origin=origin)
    assert client.hello()[0] == WELCOME
    opened = post(node, "open", json.dumps({"protocols": ["wamp.2.json"]}).encode(), origin)
    assert opened.status == 200
    assert opened.headers.get("Access-Control-Allow-Origin") == origin
    assert opened.headers.get("Access-Control-Allow-Credentials") == "true"
    client.close()
    transport = json.loads(opened.body)["transport"]
    # a foreign page that learnt the transport id still cannot read the answers
    foreign = post(node, f"{transport}/close", origin="https://evil.example")
    assert foreign.headers.get("Access-Control-Allow-Origin") is None


def test_request_without_origin_gets_no_cors(node: Node) -> None:
    client = LongPoll(node)
    assert client.hello()[0] == WELCOME
    opened = post(node, "open", json.dumps({"protocols": ["wamp.2.json"]}).encode())
    assert opened.status == 200
    assert opened.headers.get("Access-Control-Allow-Origin") is None
    client.close()


def test_second_hello_is_aborted(node: Node) -> None:
    # crossbar: a second HELLO is logged and ignored; the ABORT waits for the next poll
    client = LongPoll(node)
    assert client.hello()[0] == WELCOME
    client.send([HELLO, "app", {"roles": ROLES}])
    abort = client.recv()
    assert abort[0] == ABORT
    assert abort[2] == "wamp.error.protocol_violation"
    # delivered, the transport is gone
    assert client.receive().status == 404
    assert "Traceback" not in node.log()


def small_queue(config: dict[str, Any]) -> None:
    lp = config["workers"][0]["transports"][0]["paths"]["lp"]
    lp["options"]["queue_limit_messages"] = 3


def test_receive_queue_is_bounded(make_node: Callable[..., Node]) -> None:
    # crossbar: queue_limit_bytes and queue_limit_messages are stored, never enforced
    limited = make_node(small_queue)
    client = LongPoll(limited)
    assert client.hello()[0] == WELCOME
    topic = "public.lp.slow"
    assert client.subscribe(topic)[0] == SUBSCRIBED
    publisher = backend(limited)
    try:
        for n in range(5):  # nobody polls: the fourth event exceeds the limit
            assert publisher.publish(topic, [n])[0] == PUBLISHED
    finally:
        publisher.close()
    assert rejections(limited).get("SlowSubscriber") == 1
    # the session was let go: either the poll finds it ended (empty answer) or gone already
    first = client.receive()
    assert first.status == 404 or (first.status == 200 and first.body == b""), (first.status, first.body)
    assert client.receive().status == 404
    assert "Traceback" not in limited.log()


def test_user_token_over_long_poll(node: Node) -> None:
    """Long-poll sessions authenticate like WebSocket ones (here: a user token as ticket)."""
    token = mint(TOKEN_SECRET, "42", [{"uri": "user.42.", "match": "prefix"}])
    client = LongPoll(node)
    client.send([HELLO, "app", {"roles": ROLES, "authmethods": ["ticket"]}])
    challenge = client.recv()
    assert challenge[:2] == [CHALLENGE, "ticket"]
    client.send([AUTHENTICATE, token, {}])
    welcome = client.recv()
    assert welcome[0] == WELCOME
    assert (welcome[2]["authid"], welcome[2]["authrole"]) == ("42", "user")
    assert client.subscribe("user.42.inbox")[0] == SUBSCRIBED
    refused = client.subscribe("user.43.inbox")
    assert refused[0] == ERROR and refused[4] == "wamp.error.not_authorized"
    client.close()


def test_forged_token_over_long_poll_is_aborted(node: Node) -> None:
    client = LongPoll(node)
    client.send([HELLO, "app", {"roles": ROLES, "authmethods": ["ticket"]}])
    assert client.recv()[0] == CHALLENGE
    client.send([AUTHENTICATE, mint("not-the-secret", "42", [{"uri": "user.42.", "match": "prefix"}]), {}])
    abort = client.recv()
    assert abort[0] == ABORT and abort[2] == "wamp.error.not_authorized"
