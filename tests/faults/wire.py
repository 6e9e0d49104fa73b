"""Raw WebSocket bytes for the fault scenarios: a handshake and frames built by hand.

:class:`tests.rawwamp.RawWamp` speaks correct WebSocket; an attacker does not,
so these helpers write whatever frames a scenario wants (any opcode, any
fragment size, truncated headers) on a plain socket and read the server's
frames back, close code included.
"""

from __future__ import annotations

import base64
import os
import socket
import struct
import time
from dataclasses import dataclass

from tests.node import Node

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def frame(payload: bytes, opcode: int = OP_TEXT, fin: bool = True, mask: bool = True) -> bytes:
    """One client frame (masked, as RFC 6455 requires of clients unless ``mask`` is False)."""
    head = bytes([(0x80 if fin else 0) | opcode])
    bit = 0x80 if mask else 0
    n = len(payload)
    if n < 126:
        head += bytes([bit | n])
    elif n < 65536:
        head += bytes([bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def fragments(payload: bytes, size: int, opcode: int = OP_TEXT) -> bytes:
    """``payload`` as one message in fragments of ``size`` bytes."""
    parts = [payload[i : i + size] for i in range(0, len(payload), size)] or [b""]
    return b"".join(
        frame(part, opcode if i == 0 else OP_CONT, fin=i == len(parts) - 1) for i, part in enumerate(parts)
    )


@dataclass
class ServerFrame:
    opcode: int
    payload: bytes

    @property
    def close_code(self) -> int | None:
        if self.opcode == OP_CLOSE and len(self.payload) >= 2:
            return int(struct.unpack("!H", self.payload[:2])[0])
        return None


class RawSocket:
    """A WebSocket connection (subprotocol ``wamp.2.json``) on a plain socket."""

    def __init__(self, node: Node, timeout: float = 10, handshake: bool = True) -> None:
        self.sock = socket.create_connection(("127.0.0.1", node.port), timeout=timeout)
        self.buffer = b""
        self.node = node
        if handshake:
            self.handshake()

    def handshake(self) -> None:
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{self.node.port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Protocol: wamp.2.json\r\nOrigin: {self.node.origin}\r\n\r\n"
        )
        self.sock.sendall(request.encode())
        while b"\r\n\r\n" not in self.buffer:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError(f"closed during the handshake: {self.buffer!r}")
            self.buffer += chunk
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        if not head.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(f"handshake refused: {head[:200]!r}")

    def send(self, data: bytes) -> int:
        """Send ``data``; the bytes the server took before it closed (all of them if it did not)."""
        sent = 0
        try:
            while sent < len(data):
                sent += self.sock.send(data[sent : sent + 65536])
        except (BrokenPipeError, ConnectionResetError):
            pass
        return sent

    def _fill(self, deadline: float) -> bool:
        self.sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = self.sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            return False
        if not chunk:
            return False
        self.buffer += chunk
        return True

    def frames(self, timeout: float = 10) -> tuple[list[ServerFrame], bool]:
        """Server frames until it closes the TCP connection or ``timeout`` passes; whether it closed."""
        deadline = time.monotonic() + timeout
        out: list[ServerFrame] = []
        while True:
            parsed = self._parse()
            if parsed is not None:
                out.append(parsed)
                continue
            if time.monotonic() >= deadline:
                return out, False
            try:
                if not self._fill(deadline):
                    return out, True
            except TimeoutError:
                return out, False

    def _parse(self) -> ServerFrame | None:
        b = self.buffer
        if len(b) < 2:
            return None
        opcode, n, offset = b[0] & 0x0F, b[1] & 0x7F, 2
        if n == 126:
            if len(b) < 4:
                return None
            n, offset = struct.unpack("!H", b[2:4])[0], 4
        elif n == 127:
            if len(b) < 10:
                return None
            n, offset = struct.unpack("!Q", b[2:10])[0], 10
        if len(b) < offset + n:
            return None
        self.buffer = b[offset + n :]
        return ServerFrame(opcode, b[offset : offset + n])

    def close(self) -> None:
        self.sock.close()


def close_code(frames: list[ServerFrame]) -> int | None:
    """The code of the server's close frame, if it sent one."""
    return next((f.close_code for f in frames if f.opcode == OP_CLOSE), None)
