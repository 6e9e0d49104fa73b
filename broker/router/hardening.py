"""The few places where Broker reaches inside crossbar 26.10, all in this module.

Each patch corrects one measured crossbar behaviour; :func:`install` applies
them once, when Broker's router component loads in the router worker, and the
tests under ``tests/test_hardening.py`` (``tests/test_slow_subscriber.py`` for
6, ``tests/test_connection_floods.py`` for 13 and 14) fail without them.

1. **Invalid URIs close the connection** (1011 "WAMP Internal Error" plus a
   traceback): autobahn's message parser raises ``InvalidUriError``, which is
   not a ``ProtocolError``. Broker answers ``ERROR wamp.error.invalid_uri`` for
   the one request and keeps the session (:func:`broker.core.protocol.check_request_uri`).
2. **Protocol violations are ignored or closed without ABORT**: a second HELLO
   after WELCOME is logged and ignored, a PUBLISH before HELLO is silently
   dropped, an unknown message type closes with 1002 and no ABORT. Broker
   sends ``ABORT wamp.error.protocol_violation`` and closes with 1002
   (:func:`broker.core.protocol.check_allowed`), logging one line, not a traceback.
3. **No deadline for HELLO**: a WebSocket that never sends HELLO stays open
   forever. Broker aborts it with ``broker.error.hello_timeout`` (close 1008)
   after ``hello_timeout`` seconds.
4. **One deeply nested message stalls the router**: py_ecc (imported by
   crossbar) raises Python's recursion limit to 100000, so a JSON array nested
   60,000 deep is parsed, then walked and logged for 23 s. Broker refuses JSON
   nested deeper than :data:`broker.core.protocol.MAX_JSON_NESTING` before decoding
   it, and restores the interpreter's default recursion limit so the binary
   decoders (msgpack, cbor) fail fast too; either refusal is a protocol
   violation with one log line.
5. **``GET`` on the long-poll path crashes** (``bytes.format`` in crossbar's
   notice page, HTTP 500 and a traceback per request): Broker answers 405.
   Long-poll messages get the same checks as WebSocket ones (1 and 2).
6. **A subscriber that stops reading grows the router without limit**
   (crossbar issue #874): everything routed to it waits in Twisted's
   user-space write buffer; 3000 events of 64 KB to one such WebSocket grew
   the router from 139 MB to 347 MB in 2.5 s. After each message sent on a
   WebSocket, Broker reads how many bytes wait for that peer's socket (O(1),
   it is on the path of every event) and, beyond ``max_buffer_bytes``
   (:func:`broker.core.backpressure.slow_subscriber`), lets the peer go: it counts
   ``SlowSubscriber``, logs one line (autobahn adds one when it drops the
   connection) and discards every later message for that peer. If the kernel
   takes the backlog at once, a close frame (1008 and the reason) follows it
   and ``close_handshake_timeout`` bounds the wait for the peer; if not, the
   connection is dropped, freeing the buffer now. The same hook discards
   messages routed to a peer whose WebSocket is already closing: crossbar
   still delivers to it until its session detaches, and autobahn's
   ``Disconnected`` would end crossbar's delivery loop for every subscriber
   after it (and log a traceback).
   Long-poll is not covered, and need not be yet: crossbar 26.10 accepts the
   transport's ``queue_limit_bytes`` and ``queue_limit_messages`` but never
   reads them (``crossbar/router/longpoll.py`` only stores them, and
   ``WampLongPollResourceSessionReceive.queue`` appends without a check), yet
   no long-poll session can open at all: ``RouterSession.onOpen`` asserts a
   transport type list without the long-poll session, so HELLO over long-poll
   fails. Whoever makes long-poll work must bound that queue too (7 does).
7. **No WAMP session can start over long-poll** (``/lp``, the fallback for
   clients without WebSocket): ``RouterSession.onOpen`` asserts a list of
   transport types without crossbar's own ``WampLongPollResourceSession``, so
   ``POST /lp/open`` logs a traceback and HELLO fails; the router session also
   reads ``transport.transport_details`` (an autobahn ``TransportDetails``)
   and ``transport.peer``, which the long-poll session lacks (it keeps a dict).
   Broker opens the router session for long-poll as for any other transport
   and gives the long-poll session both attributes. Long-poll has no ``auth``
   in crossbar's config, so its sessions join as ``anonymous``. Three more
   long-poll defaults are unsafe, and Broker corrects them:

   * CORS: crossbar answers *any* ``Origin`` with
     ``Access-Control-Allow-Origin: <origin>`` and ``-Allow-Credentials: true``.
     Broker allows the origins the web transport's WebSocket paths allow
     (their ``allowed_origins``, crossbar's default ``*`` if unset, same
     wildcards): only those get CORS headers; ``POST /lp/open`` from another
     origin is refused with 403 (counted ``ForeignOrigin``); a request without
     ``Origin`` (not a browser) is served without CORS headers.
   * The receive queue is unbounded: ``queue_limit_bytes`` and
     ``queue_limit_messages`` are stored, never read. Broker enforces both: a
     session whose queue would exceed either is let go like a slow WebSocket
     (6): counted ``SlowSubscriber``, one log line, every later message for it
     discarded, the session closed.
   * A protocol violation (2) closes the transport at once, so a client that
     was not polling at that moment never sees the ABORT. Broker ends the
     router session at once but keeps the transport until the next poll
     delivers the ABORT (or ``session_timeout`` reaps it).
8. **Long-poll ignores the message limit**: a 16 MiB ``/lp`` send was
   answered 204 and routed, and a session subscribed to 8 MiB topic URIs
   (WebSocket refuses a message over ``max_message_size``, which also bounds
   its URIs). Broker bounds every long-poll request body by the WebSocket
   paths' ``max_message_size``, refused with 413 on the declared length or as
   chunks arrive, before Twisted buffers it; the session it was for ends
   (``ABORT broker.error.too_large``), counted ``MessageTooLarge``
   (:mod:`broker.router.longpoll_limits`; tests in ``tests/test_longpoll.py``).
9. **A malformed ``POST /lp/open`` answers 500 HTML** (for ``{}`` a page
   with the request's and the resource's reprs). Broker answers a JSON 400
   naming the problem (:mod:`broker.router.longpoll_open`; ``tests/test_longpoll.py``).
10. **Static files answer any Origin with credentialed CORS**. Broker sends
    CORS headers to the origins long-poll allows (7) only
    (:mod:`broker.router.cors`; ``tests/test_cors.py``).
11. **REGISTER reveals which reserved procedures exist**: a refused REGISTER of
    an existing ``broker.*`` procedure is answered ``procedure_already_exists``,
    of a missing one ``not_authorized``. Broker refuses registrations under
    ``wamp.``/``broker.`` by any role but the node's own first, with one
    ``wamp.error.not_authorized`` (:mod:`broker.router.reserved`; tested in
    ``tests/test_roles.py``).
12. **A request body is read to its end before any resource can refuse it**:
    Twisted's ``HTTPChannel`` buffers the whole body (a 256 MiB stream was read
    in full before ``/api/publish`` answered 413). :mod:`broker.router.body_limit`
    (installed by the component) refuses under ``/api`` a declared
    ``Content-Length`` over ``max_body_bytes`` when the headers end, and a
    chunked body at its first byte over it: 413 JSON, nothing more read, the
    connection closed.
13. **1-byte WebSocket fragments stall the router, before any authentication**:
    autobahn spends 7-15 µs on every frame, so a 60 KB message in 1-byte
    fragments costs 0.9 s of the router's core, and four connections that never
    sent HELLO delayed everyone's events by 1.3-1.9 s. Broker allows 64
    fragments per message, 10 control frames per second (after a burst of 50),
    and 64 frames after its own close frame; an offender gets close 1008 with
    the reason and nothing more it sends is parsed
    (:mod:`broker.router.connections`, rules in :mod:`broker.core.connlimits`).
14. **A trickled HTTP request (slowloris) is never closed, and enough of them fill
    ``max_connections``**: ``client_timeout`` is an idle timeout that every byte
    restarts. Broker gives each request ``client_timeout`` seconds in all, from
    accept or the previous response to its last byte (408, then closed), and at
    the connection cap a new connection takes the place of the one that has
    waited longest for its request (or, as a WebSocket, for its WAMP session)
    instead of being refused (:mod:`broker.router.connections`).
15. **A port taken after ``broker run`` checked it is about 50 lines of
    tracebacks** (the router worker's and the controller's). The transport's
    failure loses its frames and carries ``broker run``'s one line (the port,
    "Address already in use", ``--port``/``BROKER_PORT``), and the
    controller's "Could not start node" is one line
    (:mod:`broker.router.listen`; the launcher installs the controller side;
    tested in ``tests/test_node.py``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, Final, Protocol

from autobahn.util import wildcards2patterns
from autobahn.wamp import message
from autobahn.wamp.types import TransportDetails
from autobahn.websocket.protocol import WebSocketProtocol, _is_same_origin, _url_to_origin
from crossbar.router import longpoll
from crossbar.router.protocol import WampWebSocketServerProtocol
from crossbar.router.session import RouterSession
from crossbar.webservice import longpoll as webservice_longpoll
from twisted.internet.abstract import FileDescriptor
from twisted.logger import Logger
from twisted.protocols.policies import ProtocolWrapper
from twisted.web import http

from broker.core.backpressure import slow_subscriber
from broker.core.protocol import (
    MAX_JSON_NESTING,
    check_allowed,
    check_request_uri,
    json_nesting_exceeds,
    name,
)
from broker.errors import ClientError, HelloTimeout, InvalidUri, ProtocolViolation
from broker.router import connections, listen, reserved
from broker.router.state import STATE

#: The interpreter's own default, which py_ecc raises to 100000 at import.
RECURSION_LIMIT: Final = 1000

#: WebSocket close codes (RFC 6455 §7.4.1).
CLOSE_PROTOCOL_ERROR: Final = WebSocketProtocol.CLOSE_STATUS_CODE_PROTOCOL_ERROR  # 1002
CLOSE_POLICY_VIOLATION: Final = WebSocketProtocol.CLOSE_STATUS_CODE_POLICY_VIOLATION  # 1008

_log = Logger(namespace="broker.hardening")


class Clock(Protocol):
    """The part of a Twisted reactor the HELLO deadline needs (``task.Clock`` in tests)."""

    def callLater(self, delay: float, callable: Callable[..., object], *args: object) -> Any: ...


_installed: dict[str, Any] = {}


def _state(session: Any) -> str:
    """The WAMP session state of crossbar's ``RouterSession`` as :data:`CLIENT_MAY_SEND` keys."""
    if session is None:
        return "opening"
    if getattr(session, "_session_id", None) is not None:
        return "joined"
    if getattr(session, "_pending_session_id", None):
        return "authenticating"
    return "opening"


