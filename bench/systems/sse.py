"""A lean Server-Sent Events subscriber for the load generator: ``GET /sse`` over a raw asyncio socket.

Why: the fan-out section puts Broker's ``/sse`` beside its WebSocket
transport, so its subscribers must cost the load generator as little as the
lean WAMP client's do (:mod:`bench.systems.wamp`), not an HTTP library's
per-event overhead. Each stream sends one HTTP/1.0 request (the node then
writes the stream as it is, no chunked encoding, as curl reads it), checks
the ``200`` and waits for the ``ready`` event (from then on the stream is
live); afterwards every block up to a blank line is handed to the worker's
callback as one "frame". An ``event`` block is recognised by its ``event:``
line; its one ``data:`` line is decoded only to read a latency timestamp.
The publisher is Broker's WebSocket one, unchanged (WAMP-CRA as ``backend``).
"""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from bench.systems import HANDSHAKE_TIMEOUT, TOPIC, Client, Connection, Data, FrameQueue
from bench.systems.wamp import WampClient

#: The stream's first event once it is live (docs/sse.md).
READY = "event: ready\n"
#: What an event block carries (after its ``id:`` line, if it has a position).
EVENT = "event: event\n"
#: Bytes the status line and headers may take.
MAX_HEAD = 16_384


class SseStream(FrameQueue, asyncio.Protocol):
    """One ``GET /sse`` stream, shaped like :class:`bench.systems.Connection` for the load generator.

    Event blocks are handed over synchronously from ``data_received`` once
    :meth:`listen` was called (queued before that), as WebSocket frames are.
    """

    def __init__(self, host: str, target: str) -> None:
        self.request = f"GET {target} HTTP/1.0\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n".encode()
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = loop.create_future()
        self.frames: asyncio.Queue[str | None] = asyncio.Queue()  # type: ignore[assignment]
        self.on_frame: Callable[[Data], None] | None = None
        self.on_lost: Callable[[], None] | None = None
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.head_done = False

    # -- asyncio.Protocol -------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # a TCP connection's
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.head_done and not self._head():
            return
        *blocks, self.buffer = self.buffer.split(b"\n\n")
        for block in blocks:
            self._deliver(block.decode())

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError("closed before the stream started"))
        self.frames.put_nowait(None)
        if self.on_lost is not None:
            self.on_lost()

    # -- use ----------------------------------------------------------------------
    def _head(self) -> bool:
        """Consume the status line and headers once they are in; False while incomplete or refused."""
        head, found, rest = self.buffer.partition(b"\r\n\r\n")
        if not found:
            if len(self.buffer) > MAX_HEAD:
                self._refuse("no end of the response head")
            return False
        status = head.split(b"\r\n", 1)[0].decode("latin-1")
        if status.split()[1:2] != ["200"]:
            self._refuse(f"refused: {status!r} {rest[:300]!r}")
            return False
        self.head_done, self.buffer = True, rest
        self.opened.set_result(None)
        return True

    def _refuse(self, reason: str) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(reason))
        assert self.transport is not None
        self.transport.close()

    def _deliver(self, frame: str) -> None:
        if self.on_frame is not None:
            self.on_frame(frame)
        else:
            self.frames.put_nowait(frame)

    async def recv(self) -> str:
        frame = await self.frames.get()
        if frame is None:
            raise ConnectionError("stream closed")
        return frame

    def send(self, frame: Data) -> None:
        """A stream is one-way: nothing the load generator sends has a place on it."""
        raise ConnectionError("an SSE stream carries nothing from the client")

    def close(self) -> None:
        self.on_lost = None
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


@dataclass(frozen=True)
class SseClient(Client):
    """Subscribers on ``/sse?topic=public.bench`` (with the user token, if any); the WAMP publisher."""

    host: str
    port: int
    wamp: WampClient
    #: the subscribers' user token (``token=`` in the query, as a browser's cookie would carry it)
    token: str | None = None

    @property
    def target(self) -> str:
        query: dict[str, str] = {"topic": TOPIC}
        if self.token is not None:
            query["token"] = self.token
        return "/sse?" + urllib.parse.urlencode(query)

    async def subscribe(self) -> Connection:
        loop = asyncio.get_running_loop()

        async def open_() -> SseStream:
            _, stream = await loop.create_connection(
                lambda: SseStream(self.host, self.target), self.host, self.port
            )
            await stream.opened
            while READY not in await stream.recv():
                pass
            return stream

        stream = await asyncio.wait_for(open_(), HANDSHAKE_TIMEOUT)
        return cast(Connection, stream)  # the same shape: recv, listen, send, close

    def is_event(self, frame: Data) -> bool:
        return EVENT in cast(str, frame)  # blocks are always str

    def sent_at(self, frame: Data) -> float:
        data = cast(str, frame).rpartition("\ndata: ")[2]
        return float(json.loads(data)["args"][0]["ts"])

    async def publisher(self) -> Connection:
        return await self.wamp.publisher()

    def publish(self, payload: dict[str, Any], request: int) -> Data:
        return self.wamp.publish(payload, request)

    def acked(self, frame: Data) -> bool | None:
        return self.wamp.acked(frame)
