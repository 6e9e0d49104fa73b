"""WAMP over long-poll (``/lp``) against a real node: crossbar 26.10 cannot open
a long-poll session at all, reflects any ``Origin`` with credentials, and never
bounds a session's receive queue (:mod:`broker.router.crossbar.longpoll`, item 7).
"""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from broker.core.tokens import mint
from tests import lpclient
from tests.lpclient import Answer, LongPollSession
from tests.node import BACKEND_SECRET, TOKEN_SECRET, Node
from tests.rawwamp import (
    ABORT,
    AUTHENTICATE,
    CHALLENGE,
    ERROR,
    EVENT,
    HELLO,
    PUBLISH,
    PUBLISHED,
    SUBSCRIBE,
    SUBSCRIBED,
    WELCOME,
    RawWamp,
)
from tests.test_slow_subscriber import rss

pytestmark = pytest.mark.node

ROLES = lpclient.ROLES


def post(node: Node, path: str, body: bytes = b"", origin: str | None = None, timeout: float = 20) -> Answer:
    """One ``POST /lp/<path>`` to ``node``; long-poll receives block until data or the session ends."""
    return lpclient.post(f"http://127.0.0.1:{node.port}", f"/lp/{path}", body, timeout=timeout, origin=origin)


class LongPoll(LongPollSession):
    """One long-poll transport on ``node``'s port, speaking unbatched WAMP JSON: one message per receive."""

    def __init__(self, node: Node, origin: str | None = None) -> None:
        self.node = node
        super().__init__(f"http://127.0.0.1:{node.port}", origin=origin)


def backend(node: Node) -> RawWamp:
    client = RawWamp(node.ws_url, origin=node.origin)
    assert client.hello(authid="backend", secret=BACKEND_SECRET)[0] == WELCOME
    return client


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
    assert limited.rejections().get("SlowSubscriber") == 1
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


# -- message limit (item 8: broker.router.crossbar.longpoll_limits) ----------------------------

LIMIT = 65536  # paths.ws.options.max_message_size in the project's config


def too_large(size: int | None) -> bytes:
    """The exact 413 body for a body of ``size`` declared bytes (None: chunked, size unknown)."""
    if size is None:
        message = f"long-poll request body exceeds max_message_size ({LIMIT} bytes)"
    else:
        message = f"long-poll request body of {size} bytes exceeds max_message_size ({LIMIT} bytes)"
    return json.dumps({"error": "broker.error.too_large", "message": message}).encode()