def dispatch(transport: Any, payload: bytes, is_binary: bool | None) -> None:
    """Decode ``payload``, apply Broker's rules, hand valid messages to the session.

    Raises :class:`ClientError` for anything the peer got wrong; the caller
    turns it into ABORT and a close.
    """
    serializer = transport._serializer
    if is_binary is not None and is_binary != serializer._serializer.BINARY:
        kind = "binary" if is_binary else "text"
        raise ProtocolViolation(f"{kind} message on a {serializer.SERIALIZER_ID} transport")
    if not serializer._serializer.BINARY and json_nesting_exceeds(payload):
        raise ProtocolViolation(f"message nested deeper than {MAX_JSON_NESTING} levels")
    try:
        raws = serializer._serializer.unserialize(payload)
    except RecursionError:
        raise ProtocolViolation("message nested too deeply") from None
    except Exception as exc:  # decoders raise many types; all mean "not valid for this serializer"
        raise ProtocolViolation(
            f"invalid {serializer.SERIALIZER_ID} message ({type(exc).__name__})"
        ) from None
    for raw in raws:
        if not isinstance(raw, list) or not raw:
            raise ProtocolViolation("a WAMP message must be a non-empty array")
        check_allowed(raw[0], _state(transport._session))
        rejection = check_request_uri(raw)
        if rejection is not None:
            STATE.count_rejection("invalid_uri")
            if rejection.reply:
                transport.send(
                    message.Error(
                        rejection.request_type,
                        rejection.request_id,
                        InvalidUri.wamp_uri,
                        args=[str(rejection.error)],
                    )
                )
            continue
        try:
            msg = serializer.MESSAGE_TYPE_MAP[raw[0]].parse(raw)
        except Exception as exc:  # autobahn's parsers raise ProtocolError, Error and ValueError alike
            raise ProtocolViolation(f"invalid {name(raw[0])}: {str(exc)[:160]}") from None
        transport._session.onMessage(msg)


