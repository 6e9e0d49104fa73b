"""Connection-level floods against a real node (items 13 and 14, :mod:`broker.router.crossbar.connections`).

Tiny WebSocket frames cost the router per frame, not per byte; a trickled HTTP
request used to keep its connection forever. Each flood here gets an exact
outcome (close code and reason, 408, eviction) after a bounded amount of work,
and a well-behaved subscriber beside it receives every event.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from broker.core.connlimits import (
    CONTROL_FRAME_BURST,
    MAX_FRAGMENTS,
    MAX_FRAMES_AFTER_CLOSE,
    WaitingRoom,
    request_timeout,
    too_many_control_frames,
    too_many_fragments,
)
from tests.node import BACKEND_SECRET, Node
from tests.rawwamp import EVENT, SUBSCRIBED, RawWamp
from tests.test_hardening import Bystander, read_until_eof, upgrade_request

with warnings.catch_warnings():
    # crossbar imports web3, which imports websockets.legacy: deprecated, not ours to fix
    warnings.filterwarnings("ignore", "websockets.legacy is deprecated", DeprecationWarning)
    from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
    from autobahn.websocket.protocol import WebSocketProtocol
    from twisted.internet.testing import StringTransport

    from broker.router.crossbar import connections
    from broker.router.state import NodeState

FRAGMENT_REASON = "WebSocket message in more than 64 fragments"
CONTROL_REASON = "more than 50 WebSocket control frames at once or 10 per second"
PING, PONG, CLOSE = 0x9, 0xA, 0x8


# -- raw frames --------------------------------------------------------------------


def frame(opcode: int, payload: bytes = b"", fin: bool = True) -> bytes:
    """One masked client frame (payloads under 126 bytes)."""
    mask = os.urandom(4)
    return (
        bytes([(0x80 if fin else 0) | opcode, 0x80 | len(payload)])
        + mask
        + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    )


def one_byte_fragments(size: int) -> bytes:
    """A text message of ``size`` bytes sent as ``size`` frames of one byte each (7 bytes on the wire)."""
    first = frame(0x1, b"x", fin=False)
    middle = frame(0x0, b"x", fin=False)  # the mask differs per frame in real clients; not here
    return first + middle * (size - 2) + frame(0x0, b"x", fin=True)


class RawSocket:
    """A WebSocket opened by hand, reading the router's (unmasked) frames one by one."""

    def __init__(self, node: Node) -> None:
        self.sock = socket.create_connection(("127.0.0.1", node.port))
        self.sock.settimeout(10)
        self.sock.sendall(upgrade_request(node.port, node.origin))
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self._recv()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101"), head

    def _recv(self) -> bytes:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("the router closed the connection")
        return chunk

    def _need(self, n: int) -> bytes:
        while len(self.buffer) < n:
            self.buffer += self._recv()
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def read_frame(self) -> tuple[int, bytes]:
        """The next frame's opcode and payload."""
        head = self._need(2)
        length = head[1] & 0x7F
        if length == 126:
            length = int.from_bytes(self._need(2), "big")
        elif length == 127:
            length = int.from_bytes(self._need(8), "big")
        return head[0] & 0x0F, self._need(length)

    def read_close(self) -> tuple[int, str, list[int]]:
        """Read up to the close frame: its code and reason, and the opcodes of the frames before it."""
        before = []
        while True:
            opcode, payload = self.read_frame()
            if opcode == CLOSE:
                return int.from_bytes(payload[:2], "big"), payload[2:].decode(), before
            before.append(opcode)

    def hello(self) -> None:
        self.sock.sendall(frame(0x1, json.dumps([1, "app", {"roles": {"subscriber": {}}}]).encode()))
        opcode, payload = self.read_frame()
        assert opcode == 0x1 and json.loads(payload)[0] == 2, payload  # WELCOME

    def close(self) -> None:
        self.sock.close()


