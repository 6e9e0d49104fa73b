"""WAMP clients on plain sockets that keep every frame the router sends, byte for byte.

Below any WebSocket library: a test compares the exact bytes two connections
received (header, length, payload), which a library would already have
decoded. :class:`WsFrames` speaks WebSocket (JSON, MessagePack or CBOR,
optionally offering permessage-deflate), :class:`RawSocketFrames` WAMP's
RawSocket transport.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import zlib
from typing import Any

import cbor2
import msgpack

from tests.node import Node

SERIALIZERS = ("json", "msgpack", "cbor")
#: RawSocket's serializer numbers (WAMP spec, §RawSocket).
RAWSOCKET_IDS = {"json": 1, "msgpack": 2, "cbor": 3}


def encode(serializer: str, msg: list[Any]) -> bytes:
    if serializer == "json":
        return json.dumps(msg).encode()
    if serializer == "msgpack":
        return msgpack.packb(msg, use_bin_type=True)  # type: ignore[no-any-return]
    return cbor2.dumps(msg)


def decode(serializer: str, payload: bytes) -> list[Any]:
    if serializer == "json":
        return json.loads(payload)  # type: ignore[no-any-return]
    if serializer == "msgpack":
        return msgpack.unpackb(payload, raw=False)  # type: ignore[no-any-return]
    return cbor2.loads(payload)  # type: ignore[no-any-return]


def masked(payload: bytes, opcode: int) -> bytes:
    """A client frame: FIN, ``opcode``, masked as RFC 6455 requires of clients."""
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        header = bytes([0x80 | opcode, 0x80 | n])
    elif n <= 0xFFFF:
        header = bytes([0x80 | opcode, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        header = bytes([0x80 | opcode, 0x80 | 127]) + n.to_bytes(8, "big")
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


class Frame:
    """One frame as it came off the socket: ``raw`` is every byte of it."""

    def __init__(self, raw: bytes, start: int) -> None:
        self.raw = raw
        self.fin = bool(raw[0] & 0x80)
        self.rsv1 = bool(raw[0] & 0x40)
        self.opcode = raw[0] & 0x0F
        self.payload = raw[start:]


class WsFrames:
    """A WAMP-over-WebSocket client on a socket; :meth:`frame` returns raw frames.

    It reads only when told to; ``rcvbuf`` (``SO_RCVBUF``, set before it
    connects, so the TCP window is negotiated small) makes its kernel side
    fill fast when it stops: a slow subscriber.
    """

    def __init__(
        self,
        node: Node,
        serializer: str = "json",
        path: str = "ws",
        deflate: bool = False,
        rcvbuf: int | None = None,
    ) -> None:
        self.serializer = serializer
        self.sock = socket.socket()
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(10)
        self.sock.connect(("127.0.0.1", node.port))
        key = base64.b64encode(os.urandom(16)).decode()
        extension = "Sec-WebSocket-Extensions: permessage-deflate\r\n" if deflate else ""
        self.sock.sendall(
            (
                f"GET /{path} HTTP/1.1\r\nHost: 127.0.0.1:{node.port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                f"Sec-WebSocket-Protocol: wamp.2.{serializer}\r\n{extension}Origin: {node.origin}\r\n\r\n"
            ).encode()
        )
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self._recv()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        if not head.startswith(b"HTTP/1.1 101"):
            raise AssertionError(head)
        self.handshake = head.decode("latin-1").lower()
        #: permessage-deflate keeps its window across messages (context takeover): one per connection
        self._inflater = zlib.decompressobj(-15)
        #: messages read while waiting for another (an EVENT before PUBLISHED), not yet consumed
        self.backlog: list[list[Any]] = []

    def inflate(self, frame: Frame) -> bytes:
        """The payload of a permessage-deflate frame (RSV1 set), decompressed; in arrival order."""
        return self._inflater.decompress(frame.payload + b"\x00\x00\xff\xff")

    def _recv(self) -> bytes:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError
        return chunk

    def send(self, msg: list[Any]) -> None:
        self.sock.sendall(masked(encode(self.serializer, msg), 1 if self.serializer == "json" else 2))

    def frame(self) -> Frame:
        """The next frame from the router, whole."""
        while True:
            if len(self.buffer) >= 2:
                length, start = self.buffer[1] & 0x7F, 2
                if length == 126 and len(self.buffer) >= 4:
                    length, start = int.from_bytes(self.buffer[2:4], "big"), 4
                elif length == 127 and len(self.buffer) >= 10:
                    length, start = int.from_bytes(self.buffer[2:10], "big"), 10
                if length < 126 or start > 2:
                    if len(self.buffer) >= start + length:
                        raw, self.buffer = self.buffer[: start + length], self.buffer[start + length :]
                        return Frame(raw, start)
            self.buffer += self._recv()

    def message(self) -> list[Any]:
        """The next WAMP message: the first of :attr:`backlog`, else :meth:`read`."""
        return self.backlog.pop(0) if self.backlog else self.read()

    def read(self) -> list[Any]:
        """The next WAMP message off the socket (skipping pings), decoded."""
        while True:
            frame = self.frame()
            if frame.opcode != 9:
                payload = self.inflate(frame) if frame.rsv1 else frame.payload
                return decode(self.serializer, payload)

    def join(self, **details: Any) -> int:
        self.send([1, "app", {"roles": {"subscriber": {}, "publisher": {}}, **details}])
        welcome = self.message()
        if welcome[0] != 2:
            raise AssertionError(welcome)
        return int(welcome[1])

    def subscribe(self, topic: str, match: str = "exact", request: int = 1) -> int:
        self.send([32, request, {} if match == "exact" else {"match": match}, topic])
        answer = self.message()
        if answer[:2] != [33, request]:
            raise AssertionError(answer)
        return int(answer[2])

    def close(self) -> None:
        self.sock.close()


class RawSocketFrames:
    """A WAMP-over-RawSocket client: the 4-byte handshake, then length-prefixed messages."""

    def __init__(self, port: int, serializer: str = "json") -> None:
        self.serializer = serializer
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.sendall(bytes([0x7F, 0xF0 | RAWSOCKET_IDS[serializer], 0, 0]))
        reply = self._exactly(4)
        if reply[0] != 0x7F or reply[1] & 0x0F != RAWSOCKET_IDS[serializer]:
            raise AssertionError(f"RawSocket handshake answered {reply!r}")

    def _exactly(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return data

    def send(self, msg: list[Any]) -> None:
        payload = encode(self.serializer, msg)
        self.sock.sendall(len(payload).to_bytes(4, "big") + payload)

    def message(self) -> list[Any]:
        while True:
            header = self._exactly(4)
            payload = self._exactly(int.from_bytes(header[1:], "big"))
            if header[0] & 0x07 == 0:  # a WAMP message (1, 2: ping, pong)
                return decode(self.serializer, payload)

    def join(self) -> int:
        self.send([1, "app", {"roles": {"subscriber": {}}}])
        welcome = self.message()
        if welcome[0] != 2:
            raise AssertionError(welcome)
        return int(welcome[1])

    def subscribe(self, topic: str) -> None:
        self.send([32, 1, {}, topic])
        answer = self.message()
        if answer[:2] != [33, 1]:
            raise AssertionError(answer)

    def close(self) -> None:
        self.sock.close()