def _truncate(reason: str, limit: int = 120) -> str:
    """A close reason must fit a control frame (123 bytes of UTF-8)."""
    return reason.encode("utf-8")[:limit].decode("utf-8", "ignore")


def _refuse(transport: Any, error: ClientError) -> None:
    """Tell the peer why in an ABORT (best effort), count it, log one line."""
    reason = type(error).__name__
    STATE.count_rejection(reason)
    _log.warn(
        "closing {peer}: {uri}: {reason}",
        peer=getattr(transport, "peer", "?"),
        uri=error.wamp_uri,
        reason=_truncate(str(error), 200),
    )
    try:
        transport.send(message.Abort(error.wamp_uri, message=_truncate(str(error), 200)))
    except Exception:  # noqa: S110 - the transport may already be gone; closing is what matters
        pass


def _websocket_on_message(self: Any, payload: bytes, isBinary: bool) -> None:
    try:
        dispatch(self, payload, isBinary)
    except ClientError as error:
        _refuse(self, error)
        self._bailout(CLOSE_PROTOCOL_ERROR, reason=_truncate(str(error)))


def _make_websocket_on_open(reactor: Clock, hello_timeout: float, original: Any) -> Any:
    def on_open(self: Any) -> None:
        self._broker_socket = _socket_of(self.transport)
        if self._broker_socket is None:
            _log.warn(
                "cannot bound what waits to be sent to {peer}: unknown transport {transport}",
                peer=self.peer,
                transport=type(self.transport).__name__,
            )
        original(self)
        timeout = _installed.get("hello_timeout", hello_timeout)  # configure() changes it live
        self._broker_hello_deadline = reactor.callLater(timeout, _hello_deadline, self, timeout)

    return on_open


