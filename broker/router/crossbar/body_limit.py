"""Refusing an oversized request body while it arrives, not after reading it all.

Twisted's ``HTTPChannel`` copies the whole body into ``request.content`` (a
temporary file beyond 100 KB) before any resource sees the request, so the
publish API's own size check came after a 256 MiB body had been read to its
end. This module checks in the channel instead, for paths whose resource has
a body limit (``/api``, :data:`LIMITS`):

* a declared ``Content-Length`` over the limit is refused as soon as the
  headers end: no ``100 Continue``, not one byte of the body read;
* a body without a length (``Transfer-Encoding: chunked``) is counted as it
  is decoded and refused at the first byte over the limit.

The refusal is the publish API's own answer (413 ``broker.error.too_large``,
JSON), written straight to the socket; then the channel ignores the rest,
stops reading from the socket, half-closes it (the client reads the answer
and an end of stream) and aborts it after :data:`LINGER_SECONDS`, so a client
still sending is reset instead of being read.

Item 12 of the index in :mod:`broker.router.crossbar`. Wraps
``twisted/web/http.py: HTTPChannel.allHeadersReceived`` and
``Request.handleContentChunk``. Tests: ``tests/test_body_limit.py``,
``tests/test_body_limit_paths.py``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import unquote_to_bytes, urlsplit

from twisted.web import http

from broker.core.publishers import HttpPublishSettings
from broker.core.publishing import PUBLISH_PATH
from broker.errors import PayloadTooLarge
from broker.router import metrics

if TYPE_CHECKING:
    from broker.router.state import NodeState

#: Seconds a refused connection stays half-open for the client to read the answer.
LINGER_SECONDS: Final = 2.0


def publish_body_limit(state: NodeState) -> int:
    """``max_body_bytes`` of the running publish API (its default while the node starts)."""
    gate = state.publish_gate
    return int(gate.settings.max_body_bytes if gate is not None else HttpPublishSettings.max_body_bytes)


#: Path prefix (decoded, as Twisted routes it) -> the body limit of requests under it.
LIMITS: Final[Mapping[bytes, Callable[[NodeState], int]]] = {
    PUBLISH_PATH.rsplit("/", 1)[0].encode(): publish_body_limit,
}


def limit_for(state: NodeState, target: bytes) -> int | None:
    """The body limit for a request target (``/api/publish?x``, percent-encoded or absolute), or None
    (``state``: the node's, whose publish API has the limit)."""
    path = unquote_to_bytes(urlsplit(target).path)
    for prefix, limit in LIMITS.items():
        if path == prefix or path.startswith(prefix + b"/"):
            return limit(state)
    return None


def refuse(state: NodeState, channel: Any, message: str) -> None:
    """Answer 413 on ``channel`` now, read nothing more, and close it."""
    if getattr(channel, "_broker_refused", False):
        return
    channel._broker_refused = True
    error = PayloadTooLarge(message)
    state.count_rejection(f"http_{type(error).__name__}")
    metrics.count_http_answer(error.http_status)
    body = json.dumps({"error": error.wamp_uri, "message": message}).encode()
    head = (
        f"HTTP/1.1 {error.http_status} Request Entity Too Large\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Cache-Control: no-store\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    # whatever is buffered or still arrives is dropped, unparsed
    channel._buffer = b""
    channel.paused = True
    channel.dataReceived = lambda data: None
    channel.setTimeout(None)
    transport = channel.transport
    transport.write(head + body)
    transport.pauseProducing()  # stop reading from the socket: the kernel's buffers fill, the client waits
    transport.loseWriteConnection()
    channel.callLater(LINGER_SECONDS, transport.abortConnection)


def _make_all_headers_received(state: NodeState, original: Callable[[Any], None]) -> Callable[[Any], None]:
    def allHeadersReceived(self: Any) -> None:
        limit = limit_for(state, self._path)
        self._broker_body_limit, self._broker_body_read = limit, 0
        if limit is not None and self.length is not None and self.length > limit:
            refuse(state, self, f"body of {self.length} bytes is over the limit of {limit}")
            return
        original(self)

    return allHeadersReceived


def _make_handle_content_chunk(
    state: NodeState, original: Callable[[Any, bytes], None]
) -> Callable[[Any, bytes], None]:
    def handleContentChunk(self: Any, data: bytes) -> None:
        channel = self.channel
        limit = getattr(channel, "_broker_body_limit", None)
        if limit is not None:
            if channel._broker_refused:
                return
            channel._broker_body_read += len(data)
            if channel._broker_body_read > limit:
                refuse(state, channel, f"body is over the limit of {limit} bytes")
                decoder = channel._transferDecoder
                if decoder is not None and isinstance(getattr(decoder, "_buffer", None), bytearray):
                    del decoder._buffer[:]  # the decoder delivers nothing more, never the end
                return
        original(self, data)

    return handleContentChunk


def install(state: NodeState) -> None:
    """Patch Twisted's HTTP channel and request (``state``: whose publish API has the limit)."""
    channel = http.HTTPChannel
    channel._broker_body_limit = None  # type: ignore[attr-defined]
    channel._broker_refused = False  # type: ignore[attr-defined]
    channel.allHeadersReceived = _make_all_headers_received(state, channel.allHeadersReceived)  # type: ignore[method-assign]
    request = http.Request
    request.handleContentChunk = _make_handle_content_chunk(state, request.handleContentChunk)  # type: ignore[method-assign]
