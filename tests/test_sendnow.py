"""``write_now``: an HTTP answer on a plain TCP connection goes out in the call that writes it,
byte for byte what ``request.write`` would have sent on the reactor's next turn; anything else
(bytes already buffered, a full socket, a lost peer, TLS, another transport) takes the normal path.
``send_now`` does the same for bytes written to the transport itself (the Redis link's commands;
its fakes in ``tests/test_redislink_replies.py``).

Each test builds a real ``twisted.internet.tcp.Server`` over one end of a loopback TCP connection, on a
``MemoryReactor`` (which records whether the transport asked to be written later), and reads
the other end.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from twisted.internet import tcp
from twisted.internet.testing import MemoryReactor, StringTransport
from twisted.web.http import HTTPChannel, Request

from broker.router.crossbar import sendnow
from broker.router.crossbar.sendnow import send_now, write_now


def _tcp_pair() -> tuple[socket.socket, socket.socket]:
    """Both ends of a TCP connection on loopback (an ephemeral port)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        peer = socket.create_connection(listener.getsockname())
        ours, _ = listener.accept()
    ours.setblocking(False)
    return ours, peer


class Connection:
    """A tcp.Server transport with an HTTP channel on it, and the peer's socket."""

    def __init__(self) -> None:
        ours, self.peer = _tcp_pair()
        self.peer.settimeout(5)
        self.reactor = MemoryReactor()
        self.channel = HTTPChannel()
        self.transport = tcp.Server(ours, self.channel, ("127.0.0.1", 1), None, 1, self.reactor)
        self.channel.makeConnection(self.transport)
        self.read = b""

    def request(self, body_length: int) -> Request:
        request = Request(self.channel)
        request.clientproto = b"HTTP/1.1"
        request.method = b"POST"
        request.setResponseCode(200)
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"content-length", b"%d" % body_length)
        return request

    def waiting_to_write(self) -> bool:
        return self.transport in self.reactor.getWriters()

    def flush(self) -> None:
        """What the reactor does for a transport that asked to be written: doWrite until empty
        (the peer reading as it goes, so a large answer cannot fill the socket for good)."""
        self.read = b""
        while self.waiting_to_write():
            self.transport.doWrite()
            self.peer.setblocking(False)
            try:
                self.read += self.peer.recv(1 << 20)
            except BlockingIOError:
                pass
            finally:
                self.peer.setblocking(True)
                self.peer.settimeout(5)

    def received(self, length: int) -> bytes:
        """The next ``length`` bytes the peer reads (what :meth:`flush` read first)."""
        data, self.read = self.read, b""
        while len(data) < length:
            chunk = self.peer.recv(1 << 20)
            if not chunk:
                break
            data += chunk
        return data

    def answer(self) -> bytes:
        """One whole HTTP answer the peer reads: status line, headers, a content-length body."""
        data, self.read = self.read, b""
        while b"\r\n\r\n" not in data:
            data += self.peer.recv(1 << 20)
        head, _, _ = data.partition(b"\r\n\r\n")
        (length,) = [
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        ]
        return data + self.received(len(head) + 4 + length - len(data))

    def close(self) -> None:
        self.transport.socket.close()
        self.peer.close()


@pytest.fixture
def connections() -> Iterator[Any]:
    made: list[Connection] = []

    def make() -> Connection:
        made.append(Connection())
        return made[-1]

    yield make
    for connection in made:
        connection.close()


def normally_sent(connections: Any, body: bytes) -> bytes:
    """The bytes ``request.write`` sends for ``body`` (on the next turn, flushed here)."""
    connection = connections()
    connection.request(len(body)).write(body)
    assert connection.waiting_to_write()
    connection.flush()
    return connection.answer()


def test_an_answer_goes_out_at_once_byte_for_byte_what_request_write_sends(connections: Any) -> None:
    body = b'{"id":"a1","seq":[1],"cursor":"7-0"}'
    connection = connections()
    write_now(connection.request(len(body)), body)
    assert not connection.waiting_to_write()  # no epoll registration, nothing left for a later turn
    assert connection.transport._tempDataBuffer == []
    expected = normally_sent(connections, body)
    assert expected.endswith(b"\r\n\r\n" + body)
    assert connection.answer() == expected


def test_bytes_already_buffered_keep_their_place_before_the_answer(connections: Any) -> None:
    body = b'{"ok":true}'
    connection = connections()
    connection.transport.write(b"EARLIER")
    write_now(connection.request(len(body)), body)
    assert connection.waiting_to_write()
    connection.flush()
    expected = b"EARLIER" + normally_sent(connections, body)
    assert connection.received(len(expected)) == expected


def test_what_the_socket_does_not_take_at_once_is_buffered_and_sent_later(connections: Any) -> None:
    body = bytes(range(256)) * 4096  # 1 MiB: more than one send takes (SEND_LIMIT, 128 KiB)
    connection = connections()
    write_now(connection.request(len(body)), body)
    assert connection.waiting_to_write()
    connection.flush()
    assert connection.answer() == normally_sent(connections, body)


def test_a_lost_peer_leaves_the_answer_to_the_transport_which_loses_the_connection(connections: Any) -> None:
    body = b'{"ok":true}'
    connection = connections()
    connection.transport.socket.shutdown(socket.SHUT_WR)  # send fails with EPIPE
    write_now(connection.request(len(body)), body)  # no exception here
    assert connection.waiting_to_write()
    assert connection.transport.doWrite() is not None  # the reactor's next doWrite reports the loss


def test_tls_takes_request_write(connections: Any) -> None:
    body = b'{"ok":true}'
    connection = connections()
    connection.transport.TLS = True
    sent: list[bytes] = []
    connection.transport.protocol = type(
        "TLSLayer", (), {"write": sent.append, "writeSequence": sent.extend}
    )()
    write_now(connection.request(len(body)), body)
    assert b"".join(sent).endswith(b"\r\n\r\n" + body)  # through the TLS layer, as before


def test_another_transport_takes_request_write() -> None:
    body = b'{"ok":true}'
    channel = HTTPChannel()
    transport = StringTransport()
    channel.makeConnection(transport)
    request = Request(channel)
    request.clientproto = b"HTTP/1.1"
    request.setHeader(b"content-length", b"%d" % len(body))
    write_now(request, body)
    assert transport.value().startswith(b"HTTP/1.1 200 OK\r\n")
    assert transport.value().endswith(b"\r\n\r\n" + body)


def test_a_connection_class_writing_its_own_way_is_not_read() -> None:
    class Wrapped(tcp.Server):
        def write(self, data: bytes) -> None:
            super().write(data)

    assert sendnow._direct(tcp.Server)
    assert not sendnow._direct(Wrapped)
    assert not sendnow._direct(StringTransport)


def test_send_now_sends_at_once_behind_nothing_and_in_order_behind_buffered_bytes(connections: Any) -> None:
    connection = connections()
    send_now(connection.transport, b"FIRST")
    assert not connection.waiting_to_write()
    assert connection.received(5) == b"FIRST"
    connection.transport.write(b"EARLIER")
    send_now(connection.transport, b"LATER")
    assert connection.waiting_to_write()  # behind the buffered bytes, through the buffer
    connection.flush()
    assert connection.received(12) == b"EARLIERLATER"