def _hello_deadline(self: Any, hello_timeout: float) -> None:
    if self.state == WebSocketProtocol.STATE_OPEN and _state(self._session) != "joined":
        error = HelloTimeout(f"no WAMP session established within {hello_timeout:g} s of connecting")
        _refuse(self, error)
        self._bailout(CLOSE_POLICY_VIOLATION, reason=_truncate(str(error)))


def _make_websocket_on_close(original: Any) -> Any:
    def on_close(self: Any, wasClean: bool, code: int, reason: str | None) -> None:
        deadline = getattr(self, "_broker_hello_deadline", None)
        if deadline is not None and deadline.active():
            deadline.cancel()
        original(self, wasClean, code, reason)

    return on_close


def _socket_of(transport: Any) -> FileDescriptor | None:
    """The socket under a protocol's transport, whose write buffer fills when the peer stops reading.

    Under crossbar's web transport a WebSocket's transport is the TCP (or Unix)
    connection itself; TLS (or a ``haproxy:`` endpoint) wraps it in a ``ProtocolWrapper``.
    """
    while isinstance(transport, ProtocolWrapper):
        transport = transport.transport
    return transport if isinstance(transport, FileDescriptor) else None


def _waiting(sock: FileDescriptor) -> int:
    """Bytes written to ``sock`` that the kernel has not taken yet (see ``FileDescriptor.doWrite``)."""
    return len(sock.dataBuffer) - sock.offset + sock._tempDataLen


def _make_websocket_send(max_buffer_bytes: int, original: Any) -> Any:
    def send(self: Any, msg: Any) -> None:
        if self._broker_slow:
            return  # let go: nothing more is buffered for this peer
        if self.state != WebSocketProtocol.STATE_OPEN:
            # the peer is closing or gone, its session not yet detached: autobahn would raise
            # Disconnected inside crossbar's delivery loop, ending delivery to the subscribers
            # after this one (and logging a traceback). Nothing can reach this peer any more.
            return
        original(self, msg)
        sock = self._broker_socket
        if sock is not None:  # per delivery: the comparison inline, the reason only when over
            waiting = len(sock.dataBuffer) - sock.offset + sock._tempDataLen  # as in _waiting()
            limit = _installed.get("max_buffer_bytes", max_buffer_bytes)
            if waiting > limit:
                _let_go(self, sock, slow_subscriber(waiting, limit) or "")

    return send