def raw_response(sock: socket.socket) -> tuple[bytes, dict[str, str], bytes]:
    """Read one HTTP response (status line, headers, Content-Length body) from ``sock``."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a response: {data!r}"
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
    while len(body) < int(headers["content-length"]):
        chunk = sock.recv(65536)
        assert chunk, "connection closed inside the body"
        body += chunk
    return status.encode(), headers, body


def message_too_large(node: Node) -> int:
    return node.rejections().get("MessageTooLarge", 0)


class Canary:
    """A WebSocket subscriber beside the long-poll client, and a backend publishing to it."""

    def __init__(self, node: Node) -> None:
        self.topic = f"public.canary.{uuid.uuid4().hex[:8]}"
        self.subscriber = RawWamp(node.ws_url, origin=node.origin)
        assert self.subscriber.hello()[0] == WELCOME
        assert self.subscriber.subscribe(self.topic)[0] == SUBSCRIBED
        self.publisher = backend(node)
        self.sent = 0

    def check(self) -> None:
        """One more event reaches the subscriber."""
        self.sent += 1
        assert self.publisher.publish(self.topic, [self.sent])[0] == PUBLISHED
        event = self.subscriber.event()
        assert event[0] == EVENT and event[4] == [self.sent], event

    def close(self) -> None:
        self.subscriber.close()
        self.publisher.close()


def assert_session_aborted(client: LongPoll, size: int | None) -> None:
    """The session the oversized send was for got ABORT broker.error.too_large, then is gone."""
    message = json.loads(too_large(size))["message"]
    assert client.recv() == [ABORT, {"message": message}, "broker.error.too_large"]
    assert client.receive().status == 404


def test_send_declaring_more_than_the_limit_is_refused_before_its_body(node: Node) -> None:
    # crossbar: a 16 MiB send was buffered, answered 204 and routed
    canary = Canary(node)
    client = LongPoll(node, origin=node.origin)
    assert client.hello()[0] == WELCOME
    before = message_too_large(node)
    size = 16 * 1024 * 1024
    with socket.create_connection(("127.0.0.1", node.port), timeout=10) as sock:
        sock.sendall(
            f"POST /lp/{client.transport}/send HTTP/1.1\r\nHost: x\r\nOrigin: {node.origin}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {size}\r\n\r\n".encode()
        )
        # not one byte of the body sent: the answer comes on the declared length alone
        status, headers, body = raw_response(sock)
    assert status == b"HTTP/1.1 413 Request Entity Too Large"
    assert headers["content-type"] == "application/json"
    assert headers["connection"] == "close"
    assert headers["access-control-allow-origin"] == node.origin  # a browser may read why
    assert body == too_large(size)
    assert message_too_large(node) == before + 1
    assert_session_aborted(client, size)
    canary.check()
    canary.close()
    assert "Traceback" not in node.log()


def test_percent_encoded_path_gets_the_same_limit(node: Node) -> None:
    # Twisted routes /l%70/... to the long-poll resource as it routes /lp/...
    client = LongPoll(node)
    assert client.hello()[0] == WELCOME
    size = LIMIT + 1
    with socket.create_connection(("127.0.0.1", node.port), timeout=10) as sock:
        sock.sendall(
            f"POST /l%70/{client.transport}/%73end HTTP/1.1\r\nHost: x\r\n"
            f"Content-Length: {size}\r\n\r\n".encode()
        )
        status, _, body = raw_response(sock)
    assert (status, body) == (b"HTTP/1.1 413 Request Entity Too Large", too_large(size))
    assert_session_aborted(client, size)


def test_chunked_send_is_refused_once_it_passes_the_limit(node: Node) -> None:
    canary = Canary(node)
    client = LongPoll(node)
    assert client.hello()[0] == WELCOME
    before = message_too_large(node)
    chunk = b"[" + b" " * (16 * 1024 - 2) + b"]"
    with socket.create_connection(("127.0.0.1", node.port), timeout=10) as sock:
        sock.sendall(
            f"POST /lp/{client.transport}/send HTTP/1.1\r\nHost: x\r\n"
            "Transfer-Encoding: chunked\r\n\r\n".encode()
        )
        for _ in range(LIMIT // len(chunk) + 1):  # just past the limit, and no last chunk
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        status, headers, body = raw_response(sock)
    assert status == b"HTTP/1.1 413 Request Entity Too Large"
    assert "access-control-allow-origin" not in headers  # no Origin, no CORS
    assert body == too_large(None)
    assert message_too_large(node) == before + 1
    assert_session_aborted(client, None)
    canary.check()
    canary.close()


@pytest.mark.parametrize(
    "what",
    ["a 1 MiB PUBLISH", "an 8 MiB topic URI"],
)
def test_whole_oversized_send_gets_its_413(node: Node, what: str) -> None:
    # a client that writes the whole body before reading (http.client) still reads the answer;
    # crossbar: an anonymous session subscribed to four 8 MiB topic URIs
    canary = Canary(node)
    client = LongPoll(node)
    assert client.hello()[0] == WELCOME
    before = message_too_large(node)
    if what == "a 1 MiB PUBLISH":
        msg: list[Any] = [PUBLISH, 1, {}, "public.lp.big", ["x" * (1 << 20)]]
    else:
        msg = [SUBSCRIBE, 1, {}, "public." + "a" * (8 << 20)]
    body = json.dumps(msg).encode()
    sent = post(node, f"{client.transport}/send", body)
    assert (sent.status, sent.body) == (413, too_large(len(body)))
    assert message_too_large(node) == before + 1
    assert_session_aborted(client, len(body))
    canary.check()
    canary.close()


def test_huge_topic_uris_do_not_grow_the_router(node: Node) -> None:
    # crossbar: four 8 MiB topic URIs from one anonymous session grew the router by 31 MiB
    (worker,) = node.workers
    canary = Canary(node)
    client = LongPoll(node)
    assert client.hello()[0] == WELCOME
    before = rss(worker)
    statuses = []
    for n in range(4):
        body = json.dumps([SUBSCRIBE, n + 1, {}, f"public.{n}" + "a" * (8 << 20)]).encode()
        statuses.append(post(node, f"{client.transport}/send", body).status)
        client = LongPoll(node)  # a refused send ends its session: a new one for the next
        assert client.hello()[0] == WELCOME
    grown = rss(worker) - before
    assert grown < 8 << 20, f"router grew {grown / 2**20:.1f} MiB"
    assert statuses == [413] * 4
    canary.check()
    canary.close()


def publish_of(size: int) -> bytes:
    """An acknowledged PUBLISH of exactly ``size`` bytes of JSON."""
    frame = [PUBLISH, 7, {"acknowledge": True}, "public.lp.limit", [""]]
    padding = size - len(json.dumps(frame).encode())
    frame[4] = ["x" * padding]
    body = json.dumps(frame).encode()
    assert len(body) == size
    return body


def test_send_of_exactly_the_limit_is_routed(node: Node) -> None:
    client = LongPoll(node)
    assert client.hello()[0] == WELCOME
    before = message_too_large(node)
    sent = post(node, f"{client.transport}/send", publish_of(LIMIT))
    assert sent.status == 204, sent.body
    # routed: an anonymous session may not publish, so the router answers for this request
    refused = client.recv()
    assert refused[:3] == [ERROR, PUBLISH, 7] and refused[4] == "wamp.error.not_authorized", refused
    one_more = post(node, f"{client.transport}/send", publish_of(LIMIT + 1))
    assert (one_more.status, one_more.body) == (413, too_large(LIMIT + 1))
    assert message_too_large(node) == before + 1
    assert_session_aborted(client, LIMIT + 1)


def test_open_body_over_the_limit_is_refused(node: Node) -> None:
    body = json.dumps({"protocols": ["wamp.2.json"], "pad": "x" * LIMIT}).encode()
    refused = post(node, "open", body)
    assert (refused.status, refused.body) == (413, too_large(len(body)))
    assert LongPoll(node).hello()[0] == WELCOME  # beside it, a session opens


def test_json_nested_over_the_limit_is_a_protocol_violation(node: Node) -> None:
    # the same nesting rule as WebSocket (hardening item 4): ABORT, not a stalled router
    client = LongPoll(node)
    assert client.hello()[0] == WELCOME
    client.send_raw(b"[" * 101 + b"]" * 101)
    abort = client.recv()
    assert abort == [
        ABORT,
        {"message": "message nested deeper than 100 levels"},
        "wamp.error.protocol_violation",
    ]
    assert client.receive().status == 404


# -- POST /lp/open bodies (item 9: broker.router.crossbar.longpoll_open) -----------------------

SPEAKS = (
    "wamp.2.cbor, wamp.2.cbor.batched, wamp.2.json, wamp.2.json.batched, wamp.2.msgpack, "
    "wamp.2.msgpack.batched, wamp.2.ubjson, wamp.2.ubjson.batched"
)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{}", 'the long-poll open request has no "protocols" (expected {"protocols": ["wamp.2.json"]})'),
        (b'{"protocols": 5}', '"protocols" must be an array of strings like ["wamp.2.json"], not 5'),
        (b'{"protocols": [5]}', '"protocols" must be an array of strings like ["wamp.2.json"], not [5]'),
        (
            b"[]",
            'the long-poll open request must be a JSON object like {"protocols": ["wamp.2.json"]}, '
            "not an array",
        ),
        (b"\xff\xfe{}", "the long-poll open request is not UTF-8 (invalid byte at 0)"),
        (b"", "the long-poll open request is not JSON (Expecting value: line 1 column 1 (char 0))"),
        (b"[" * 101 + b"]" * 101, "the long-poll open request is nested deeper than 100 levels"),
        (
            b'{"protocols": ["wamp.2.xml"]}',
            f'no common protocol: offered ["wamp.2.xml"], this node speaks {SPEAKS}',
        ),
    ],
    ids=[
        "empty-object",
        "protocols-number",
        "protocols-of-numbers",
        "array",
        "invalid-utf8",
        "empty",
        "nested",
        "unknown-protocol",
    ],
)
def test_malformed_open_is_a_json_400(node: Node, body: bytes, message: str) -> None:
    # crossbar: 500 HTML; for {} a page showing the request's and the resource's reprs
    refused = post(node, "open", body)
    assert refused.status == 400
    assert refused.headers["Content-Type"] == "application/json"
    assert json.loads(refused.body) == {"error": "broker.error.bad_request", "message": message}
    assert LongPoll(node).hello()[0] == WELCOME  # a good open beside it works
    assert "Traceback" not in node.log()


def test_malformed_open_from_a_foreign_origin_is_refused_for_its_origin(node: Node) -> None:
    refused = post(node, "open", b"{}", origin="https://evil.example")
    assert (refused.status, refused.body) == (403, b"origin not allowed\n")