class Canary:
    """A subscriber and a backend publishing to it at a steady rate, from a thread, until stopped."""

    def __init__(self, connect: Callable[..., RawWamp], interval: float = 0.05) -> None:
        self.topic = f"public.canary.{uuid.uuid4().hex[:8]}"
        self.subscriber = connect("anonymous")
        assert self.subscriber.subscribe(self.topic)[0] == SUBSCRIBED
        self.publisher = connect("backend")
        self.interval = interval
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._publish, daemon=True)

    def _publish(self) -> None:
        while not self._stop.is_set():
            self.sent += 1
            self.publisher.publish(self.topic, [self.sent], acknowledge=False)
            self._stop.wait(self.interval)

    def __enter__(self) -> Canary:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def received(self) -> list[int]:
        """Every event the subscriber got, once all that were sent have arrived (or 10 s passed)."""
        got: list[int] = []
        while len(got) < self.sent:
            event = self.subscriber.recv(timeout=10)
            assert event[0] == EVENT, event
            got.append(event[4][0])
        return got


# -- the rules ----------------------------------------------------------------------


def test_limits_and_reasons() -> None:
    assert too_many_fragments() == FRAGMENT_REASON
    assert too_many_control_frames() == CONTROL_REASON
    assert request_timeout(10) == "request not received within 10 s"
    assert request_timeout(2.5) == "request not received within 2.5 s"


def test_waiting_room_hands_out_the_longest_waiting_first() -> None:
    room: WaitingRoom[str] = WaitingRoom()
    for name in ("a", "b", "c"):
        room.wait(name)
    room.wait("a")  # a's next request: it waits again, from now
    room.leave("b")  # b's request arrived
    room.leave("nobody")
    assert len(room) == 2
    assert [room.oldest(), room.oldest(), room.oldest()] == ["c", "a", None]


# -- WebSocket frames -------------------------------------------------------------------


@pytest.fixture
def bystander(connect: Callable[..., RawWamp]) -> Iterator[Bystander]:
    watcher = Bystander(connect)
    watcher.check()
    yield watcher
    watcher.check()


def test_fragments_are_counted_exactly(node: Node, bystander: Bystander) -> None:
    # crossbar: no limit; every 1-byte fragment costs the router 7-15 us of Python
    peer = RawSocket(node)  # never sends HELLO
    peer.sock.sendall(frame(0x1, b"[", fin=False))
    for fragment in range(2, MAX_FRAGMENTS + 1):  # the router answers a ping once it parsed what came before
        peer.sock.sendall(
            frame(0x0, b" ", fin=False) + (frame(PING, b"%d" % fragment) if fragment % 16 == 0 else b"")
        )
        if fragment % 16 == 0:
            assert peer.read_frame() == (PONG, b"%d" % fragment)
    peer.sock.sendall(frame(0x0, b" ", fin=False) + frame(PING, b"65"))  # fragment 65, then a ping
    assert peer.read_close() == (1008, FRAGMENT_REASON, [])  # no pong: nothing after it was read
    peer.close()


def test_fragment_flood_is_cut_and_the_canary_gets_every_event(
    node: Node, connect: Callable[..., RawWamp]
) -> None:
    # crossbar: four such peers (no HELLO) delayed every client's events by 1.3-1.9 s
    before = node.rejections().get("FrameFlood", 0)
    flood = one_byte_fragments(60_000)  # 420 KB on the wire
    peers = [RawSocket(node) for _ in range(4)]
    joined = RawSocket(node)
    joined.hello()
    peers.append(joined)
    closes: list[Any] = [None] * len(peers)

    def send_flood(index: int) -> None:
        peer = peers[index]
        try:
            peer.sock.sendall(flood)
        except OSError:  # the router may drop it before it sent everything: it closed first
            pass
        closes[index] = peer.read_close()

    with Canary(connect) as canary:
        floods = [threading.Thread(target=send_flood, args=(i,)) for i in range(len(peers))]
        for thread in floods:
            thread.start()
        for thread in floods:
            thread.join(timeout=60)
    assert closes == [(1008, FRAGMENT_REASON, [])] * len(peers)
    assert canary.received() == list(range(1, canary.sent + 1))
    assert node.rejections()["FrameFlood"] - before == len(peers)
    for peer in peers:
        peer.close()