def _let_go(self: Any, sock: FileDescriptor, reason: str) -> None:
    """Stop sending to a slow WebSocket: close 1008 if its backlog flushes now, else drop it.

    Either way nothing stays in the router's memory: a backlog the kernel takes
    at once (a burst, or room left in the socket's kernel buffer) is followed
    by the close frame, so a peer that reads on learns why; a backlog it
    refuses would hold the close frame back forever, so dropping frees it.
    """
    self._broker_slow = True
    STATE.count_rejection("SlowSubscriber")
    _log.warn("closing {peer}: {reason}", peer=self.peer, reason=reason)
    if _flush(sock):
        self.sendCloseFrame(code=CLOSE_POLICY_VIOLATION, reasonUtf8=reason.encode("utf-8"), isReply=False)
    else:
        self.wasNotCleanReason = reason
        self.dropConnection(abort=True)


def _flush(sock: FileDescriptor) -> bool:
    """Hand ``sock``'s buffer to the kernel while it takes more; whether nothing is left waiting."""
    while (before := _waiting(sock)) > 0:
        if sock.doWrite() is not None or _waiting(sock) == before:
            return False
    return True


def _longpoll_render_get(self: Any, request: Any) -> bytes:
    request.setResponseCode(http.NOT_ALLOWED)
    request.setHeader(b"allow", b"POST")
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    return b"WAMP long-poll transport: POST <path>/open to start a session\n"


def _make_router_on_open(original: Any) -> Any:
    def on_open(self: Any, transport: Any) -> None:
        if not isinstance(transport, longpoll.WampLongPollResourceSession):
            original(self, transport)
            return
        # what crossbar's RouterSession.onOpen does after its transport type assertion
        self._transport = transport
        # long-poll paths have no "auth" of their own: they take the WebSocket path's
        # (anonymous, WAMP-CRA, tokens), captured by the long-poll service at start
        self._transport_config = getattr(transport._parent, "_broker_transport_config", {})
        self._pending_session_id = self._previous_session_id = self._realm = None
        self._session_id = self._session_roles = self._session_details = None
        self._pending_auth = self._authid = self._authrole = self._authmethod = None
        self._authprovider = self._authextra = self._service_session = None

    return on_open


def _longpoll_peer(self: Any) -> str:
    return str(self._transport_details["peer"])


def _longpoll_transport_details(self: Any) -> TransportDetails:
    """The long-poll session's details (a dict in crossbar) as the router session reads them."""
    details: TransportDetails | None = self.__dict__.get("_broker_transport_details")
    if details is None:
        raw = self._transport_details
        headers = {
            key.decode("latin-1").lower(): ", ".join(v.decode("latin-1") for v in values)
            for key, values in raw["http_headers_received"].items()
        }
        details = TransportDetails(
            channel_type=TransportDetails.CHANNEL_TYPE_TCP,
            channel_framing=TransportDetails.CHANNEL_FRAMING_NONE,
            channel_serializer=TransportDetails.CHANNEL_SERIALIZER_FROM_STR.get(
                raw["serializer"].SERIALIZER_ID.split(".")[0], TransportDetails.CHANNEL_SERIALIZER_NONE
            ),
            peer=f"tcp:{raw['peer']}",
            is_server=True,
            is_secure=False,
            http_headers_received=headers,
        )
        self._broker_transport_details = details
    return details


def _longpoll_on_message(self: Any, payload: bytes, isBinary: bool | None) -> None:
    if self._session is None:
        return  # the router session ended (protocol violation); the transport waits to deliver ABORT
    try:
        dispatch(self, payload, None)
    except ClientError as error:
        _refuse(self, error)
        _longpoll_end(self)


def _longpoll_end(self: Any) -> None:
    """End the router session now; keep the transport until a poll has delivered what is queued."""
    receive = self._receive
    if receive._request is not None or not receive._queue:
        self.abort()  # the ABORT went out on the pending poll already
        return
    self.onClose(False, 1002, "protocol violation")
    self._broker_closing = True


