"""A lean WAMP client for the load generator: raw ``websockets``, JSON or msgpack, no autobahn.

Why not autobahn: one autobahn-python client process saturates at 10-13k
events/s, below what a crossbar router delivers, so the generator would be
measured instead of the router. This client does the handshake (anonymous,
WAMP-CRA for the publisher, ticket for token-authenticated subscribers),
subscribes, and afterwards only looks at the first bytes of each frame to
count an EVENT; it decodes a frame fully only to read a latency timestamp.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass, replace
from typing import Any

import msgpack

from bench.systems import TOPIC, Client, Connection, Data, open_websocket

HELLO, WELCOME, ABORT, CHALLENGE, AUTHENTICATE = 1, 2, 3, 4, 5
ERROR, PUBLISH, PUBLISHED, SUBSCRIBE, SUBSCRIBED, EVENT = 8, 16, 17, 32, 33, 36
ROLES: dict[str, dict[str, Any]] = {"subscriber": {}, "publisher": {}}


@dataclass(frozen=True)
class WampClient(Client):
    """Reaches a crossbar router's WebSocket transport, realm ``app``."""

    url: str
    origin: str
    serializer: str = "json"
    #: subscribers join with this WAMP ticket (a Broker user token); anonymous if None
    ticket: str | None = None
    #: the publisher joins with WAMP-CRA as (authid, secret); anonymous if None
    publisher_cra: tuple[str, str] | None = None

    def using(self, serializer: str) -> WampClient:
        return replace(self, serializer=serializer)

    # -- framing ------------------------------------------------------------
    def _encode(self, msg: list[Any]) -> Data:
        if self.serializer == "msgpack":
            return msgpack.packb(msg)  # type: ignore[no-any-return]
        return json.dumps(msg, separators=(",", ":"))

    def _decode(self, frame: Data) -> list[Any]:
        if isinstance(frame, bytes):
            return msgpack.unpackb(frame)  # type: ignore[no-any-return]
        return json.loads(frame)  # type: ignore[no-any-return]

    def _type(self, frame: Data) -> int:
        """The WAMP message type from the frame's first bytes (a msgpack fixarray, then a fixint)."""
        if isinstance(frame, bytes):
            return frame[1]
        return int(frame[1 : frame.index(",")])

    async def _join(self, ws: Connection, ticket: str | None, cra: tuple[str, str] | None) -> None:
        details: dict[str, Any] = {"roles": ROLES}
        if ticket is not None:
            details["authmethods"] = ["ticket"]
        elif cra is not None:
            details.update(authid=cra[0], authmethods=["wampcra"])
        ws.send(self._encode([HELLO, "app", details]))
        msg = self._decode(await ws.recv())
        if msg[0] == CHALLENGE:
            if ticket is not None:
                signature = ticket
            else:
                assert cra is not None
                challenge = msg[2]["challenge"].encode()
                digest = hmac.new(cra[1].encode(), challenge, hashlib.sha256).digest()
                signature = base64.b64encode(digest).decode()
            ws.send(self._encode([AUTHENTICATE, signature, {}]))
            msg = self._decode(await ws.recv())
        if msg[0] != WELCOME:
            raise ConnectionError(f"join refused: {msg}")

    # -- Client ---------------------------------------------------------------
    async def subscribe(self) -> Connection:
        ws = await open_websocket(self.url, self.origin, f"wamp.2.{self.serializer}")
        await self._join(ws, self.ticket, None)
        ws.send(self._encode([SUBSCRIBE, 1, {}, TOPIC]))
        msg = self._decode(await ws.recv())
        if msg[0] != SUBSCRIBED:
            raise ConnectionError(f"subscribe refused: {msg}")
        return ws

    def is_event(self, frame: Data) -> bool:
        return self._type(frame) == EVENT

    def sent_at(self, frame: Data) -> float:
        return float(self._decode(frame)[4][0]["ts"])

    async def publisher(self) -> Connection:
        ws = await open_websocket(self.url, self.origin, f"wamp.2.{self.serializer}")
        await self._join(ws, None, self.publisher_cra)
        return ws

    def publish(self, payload: dict[str, Any], request: int) -> Data:
        return self._encode([PUBLISH, request, {"acknowledge": True}, TOPIC, [payload]])

    def acked(self, frame: Data) -> bool | None:
        kind = self._type(frame)
        return True if kind == PUBLISHED else False if kind == ERROR else None