def test_normally_fragmented_message_is_delivered(connect: Callable[..., RawWamp]) -> None:
    subscriber = connect("anonymous")
    assert subscriber.subscribe("public.fragmented")[0] == SUBSCRIBED
    publisher = connect("backend")
    body = json.dumps([16, 1, {"acknowledge": True}, "public.fragmented", ["y" * 4000]])
    publisher.ws.send([body[i : i + 1100] for i in range(0, len(body), 1100)])  # 4 fragments
    assert publisher.recv()[0] == 17  # PUBLISHED
    assert subscriber.event()[4] == ["y" * 4000]


def test_message_in_exactly_the_limit_of_fragments_is_accepted(node: Node) -> None:
    peer = RawSocket(node)
    hello = json.dumps([1, "app", {"roles": {"subscriber": {}}}]).encode()
    cuts = [len(hello) * i // MAX_FRAGMENTS for i in range(MAX_FRAGMENTS + 1)]
    peer.sock.sendall(
        b"".join(
            frame(0x1 if i == 0 else 0x0, hello[cuts[i] : cuts[i + 1]], fin=i == MAX_FRAGMENTS - 1)
            for i in range(MAX_FRAGMENTS)
        )
    )
    opcode, payload = peer.read_frame()
    assert opcode == 0x1 and json.loads(payload)[0] == 2  # WELCOME
    peer.close()


def test_ping_flood_is_cut(node: Node, bystander: Bystander) -> None:
    # crossbar: answers every ping, however many
    peer = RawSocket(node)
    peer.sock.sendall(b"".join(frame(PING, b"%d" % i) for i in range(CONTROL_FRAME_BURST + 10)))
    code, reason, before = peer.read_close()
    assert (code, reason) == (1008, CONTROL_REASON)
    assert before == [PONG] * CONTROL_FRAME_BURST
    peer.close()


class _Peer(WebSocketServerProtocol):
    """Autobahn's server protocol with the frame hooks, counting the frames it parses."""

    parsed = 0

    def onFrameBegin(self) -> None:
        self.parsed += 1
        WebSocketServerProtocol.onFrameBegin(self)


_Peer.onFrameBegin = connections._make_frame_begin(NodeState(), _Peer.onFrameBegin, time.monotonic)  # type: ignore[method-assign]
_Peer._dataReceived = connections._make_data_received(_Peer._dataReceived)  # type: ignore[method-assign]
_Peer._broker_fragments = _Peer._broker_after_close = 0  # type: ignore[attr-defined]
_Peer._broker_control = None  # type: ignore[attr-defined]
_Peer._broker_deaf = False  # type: ignore[attr-defined]


def test_frames_after_the_routers_close_are_not_parsed() -> None:
    # autobahn: after its close frame the router parses whatever the peer sends until
    # close_handshake_timeout, so one invalid message followed by tiny frames costs it as much
    factory = WebSocketServerFactory()
    factory.setProtocolOptions(openHandshakeTimeout=0, closeHandshakeTimeout=0)  # no timers: no reactor
    factory.protocol = _Peer
    peer = factory.buildProtocol(None)
    peer.makeConnection(StringTransport())
    peer.state = WebSocketProtocol.STATE_OPEN
    peer.websocket_version = 13
    peer.inside_message, peer.current_frame, peer.data = False, None, b""
    peer.sendCloseFrame(code=1002, isReply=False)  # as the router does for a protocol violation
    data = frame(0x1, b"x") * (MAX_FRAMES_AFTER_CLOSE + 500)
    for i in range(0, len(data), 700):
        peer._dataReceived(data[i : i + 700])
    assert peer.parsed == MAX_FRAMES_AFTER_CLOSE + 1
    assert peer.data == b""
    assert peer.transport.producerState == "paused"  # its socket is no longer read


# -- HTTP requests ----------------------------------------------------------------------


def trickle(sock: socket.socket, lines: list[bytes], every: float, stop: threading.Event) -> None:
    """Send ``lines`` one by one, ``every`` seconds apart, until the router closes or ``stop``."""
    for line in lines:
        if stop.wait(every):
            return
        try:
            sock.sendall(line)
        except OSError:
            return


HEADERS = [b"X-Trickle-%d: %d\r\n" % (i, i) for i in range(200)]


@pytest.mark.parametrize(
    "first", [b"", b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"], ids=["new", "kept-alive"]
)
def test_trickled_request_is_closed_at_its_deadline(
    make_node: Callable[..., Node], connect: Callable[..., RawWamp], first: bytes
) -> None:
    # crossbar: client_timeout restarts with every byte, so this request stays open forever
    def short(config: dict[str, Any]) -> None:
        config["workers"][0]["transports"][0]["options"]["client_timeout"] = 2

    small = make_node(short)
    subscriber = RawWamp(small.ws_url, origin=small.origin)
    subscriber.hello()
    assert subscriber.subscribe("public.slow")[0] == SUBSCRIBED
    with socket.create_connection(("127.0.0.1", small.port)) as sock:
        started = time.monotonic()
        sock.sendall(first + b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        stop = threading.Event()
        trickler = threading.Thread(target=trickle, args=(sock, HEADERS, 0.5, stop))
        trickler.start()
        try:
            seen, _ = read_until_eof(sock, limit=20)
        finally:
            stop.set()
            trickler.join()
        took = time.monotonic() - started
    answers = seen.split(b"HTTP/1.1 ")[1:]
    assert len(answers) == (2 if first else 1)
    assert answers[-1].startswith(b"408 Request Timeout\r\n")
    assert answers[-1].endswith(b"\r\n\r\nrequest not received within 2 s\n")
    assert 1.5 < took < 15  # the deadline, not the trickle, ended it
    publisher = RawWamp(small.ws_url, origin=small.origin)
    publisher.hello(authid="backend", secret=BACKEND_SECRET)
    assert publisher.publish("public.slow", [1])[0] == 17
    assert subscriber.event()[4] == [1]
    assert small.rejections()["RequestTimeout"] == 1


def is_open(sock: socket.socket) -> bool:
    """Whether the router still holds ``sock`` open (it has sent nothing on it)."""
    sock.setblocking(False)
    try:
        return sock.recv(1) != b""
    except BlockingIOError:
        return True
    except ConnectionResetError:
        return False
    finally:
        sock.setblocking(True)


def half_sent_request(node: Node) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", node.port))
    sock.sendall(b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and never the rest
    return sock


def websocket_without_hello(node: Node) -> socket.socket:
    return RawSocket(node).sock  # the 101 read, and never a HELLO


@pytest.mark.parametrize("waits", [half_sent_request, websocket_without_hello])
def test_waiting_connections_make_room_for_real_clients(
    make_node: Callable[..., Node], waits: Callable[[Node], socket.socket]
) -> None:
    # crossbar: with max_connections 20, 19 half-sent requests (or WebSockets that never send
    # HELLO) and one subscriber refuse every new client until they give up
    def capped(config: dict[str, Any]) -> None:
        transport = config["workers"][0]["transports"][0]
        transport["max_connections"] = 20
        transport["options"]["client_timeout"] = 60
        config["workers"][0]["components"][0]["extra"]["hello_timeout"] = 60

    small = make_node(capped)
    canary = RawWamp(small.ws_url, origin=small.origin)
    canary.hello()
    assert canary.subscribe("public.room")[0] == SUBSCRIBED
    waiting = [waits(small) for _ in range(19)]
    publisher = RawWamp(small.ws_url, origin=small.origin)  # the 21st connection
    assert publisher.hello(authid="backend", secret=BACKEND_SECRET)[0] == 2
    clients = []
    for _ in range(2):
        client = RawWamp(small.ws_url, origin=small.origin)
        assert client.hello()[0] == 2
        assert client.subscribe("public.room")[0] == SUBSCRIBED
        clients.append(client)
    assert publisher.publish("public.room", [1])[0] == 17
    for subscriber in [canary, *clients]:
        assert subscriber.event()[4] == [1]
    # the three that had waited longest made room, oldest first; the others still wait
    assert [is_open(sock) for sock in waiting] == [False] * 3 + [True] * 16
    assert "closed 1 connection(s) still waiting for their request or WAMP session" in small.log()
    for sock in waiting:
        sock.close()