def _make_longpoll_trigger(original: Any) -> Any:
    def trigger(self: Any) -> None:
        original(self)
        parent = self._parent
        if parent._broker_closing and not self._queue and self._request is None:
            self._killed = True
            parent._parent._transports.pop(parent._transport_id, None)

    return trigger


def _make_longpoll_queue(reactor: Clock, original: Any) -> Any:
    def queue(self: Any, data: bytes) -> None:
        parent = self._parent
        if parent._broker_slow:
            return  # let go: nothing more is queued for this session
        if self._request is not None:  # a poll is waiting: the message goes out now
            original(self, data)
            return
        limits = parent._parent
        messages = len(self._queue) + 1
        size = sum(map(len, self._queue)) + len(data)  # at most queue_limit_messages entries
        if messages > limits._queueLimitMessages or size > limits._queueLimitBytes:
            parent._broker_slow = True
            self._queue.clear()
            STATE.count_rejection("SlowSubscriber")
            reason = (
                f"long-poll receive queue over its limit ({messages} messages, {size} bytes; "
                f"limits {limits._queueLimitMessages} messages, {limits._queueLimitBytes} bytes)"
            )
            _log.warn("closing {peer}: {reason}", peer=parent.peer, reason=reason)
            # not now: the router is in the middle of routing to this session
            reactor.callLater(0, _longpoll_abort, parent)
            return
        original(self, data)

    return queue


def _longpoll_abort(session: Any) -> None:
    if session.isOpen():
        session.abort()


def _origin_allowed(resource: Any, origin: bytes) -> bool:
    """Whether a WebSocket handshake from ``origin`` would pass (autobahn's own checks)."""
    try:
        parsed = _url_to_origin(origin.decode("latin-1").strip())
    except ValueError:
        return False
    if parsed == "null":
        return bool(resource._broker_allow_null_origin)
    return bool(_is_same_origin(parsed, None, None, resource._broker_origin_patterns))


def _longpoll_standard_headers(self: Any, request: Any) -> None:
    request.setHeader(b"cache-control", b"no-store, no-cache, must-revalidate, max-age=0")
    origin = request.getHeader(b"origin")
    if origin is None or not _origin_allowed(self, origin):
        return  # no CORS for non-browsers and foreign origins
    request.setHeader(b"access-control-allow-origin", origin)
    request.setHeader(b"access-control-allow-credentials", b"true")
    request.setHeader(b"vary", b"Origin")
    headers = request.getHeader(b"access-control-request-headers")
    if headers is not None:
        request.setHeader(b"access-control-allow-headers", headers)


def _make_longpoll_open(original: Any) -> Any:
    def render_post(self: Any, request: Any) -> bytes:
        origin = request.getHeader(b"origin")
        if origin is not None and not _origin_allowed(self._parent, origin):
            STATE.count_rejection("ForeignOrigin")
            _log.warn(
                "refusing long-poll session from {peer}: origin {origin!r} not allowed",
                peer=request.getClientIP(),
                origin=origin.decode("latin-1"),
            )
            request.setResponseCode(http.FORBIDDEN)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return b"origin not allowed\n"
        result: bytes = original(self, request)
        return result

    return render_post


def websocket_origin_policy(paths: dict[str, Any]) -> tuple[list[str], bool]:
    """The origins a web transport's WebSocket paths allow (crossbar's default ``*`` where
    unset), and whether any of them allows the ``null`` origin."""
    origins: list[str] = []
    allow_null = False
    for service in paths.values():
        if isinstance(service, dict) and service.get("type") == "websocket":
            options = service.get("options", {})
            origins.extend(options.get("allowed_origins", ["*"]))
            allow_null = allow_null or bool(options.get("allow_null_origin", False))
    return origins, allow_null


def websocket_auth(paths: dict[str, Any]) -> dict[str, Any]:
    """The ``auth`` of a web transport's first WebSocket path, for its long-poll sessions."""
    for service in paths.values():
        if isinstance(service, dict) and service.get("type") == "websocket" and "auth" in service:
            return {"auth": service["auth"]}
    return {}


