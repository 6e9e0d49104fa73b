"""A stand-in for a node's publish API: a stdlib HTTP server in a thread.

It answers from a script of :class:`Reply` (then with the API's success answer)
and records every request, so a test asserts exactly what the SDK sent and
controls exactly what it gets back: a status, a framing, or a dropped answer.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

from broker.core import signing

KEY_ID = "dev"
SECRET = "fake-node-secret"
FIRST_ID = 1000


@dataclass(frozen=True)
class Request:
    """One request as received: headers keyed by lower-case name."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    def signature_verifies(self, secret: str = SECRET) -> bool:
        h = self.headers
        return signing.verify(
            secret,
            h["x-broker-key"],
            self.method,
            self.path,
            h["x-broker-timestamp"],
            h["x-broker-nonce"],
            self.body,
            h["x-broker-signature"],
        )


@dataclass(frozen=True)
class Reply:
    """What to answer: ``body`` None is the API's success answer for the request."""

    status: int = 200
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    framing: Literal["length", "chunked", "eof"] = "length"
    drop: bool = False  # close the connection without answering


def error(status: int, uri: str, message: str = "refused", **headers: str) -> Reply:
    """An error answer in the API's shape."""
    body = json.dumps({"error": uri, "message": message}).encode()
    return Reply(status, body, {k.replace("_", "-"): v for k, v in headers.items()})


class FakeNode:
    """The server; ``url`` is its base URL, ``requests`` what it received, in order."""

    def __init__(self, *script: Reply) -> None:
        self.script = deque(script)
        self.requests: list[Request] = []
        #: The success answer for each idempotency key seen.
        self.published: dict[str, bytes] = {}
        self._next_id = FIRST_ID
        self._lock = threading.Lock()
        self._server = _Server(self)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.01,), daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def receive(self, request: Request) -> tuple[Reply, bytes]:
        """Record ``request``; the reply to send and its body.

        Like the node, the success answer publishes once per idempotency key: a
        repeat (say, after a dropped answer) gets the first answer again.
        """
        with self._lock:
            self.requests.append(request)
            reply = self.script.popleft() if self.script else Reply()
            if reply.body is not None:
                return reply, reply.body
            payload = request.json
            key = payload["idempotency_key"]
            if key not in self.published:
                events = payload["events"] if "events" in payload else [payload]
                ids = range(self._next_id, self._next_id + len(events))
                self._next_id += len(events)
                published = [
                    {"topic": event["topic"], "id": id_} for event, id_ in zip(events, ids, strict=True)
                ]
                self.published[key] = json.dumps({"published": published}).encode()
            return reply, self.published[key]


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fake: FakeNode) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fake = fake


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        request = Request("POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        reply, payload = self.server.fake.receive(request)
        self.close_connection = True
        if reply.drop:
            return
        self.send_response(reply.status)
        self.send_header("Content-Type", "application/json")
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if reply.framing == "length":
            self.send_header("Content-Length", str(len(payload)))
        elif reply.framing == "chunked":
            self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Connection", "close")
        self.end_headers()
        try:
            if reply.framing == "chunked":
                step = max(7, len(payload) // 3)  # many small chunks, or a few that cross the SDK's limit
                for start in range(0, len(payload), step):
                    chunk = payload[start : start + step]
                    self.wfile.write(b"%x;ext=1\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.write(b"0\r\n\r\n")
            else:
                self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client stopped reading (an oversize answer)

    def log_message(self, format: str, *args: Any) -> None:
        pass
