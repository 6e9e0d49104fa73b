"""Each unsafe crossbar 26.10 default, sent to a real node: the offender gets a
clear outcome, and a well-behaved client beside it keeps receiving.

Every test here fails against crossbar's shipped defaults (the comment on each
says what crossbar does there) and passes against Broker's config and
:mod:`broker.router.crossbar`.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus, WebSocketException

from tests.node import BACKEND_SECRET, PROJECT_CONFIG, Node
from tests.rawwamp import ABORT, ERROR, SUBSCRIBED, RawWamp

pytestmark = pytest.mark.node


class Bystander:
    """An anonymous subscriber and a backend publisher that must stay unaffected."""

    def __init__(self, connect: Callable[..., RawWamp]) -> None:
        self.topic = f"public.bystander.{uuid.uuid4().hex[:8]}"
        self.subscriber = connect("anonymous")
        assert self.subscriber.subscribe(self.topic)[0] == SUBSCRIBED
        self.publisher = connect("backend")
        self.sent = 0

    def check(self) -> None:
        """Publish one event; the subscriber must get it, on its original session."""
        self.sent += 1
        assert self.publisher.publish(self.topic, [self.sent])[0] == 17
        event = self.subscriber.event(timeout=10)
        assert event[4] == [self.sent]


@pytest.fixture
def bystander(connect: Callable[..., RawWamp]) -> Iterator[Bystander]:
    watcher = Bystander(connect)
    watcher.check()
    yield watcher
    watcher.check()


def upgrade_request(port: int, origin: str) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        f"Sec-WebSocket-Protocol: wamp.2.json\r\nOrigin: {origin}\r\n\r\n"
    ).encode()


def masked_text_frame(payload: bytes) -> bytes:
    mask = os.urandom(4)
    header = bytes([0x81])
    length = len(payload)
    header += bytes([0x80 | length]) if length < 126 else bytes([0x80 | 126]) + length.to_bytes(2, "big")
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def read_until_eof(sock: socket.socket, limit: float) -> tuple[bytes, float]:
    """Read (without answering anything) until the router closes; bytes seen and seconds taken."""
    started = time.monotonic()
    sock.settimeout(limit)
    seen = b""
    try:
        while chunk := sock.recv(65536):
            seen += chunk
    except ConnectionResetError:  # the router aborted instead of closing: closed all the same
        pass
    return seen, time.monotonic() - started


# -- timeouts -----------------------------------------------------------------


def test_idle_tcp_connection_is_closed(node: Node, bystander: Bystander) -> None:
    # crossbar: the web transport's client_timeout is unset, the socket stays open forever
    with socket.create_connection(("127.0.0.1", node.port)) as sock:
        seen, _ = read_until_eof(sock, limit=30)
    assert seen == b""


def test_half_http_upgrade_is_closed(node: Node, bystander: Bystander) -> None:
    # crossbar: half a request keeps the connection open forever
    with socket.create_connection(("127.0.0.1", node.port)) as sock:
        sock.sendall(b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n")
        seen, _ = read_until_eof(sock, limit=30)
    assert seen.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert seen.endswith(b"\r\n\r\nrequest not received within 10 s\n")


def test_websocket_without_hello_is_aborted(
    node: Node, connect: Callable[..., RawWamp], bystander: Bystander
) -> None:
    # crossbar: no deadline for HELLO, the WebSocket stays open forever
    silent = connect("none")
    closed = silent.wait_closed(timeout=30)
    assert closed.code == 1008
    assert closed.reason == "no WAMP session established within 10 s of connecting"
    assert silent.received_before_close == [[ABORT, {"message": closed.reason}, "broker.error.hello_timeout"]]


def test_dead_peer_is_dropped_by_auto_ping(node: Node, bystander: Bystander) -> None:
    # crossbar: without auto_ping a peer that stopped answering stays connected
    with socket.create_connection(("127.0.0.1", node.port)) as sock:
        sock.sendall(upgrade_request(node.port, node.origin))
        sock.settimeout(10)
        response = b""
        while b"\r\n\r\n" not in response:
            response += sock.recv(4096)
        assert response.startswith(b"HTTP/1.1 101")
        sock.sendall(masked_text_frame(json.dumps([1, "app", {"roles": {"subscriber": {}}}]).encode()))
        seen, _ = read_until_eof(sock, limit=40)
    assert b'"authrole":"anonymous"' in seen.replace(b" ", b"")  # it joined: WELCOME arrived
    assert b"\x89" in seen  # the router pinged (opcode 0x9) and, unanswered, closed


# -- origins and the status page ------------------------------------------------


def test_foreign_origin_is_refused(node: Node, bystander: Bystander) -> None:
    # crossbar: allowed_origins defaults to "*" (cross-site WebSocket hijacking)
    with pytest.raises(InvalidStatus) as info:
        RawWamp(node.ws_url, origin="https://evil.example")
    assert info.value.response.status_code == 400
    assert info.value.response.reason_phrase == (
        "WebSocket connection denied: origin 'https://evil.example' not allowed"
    )


@pytest.mark.parametrize("origin", ["http://127.0.0.1:{port}", "http://localhost:{port}"])
def test_local_origins_are_allowed(node: Node, origin: str) -> None:
    client = RawWamp(node.ws_url, origin=origin.format(port=node.port))
    assert client.hello()[0] == 2
    client.close()


def test_non_browser_client_without_origin_is_allowed(node: Node) -> None:
    client = RawWamp(node.ws_url, origin=None)
    assert client.hello()[0] == 2
    client.close()


@pytest.mark.parametrize(
    "query", ["redirect=https://evil.example", "redirect=https://evil.example&after=abc"]
)
def test_status_page_does_not_redirect(node: Node, query: str) -> None:
    # crossbar: 303 to any ?redirect= URL; after=abc logs a traceback
    request = urllib.request.Request(f"{node.url}/ws?{query}")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=10)
    assert info.value.code == 426
    assert info.value.headers.get("Location") is None


def test_longpoll_get_is_405_not_a_traceback(node: Node) -> None:
    # crossbar: HTTP 500 and a traceback (bytes.format in its notice page)
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(f"{node.url}/lp", timeout=10)
    assert info.value.code == 405
    assert info.value.headers["Allow"] == "POST"


# -- size and nesting -------------------------------------------------------------


def test_oversize_message_closes_offender_with_1009(
    connect: Callable[..., RawWamp], bystander: Bystander
) -> None:
    # crossbar: max_message_size is unlimited
    offender = connect("backend")
    offender.send(json.dumps([16, 1, {"acknowledge": True}, "public.big", ["x" * 70_000]]))
    closed = offender.wait_closed()
    assert closed.code == 1009
    assert "exceeds payload limit of 65536 octets" in closed.reason


def test_fragmented_oversize_message_closes_with_1009(
    connect: Callable[..., RawWamp], bystander: Bystander
) -> None:
    offender = connect("backend")
    body = json.dumps([16, 1, {"acknowledge": True}, "public.big", ["x" * 70_000]])
    offender.ws.send([body[i : i + 30_000] for i in range(0, len(body), 30_000)])
    assert offender.wait_closed().code == 1009


@pytest.mark.parametrize(("depth", "size"), [(60_000, "120 KB"), (30_000, "60 KB")])
def test_deeply_nested_json_before_hello(
    node: Node, connect: Callable[..., RawWamp], bystander: Bystander, depth: int, size: str
) -> None:
    # crossbar: 60,000 levels stalled the router for 23 s and logged 18 MB
    log_before = len(node.log())
    offender = connect("none")
    offender.send("[" * depth + "]" * depth)
    closed = offender.wait_closed()
    if size == "120 KB":
        assert closed.code == 1009  # refused by size before it is even parsed
    else:
        assert closed.code == 1002
        assert closed.reason == "message nested deeper than 100 levels"
        assert offender.received_before_close == [
            [ABORT, {"message": closed.reason}, "wamp.error.protocol_violation"]
        ]
    assert len(node.log()) - log_before < 2_000


def test_nesting_within_limit_is_delivered(connect: Callable[..., RawWamp], bystander: Bystander) -> None:
    subscriber = connect("anonymous")
    assert subscriber.subscribe("public.nested")[0] == SUBSCRIBED
    payload: Any = json.loads("[" * 95 + "]" * 95)
    assert connect("backend").publish("public.nested", [payload])[0] == 17
    assert subscriber.event()[4] == [payload]


# -- protocol violations ------------------------------------------------------------


def test_second_hello_is_aborted(connect: Callable[..., RawWamp], bystander: Bystander) -> None:
    # crossbar: logged and ignored
    client = connect("anonymous")
    client.send([1, "app", {"roles": {"subscriber": {}}}])
    closed = client.wait_closed()
    assert closed.code == 1002
    assert client.received_before_close == [
        [ABORT, {"message": "HELLO is not allowed after WELCOME"}, "wamp.error.protocol_violation"]
    ]


def test_publish_before_hello_is_aborted(connect: Callable[..., RawWamp], bystander: Bystander) -> None:
    # crossbar: silently dropped, connection stays open
    client = connect("none")
    client.send([16, 1, {}, "public.x", []])
    closed = client.wait_closed()
    assert closed.code == 1002
    assert client.received_before_close == [
        [ABORT, {"message": "PUBLISH is not allowed before HELLO"}, "wamp.error.protocol_violation"]
    ]


def test_unknown_message_type_is_aborted(connect: Callable[..., RawWamp], bystander: Bystander) -> None:
    # crossbar: closed with 1002 but no ABORT
    client = connect("anonymous")
    client.send([99, 1])
    closed = client.wait_closed()
    assert closed.code == 1002
    assert client.received_before_close == [
        [ABORT, {"message": "unknown WAMP message type 99"}, "wamp.error.protocol_violation"]
    ]


def test_publish_with_a_lone_surrogate_is_aborted_and_nothing_is_stored(
    connect: Callable[..., RawWamp], bystander: Bystander
) -> None:
    # crossbar: acknowledged and stored, then the EVENT fails to encode for every subscriber
    topic = f"public.surrogate.{uuid.uuid4().hex[:8]}"
    subscriber = connect("anonymous")
    assert subscriber.subscribe(topic)[0] == SUBSCRIBED
    client = connect("backend")
    client.send(f'[16, 1, {{"acknowledge": true}}, "{topic}", ["\\ud800"]]')
    closed = client.wait_closed()
    assert closed.code == 1002
    reason = "a JSON string holds a lone surrogate (\\ud800), not Unicode text"
    assert client.received_before_close == [[ABORT, {"message": reason}, "wamp.error.protocol_violation"]]
    # a pair is one character, delivered; the history holds it first: nothing was stored before it
    assert connect("backend").publish(topic, ["\U0001f600"])[0] == 17
    event = subscriber.event()
    assert event[4] == ["\U0001f600"] and event[5]["broker_position"]["seq"] == 1


def test_publish_of_an_integer_beyond_64_bits_is_refused_and_nothing_is_stored(
    node: Node, connect: Callable[..., RawWamp], bystander: Bystander
) -> None:
    # crossbar: acknowledged, then the MessagePack subscriber's EVENT fails to encode, which ends
    # the dispatch loop: the JSON subscriber after it gets nothing either
    topic = f"public.bigint.{uuid.uuid4().hex[:8]}"
    binary = RawWamp(node.ws_url, origin=node.origin, serializer="msgpack")
    try:
        assert binary.hello()[0] == 2
        text = connect("anonymous")
        for subscriber in (binary, text):
            assert subscriber.subscribe(topic)[0] == SUBSCRIBED
        publisher = connect("backend")
        refused = publisher.publish(topic, [2**70])
        message = "an integer of 71 bits: MessagePack subscribers can be sent at most 64"
        assert (
            refused is not None
            and refused[0] == ERROR
            and refused[4:] == ["broker.error.bad_request", [message]]
        )
        assert (
            publisher.publish(topic, [2**64 - 1])[0] == 17
        )  # the largest a subscriber can get; same session
        for subscriber in (binary, text):
            event = subscriber.event()
            assert (
                event[4] == [2**64 - 1] and event[5]["broker_position"]["seq"] == 1
            )  # nothing stored before
    finally:
        binary.close()


def test_a_msgpack_publish_no_json_subscriber_could_get_is_refused_and_nothing_is_stored(
    node: Node, connect: Callable[..., RawWamp]
) -> None:
    # crossbar: acknowledged; a MessagePack map with a bytes key has no JSON form, and the JSON
    # subscriber's error ended the dispatch loop, so no subscriber after it got the event either
    topic = f"public.byteskey.{uuid.uuid4().hex[:8]}"
    text = connect("anonymous")
    assert text.subscribe(topic)[0] == SUBSCRIBED
    binary = RawWamp(node.ws_url, origin=node.origin, serializer="msgpack")
    publisher = RawWamp(node.ws_url, origin=node.origin, serializer="msgpack")
    try:
        assert binary.hello()[0] == 2 and binary.subscribe(topic)[0] == SUBSCRIBED
        assert publisher.hello(authid="backend", secret=BACKEND_SECRET)[0] == 2
        before = node.rejections().get("unsendable_payload", 0)
        refused = publisher.publish(topic, [{b"key": 1}])
        message = "a map key of type bytes: JSON subscribers cannot be sent it"
        assert refused is not None and refused[0] == ERROR
        assert refused[4:] == ["broker.error.bad_request", [message]]
        assert node.rejections()["unsendable_payload"] == before + 1
        assert publisher.publish(topic, [{"key": b"\x01"}])[0] == 17  # same session
        for subscriber in (binary, text):
            event = subscriber.event()
            assert event[5]["broker_position"]["seq"] == 1  # nothing was stored before it
    finally:
        binary.close()
        publisher.close()


@pytest.mark.parametrize("topic", ["a b", "a#b", 12345])
def test_invalid_subscribe_topic_keeps_session(
    connect: Callable[..., RawWamp], bystander: Bystander, topic: object
) -> None:
    # crossbar: closes the connection with 1011 "WAMP Internal Error"
    client = connect("anonymous")
    reply = client.subscribe(topic)
    assert reply[:5] == [ERROR, 32, 1, {}, "wamp.error.invalid_uri"]
    assert repr(topic) in reply[5][0]
    assert client.subscribe("public.still.here")[0] == SUBSCRIBED


@pytest.mark.parametrize("topic", ["a b", "a#b", 12345])
def test_invalid_publish_topic_keeps_session(
    connect: Callable[..., RawWamp], bystander: Bystander, topic: object
) -> None:
    client = connect("backend")
    reply = client.publish(topic, [1])
    assert reply is not None
    assert reply[:5] == [ERROR, 16, 1, {}, "wamp.error.invalid_uri"]
    assert client.publish("public.still.here", [1]) is not None


# -- connection floods -------------------------------------------------------------


def test_project_config_bounds_connections() -> None:
    config = json.loads(PROJECT_CONFIG.read_text())
    web = config["workers"][0]["transports"][0]
    assert web["max_connections"] > 0
    ws = web["paths"]["ws"]["options"]
    assert ws["auto_ping_interval"] > 0 and ws["auto_ping_timeout"] > 0


def test_connections_beyond_max_are_refused(make_node: Callable[..., Node]) -> None:
    # crossbar's default is 50,000 per port; Broker's config sets its own bound. With
    # a bound of 3, the 4th connection is closed right after accept.
    def limit(config: dict[str, Any]) -> None:
        config["workers"][0]["transports"][0]["max_connections"] = 3

    def connect_once_a_slot_is_free() -> RawWamp:
        # a slot is freed once the router has seen the close of whatever held it (the
        # harness's own /health checks, or a client below): poll for it
        deadline = time.monotonic() + 10
        while True:
            try:
                return RawWamp(small.ws_url, origin=small.origin)
            except (OSError, WebSocketException):
                if time.monotonic() > deadline:
                    raise

    small = make_node(limit)
    held = [connect_once_a_slot_is_free() for _ in range(3)]
    for client in held:
        assert client.hello()[0] == 2
    with socket.create_connection(("127.0.0.1", small.port)) as sock:
        seen, _ = read_until_eof(sock, limit=10)
    assert seen == b""
    held[0].close()
    again = connect_once_a_slot_is_free()
    assert again.hello()[0] == 2
    assert "refused 1 connection(s): max_connections=3 reached" in small.log()


def test_no_tracebacks_in_node_log(node: Node) -> None:
    """Runs last in this module: nothing above made the router log a traceback."""
    assert "Traceback" not in node.log()