def _make_longpoll_create(original: Any) -> Any:
    def create(transport: Any, path: str, config: dict[str, Any]) -> Any:
        service = original(transport, path, config)
        web = transport._config.get("web", transport._config)  # "universal" transports nest it
        origins, allow_null = websocket_origin_policy(web.get("paths", {}))
        service._resource._broker_origin_patterns = wildcards2patterns(origins)
        service._resource._broker_allow_null_origin = allow_null
        service._resource._broker_transport_config = websocket_auth(web.get("paths", {}))
        return service

    return staticmethod(create)


def configure(hello_timeout: float, max_buffer_bytes: int) -> None:
    """Change the HELLO deadline and the slow-subscriber limit of an installed node (a live
    reload): new connections get the new deadline, every send checks the new limit."""
    if _installed:
        _installed.update(hello_timeout=hello_timeout, max_buffer_bytes=max_buffer_bytes)


def install(hello_timeout: float, max_buffer_bytes: int, reactor: Clock | None = None) -> None:
    """Apply every correction above, once per process."""
    if _installed:
        return
    if reactor is None:
        from twisted.internet import reactor as global_reactor

        reactor = global_reactor
    sys.setrecursionlimit(RECURSION_LIMIT)
    ws = WampWebSocketServerProtocol
    _installed.update(hello_timeout=hello_timeout, max_buffer_bytes=max_buffer_bytes)
    ws.onMessage = _websocket_on_message  # type: ignore[method-assign]
    ws.onOpen = _make_websocket_on_open(reactor, hello_timeout, ws.onOpen)  # type: ignore[method-assign]
    ws.onClose = _make_websocket_on_close(ws.onClose)  # type: ignore[method-assign]
    ws.send = _make_websocket_send(max_buffer_bytes, ws.send)  # type: ignore[method-assign]
    # per-connection state, as class defaults: set on a connection once it is opened or let go
    ws._broker_socket = None  # type: ignore[attr-defined]
    ws._broker_slow = False  # type: ignore[attr-defined]
    lp, lp_receive = longpoll.WampLongPollResourceSession, longpoll.WampLongPollResourceSessionReceive
    lp.onMessage = _longpoll_on_message  # type: ignore[method-assign]
    longpoll.WampLongPollResource.render_GET = _longpoll_render_get  # type: ignore[method-assign]
    # 7: long-poll sessions open, with CORS for allowed origins only and a bounded queue
    RouterSession.onOpen = _make_router_on_open(RouterSession.onOpen)  # type: ignore[method-assign]
    lp.peer = property(_longpoll_peer)  # type: ignore[attr-defined]
    lp.transport_details = property(_longpoll_transport_details)  # type: ignore[attr-defined]
    lp._broker_slow = False  # type: ignore[attr-defined]
    lp._broker_closing = False  # type: ignore[attr-defined]
    lp_receive.queue = _make_longpoll_queue(reactor, lp_receive.queue)  # type: ignore[method-assign]
    lp_receive._trigger = _make_longpoll_trigger(lp_receive._trigger)  # type: ignore[method-assign]
    # transports start after components, so every long-poll resource is created after this;
    # one that was not allows no origin (fail closed)
    longpoll.WampLongPollResource._broker_origin_patterns = []  # type: ignore[attr-defined]
    longpoll.WampLongPollResource._broker_allow_null_origin = False  # type: ignore[attr-defined]
    longpoll.WampLongPollResource._set_standard_headers = _longpoll_standard_headers  # type: ignore[method-assign]
    # 8-10 live in modules of their own, which use the helpers above (hence imported here)
    from broker.router import cors, longpoll_limits, longpoll_open

    longpoll_limits.install()
    longpoll_open.install()  # inside the origin check below: a foreign origin gets 403 first
    cors.install()
    lp_open = longpoll.WampLongPollResourceOpen
    lp_open.render_POST = _make_longpoll_open(lp_open.render_POST)  # type: ignore[method-assign]
    lp_service = webservice_longpoll.RouterWebServiceLongPoll
    lp_service.create = _make_longpoll_create(lp_service.create)  # type: ignore[method-assign]
    reserved.install()  # 11
    connections.install(reactor)  # 13 and 14
    listen.install()  # 15
