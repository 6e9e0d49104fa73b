"""A minimal blocking WAMP-over-WebSocket (JSON, MessagePack or CBOR) client for tests.

It speaks the wire protocol directly, so a test can send exactly the bytes it
wants (a second HELLO, an invalid topic, an oversize frame) and observe exactly
what the router answers, including the WebSocket close code.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import ssl
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

HELLO, WELCOME, ABORT, GOODBYE, ERROR = 1, 2, 3, 6, 8
PUBLISH, PUBLISHED, SUBSCRIBE, SUBSCRIBED, EVENT = 16, 17, 32, 33, 36
CALL, RESULT, CHALLENGE, AUTHENTICATE = 48, 50, 4, 5

ROLES = {"subscriber": {}, "publisher": {}, "caller": {}, "callee": {}}


class Closed(Exception):
    """The router closed the connection; ``code`` and ``reason`` say how."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"closed {code} {reason!r}")
        self.code = code
        self.reason = reason


class RawWamp:
    """One WebSocket connection speaking WAMP JSON (or ``serializer="msgpack"`` or ``"cbor"``),
    driven step by step."""

    def __init__(
        self,
        url: str,
        origin: str | None = None,
        max_size: int | None = 2**24,
        ssl_context: ssl.SSLContext | None = None,
        serializer: str = "json",
        max_queue: int | None = 16,
    ) -> None:
        """``max_queue``: websockets' high-water mark of unread messages, past which its reader
        stops reading the socket, and so answers no ping (None: never stops)."""
        self.url = url
        self.serializer = serializer
        self.ws: ClientConnection = connect(
            url,
            subprotocols=[f"wamp.2.{serializer}"],  # type: ignore[list-item]
            origin=origin,  # type: ignore[arg-type]
            max_size=max_size,
            max_queue=max_queue,
            ssl=ssl_context,
            open_timeout=10,
            close_timeout=5,
        )
        self._request = 0
        #: bytes of the last message received
        self.last_size = 0
        self.session_id: int | None = None

    # -- plumbing ---------------------------------------------------------
    def send(self, msg: Any) -> None:
        if isinstance(msg, str | bytes):
            self.ws.send(msg)
        elif self.serializer == "msgpack":
            import msgpack  # the node's venv has it; tests/sdk's venv has no msgpack

            self.ws.send(msgpack.packb(msg, use_bin_type=True))
        elif self.serializer == "cbor":
            import cbor2  # the node's venv has it, as msgpack

            self.ws.send(cbor2.dumps(msg))
        else:
            self.ws.send(json.dumps(msg))

    def recv(self, timeout: float = 10) -> list[Any]:
        try:
            data = self.ws.recv(timeout=timeout)
        except ConnectionClosed as exc:
            rcvd = exc.rcvd
            raise Closed(rcvd.code if rcvd else None, rcvd.reason if rcvd else "") from None
        self.last_size = len(data.encode() if isinstance(data, str) else data)
        if isinstance(data, bytes) and self.serializer == "cbor":
            import cbor2

            return cbor2.loads(data)  # type: ignore[no-any-return]
        if isinstance(data, bytes):
            import msgpack

            return msgpack.unpackb(data, raw=False)  # type: ignore[no-any-return]
        return json.loads(data)  # type: ignore[no-any-return]

    def wait_closed(self, timeout: float = 10) -> Closed:
        """Read until the router closes; return how it closed (messages before are kept)."""
        self.received_before_close: list[Any] = []
        while True:
            try:
                self.received_before_close.append(self.recv(timeout))
            except Closed as closed:
                return closed

    def ended_by_gap(self, timeout: float = 10) -> tuple[str, list[Any], Closed]:
        """Read until the node ends this session for a delivery gap, which must come: one GOODBYE
        ``broker.error.delivery_gap``. Its message, the other messages received before it, and
        how the connection closed."""
        closed = self.wait_closed(timeout)
        got = self.received_before_close
        goodbyes = [m for m in got if m[0] == GOODBYE]
        assert [g[2] for g in goodbyes] == ["broker.error.delivery_gap"], got
        return goodbyes[0][1]["message"], [m for m in got if m[0] != GOODBYE], closed

    def next_id(self) -> int:
        self._request += 1
        return self._request

    def close(self) -> None:
        self.ws.close()

    # -- WAMP -------------------------------------------------------------
    def hello(
        self,
        realm: str = "app",
        authid: str | None = None,
        secret: str | None = None,
        ticket: str | None = None,
    ) -> list[Any]:
        """Join ``realm``: anonymously, with WAMP-CRA (``authid``, ``secret``) or a ``ticket``."""
        details: dict[str, Any] = {"roles": ROLES}
        if ticket is not None:
            details["authmethods"] = ["ticket"]
            if authid:
                details["authid"] = authid
        elif authid:
            details.update(authid=authid, authmethods=["wampcra"])
        self.send([HELLO, realm, details])
        msg = self.recv()
        if msg[0] == CHALLENGE and ticket is not None:
            self.send([AUTHENTICATE, ticket, {}])
            msg = self.recv()
        elif msg[0] == CHALLENGE and secret is not None:
            challenge = msg[2]["challenge"].encode()
            sig = base64.b64encode(hmac.new(secret.encode(), challenge, hashlib.sha256).digest())
            self.send([AUTHENTICATE, sig.decode(), {}])
            msg = self.recv()
        if msg[0] == WELCOME:
            self.session_id = msg[1]
        return msg

    def subscribe(self, topic: Any, match: str = "exact") -> list[Any]:
        opts = {} if match == "exact" else {"match": match}
        self.send([SUBSCRIBE, self.next_id(), opts, topic])
        return self.recv()

    def publish(
        self,
        topic: Any,
        args: list[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        acknowledge: bool = True,
    ) -> list[Any] | None:
        self.send([PUBLISH, self.next_id(), {"acknowledge": acknowledge}, topic, args or [], kwargs or {}])
        return self.recv() if acknowledge else None

    def call(
        self, procedure: str, args: list[Any] | None = None, kwargs: dict[str, Any] | None = None
    ) -> list[Any]:
        self.send([CALL, self.next_id(), {}, procedure, args or [], *([kwargs] if kwargs else [])])
        return self.recv()

    def event(self, timeout: float = 10) -> list[Any]:
        msg = self.recv(timeout)
        if msg[0] != EVENT:
            raise AssertionError(f"expected EVENT, got {msg}")
        return msg
