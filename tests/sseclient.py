"""A raw-socket Server-Sent Events client, reading ``GET /sse`` the way curl does.

HTTP/1.0 on purpose (the node then writes the stream as it is, no chunked
encoding, and ends it by closing), parsing events by the spec's rules:
``field: value`` lines, a blank line dispatches, ``:`` lines are comments.
"""

from __future__ import annotations

import json
import socket
import ssl
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Event:
    """One dispatched event."""

    event: str
    data: Any
    id: str | None = None


@dataclass
class SseClient:
    """One ``GET`` on ``host:port``; :attr:`status`, :attr:`headers` once :meth:`open` returns."""

    port: int
    target: str
    headers: dict[str, str] = field(default_factory=dict)
    timeout: float = 30.0
    rcvbuf: int | None = None
    #: TLS to ``localhost`` (a proxy in front of the node) with this context
    ssl_context: ssl.SSLContext | None = None
    status: int = 0
    response_headers: dict[str, str] = field(default_factory=dict)
    comments: list[str] = field(default_factory=list)
    retry: int | None = None
    _buffer: bytes = b""
    _sock: socket.socket | None = None
    _closed: bool = False

    def open(self) -> SseClient:
        """Send the request, read the status line and headers."""
        sock = socket.socket()
        if self.rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
        sock.settimeout(self.timeout)
        sock.connect(("127.0.0.1", self.port))
        if self.ssl_context is not None:
            sock = self.ssl_context.wrap_socket(sock, server_hostname="localhost")
        lines = [f"GET {self.target} HTTP/1.0", "Host: 127.0.0.1"]
        lines += [f"{k}: {v}" for k, v in self.headers.items()]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self._sock = sock
        while b"\r\n\r\n" not in self._buffer:
            self._fill()
        head, self._buffer = self._buffer.split(b"\r\n\r\n", 1)
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        self.status = int(status_line.split()[1])
        for line in header_lines:
            name, _, value = line.partition(":")
            self.response_headers[name.strip().lower()] = value.strip()
        return self

    def _fill(self) -> None:
        assert self._sock is not None
        chunk = self._sock.recv(65536)
        if not chunk:
            self._closed = True
            raise EOFError("the node closed the stream")
        self._buffer += chunk

    def body(self) -> Any:
        """The whole (JSON) body of a refused request, read until the node closes."""
        try:
            while True:
                self._fill()
        except EOFError:
            pass
        return json.loads(self._buffer)

    def next(self) -> Event:
        """The next event (comments are kept in :attr:`comments`); ``EOFError`` once the node closed."""
        fields: dict[str, str] = {}
        while True:
            while b"\n" not in self._buffer:
                self._fill()
            raw, self._buffer = self._buffer.split(b"\n", 1)
            line = raw.decode()
            if line == "":
                if "data" in fields:
                    return Event(fields.get("event", "message"), json.loads(fields["data"]), fields.get("id"))
                continue
            if line.startswith(":"):
                self.comments.append(line[1:].strip())
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "retry":
                self.retry = int(value)
            else:
                fields[name] = value

    def events(self, count: int) -> list[Event]:
        """The next ``count`` events."""
        return [self.next() for _ in range(count)]

    def ended(self) -> bool:
        """Whether the node closed the stream (reads on until it does, or raises on timeout)."""
        try:
            while True:
                self._fill()
        except EOFError:
            return True

    def close(self) -> None:
        """Close the connection."""
        if self._sock is not None:
            self._sock.close()
