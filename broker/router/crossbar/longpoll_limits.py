"""Long-poll requests get WebSocket's message limit, refused as their headers arrive.

Why: crossbar 26.10's long-poll transport reads whatever a client POSTs. A
``/lp/<transport>/send`` of 16 MiB was answered 204 and routed, and an
anonymous session subscribed to four 8 MiB topic URIs (the router grew by
31 MiB, other clients' events were late by up to 1.1 s), while the WebSocket
path refuses any message over its ``max_message_size`` (close 1009). WebSocket
has no URI length limit of its own either: a URI is bounded by the message
that carries it. So long-poll gets the same bound: no request body under a
long-poll path may exceed the smallest ``max_message_size`` of the web
transport's WebSocket paths (:func:`broker.core.longpoll.max_message_size`); a send
holding a batch of messages counts as one body. JSON nesting is checked per
message as on WebSocket (:func:`broker.router.crossbar.protocol.dispatch`).

Twisted buffers a request's whole body before any resource sees it, so the
check cannot live in the long-poll resource: it hooks the request as the
channel parses it. A declared ``Content-Length`` over the limit is refused as
soon as the headers are in; a chunked body as soon as what has arrived
exceeds it. Nothing more of the body is kept: the channel answers
``413 {"error": "broker.error.too_large", "message": ...}`` itself (CORS
headers for allowed origins, as long-poll answers get), counts
``MessageTooLarge`` and discards what the client still sends for
:data:`LINGER_SECONDS`, so a client that writes its whole body before reading
still reads the answer, then closes the connection. (HTTP/1.1 only, which is
all crossbar serves: its TLS endpoints negotiate no ALPN, so no HTTP/2.)

A send over the limit ends its WAMP session, as the same message ends a
WebSocket connection (1009): the next poll delivers
``ABORT broker.error.too_large`` with the reason, the one after finds the
transport gone (404). Item 8 of the index in :mod:`broker.router.crossbar`.

Wraps ``twisted/web/http.py: Request.gotLength`` and ``handleContentChunk``
and ``crossbar/webservice/longpoll.py: RouterWebServiceLongPoll.create``.
Tests: ``tests/test_longpoll.py``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import unquote_to_bytes

from autobahn.wamp import message
from crossbar.router import longpoll
from crossbar.webservice import longpoll as webservice_longpoll
from twisted.logger import Logger
from twisted.web import http

from broker.core.longpoll import body_too_large, max_message_size
from broker.errors import PayloadTooLarge
from broker.router.crossbar.longpoll import end_keeping_transport
from broker.router.crossbar.longpoll_origins import origin_allowed
from broker.router.metrics import MESSAGE_TOO_LARGE

if TYPE_CHECKING:
    from broker.router.state import NodeState

#: How long a refused request's connection keeps reading (and discarding) what the client sends.
LINGER_SECONDS: Final = 2.0

_log = Logger(namespace="broker.hardening")


def target(channel: Any) -> tuple[Any, list[bytes]] | None:
    """The long-poll resource the request being parsed on ``channel`` goes to, and the path
    segments after it; None for any other resource.

    Walks the site's static children as Twisted's traversal does (unquoted
    segments, ``putChild`` children first), so it never runs a resource's code.
    """
    resource = getattr(getattr(channel, "site", None), "resource", None)
    path = getattr(channel, "_path", b"").split(b"?", 1)[0]
    segments = [unquote_to_bytes(s) for s in path[1:].split(b"/")]
    for depth, segment in enumerate(segments):
        if isinstance(resource, longpoll.WampLongPollResource):
            return resource, segments[depth:]
        children = getattr(resource, "children", None)
        if not isinstance(children, dict) or segment not in children:
            return None
        resource = children[segment]
    return (resource, []) if isinstance(resource, longpoll.WampLongPollResource) else None


def _make_got_length(state: NodeState, original: Any) -> Any:
    def got_length(self: Any, length: int | None) -> None:
        found = target(self.channel) if self.channel is not None else None
        if found is not None:
            self._broker_longpoll = found
            reason = None if length is None else body_too_large(length, found[0]._broker_limit, declared=True)
            if reason is not None:
                original(self, 0)  # an empty body: nothing of it is kept
                _refuse(state, self, reason)
                return
        original(self, length)

    return got_length


def _make_handle_content_chunk(state: NodeState, original: Any) -> Any:
    def handle_content_chunk(self: Any, data: bytes) -> None:
        found = self._broker_longpoll
        if found is not None:
            if self._broker_refused:
                return
            self._broker_received += len(data)
            reason = body_too_large(self._broker_received, found[0]._broker_limit, declared=False)
            if reason is not None:
                _refuse(state, self, reason)
                return
        original(self, data)

    return handle_content_chunk


def _discard(data: bytes) -> None:
    """What a refused request's channel does with the rest of the body."""


def _refuse(state: NodeState, request: Any, reason: str) -> None:
    """Answer 413 now, end the session the request was for, keep nothing more of it."""
    request._broker_refused = True
    channel = request.channel
    resource, rest = request._broker_longpoll
    decoder = channel._transferDecoder
    if decoder is not None:
        decoder.finishCallback = _discard  # the request is never processed
    channel.dataReceived = _discard  # what the peer still sends, as Twisted drops data after a close
    channel._send100Continue = lambda: None  # no "100 Continue" for a body we refuse
    peer = channel.transport.getPeer()
    state.count_rejection(MESSAGE_TOO_LARGE)
    _log.warn(
        "refusing long-poll request from {peer}: {reason}", peer=getattr(peer, "host", peer), reason=reason
    )
    session = resource._transports.get(rest[0].decode("utf-8", "replace")) if rest else None
    if session is not None and session._session is not None:
        session.send(message.Abort(PayloadTooLarge.wamp_uri, message=reason))
        end_keeping_transport(session)
    channel.transport.write(_answer(resource, request, PayloadTooLarge(reason)))
    resource.reactor.callLater(LINGER_SECONDS, _close, channel)


def _answer(resource: Any, request: Any, error: PayloadTooLarge) -> bytes:
    """The whole HTTP response, written before Twisted has a response object for the request."""
    body = json.dumps({"error": error.wamp_uri, "message": str(error)}).encode()
    headers = [
        b"HTTP/1.1 %d %s" % (error.http_status, http.RESPONSES[error.http_status]),
        b"Content-Type: application/json",
        b"Content-Length: %d" % len(body),
        b"Cache-Control: no-store",
        b"Connection: close",
    ]
    origin = request.requestHeaders.getRawHeaders(b"origin", [None])[0]
    if origin is not None and origin_allowed(resource, origin):
        headers += [
            b"Access-Control-Allow-Origin: " + origin,
            b"Access-Control-Allow-Credentials: true",
            b"Vary: Origin",
        ]
    return b"\r\n".join(headers) + b"\r\n\r\n" + body


def _close(channel: Any) -> None:
    """End a refused request's connection once it has lingered (unless the client left)."""
    transport = channel.transport
    if transport is not None and getattr(transport, "connected", True):
        channel.loseConnection()


def _make_create(original: Any) -> Any:
    def create(transport: Any, path: str, config: dict[str, Any]) -> Any:
        service = original(transport, path, config)
        web = transport._config.get("web", transport._config)  # "universal" transports nest it
        service._resource._broker_limit = max_message_size(web.get("paths", {}))
        return service

    return staticmethod(create)


def install(state: NodeState) -> None:
    """Bound every long-poll request body (call before transports start)."""
    request = http.Request
    request._broker_longpoll = None  # type: ignore[attr-defined]
    request._broker_refused = False  # type: ignore[attr-defined]
    request._broker_received = 0  # type: ignore[attr-defined]
    request.gotLength = _make_got_length(state, request.gotLength)  # type: ignore[method-assign]
    request.handleContentChunk = _make_handle_content_chunk(state, request.handleContentChunk)  # type: ignore[method-assign]
    # a resource created before this (none: transports start after components) allows nothing
    longpoll.WampLongPollResource._broker_limit = 0  # type: ignore[attr-defined]
    lp_service = webservice_longpoll.RouterWebServiceLongPoll
    lp_service.create = _make_create(lp_service.create)  # type: ignore[method-assign]
