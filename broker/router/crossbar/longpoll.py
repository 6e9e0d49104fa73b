"""WAMP sessions over long-poll (``/lp``): they open, they get Broker's checks, their queue is bounded.

What crossbar 26.10 does, and what Broker does instead (items 5 and 7 of the
index in :mod:`broker.router.crossbar`; CORS and origins are :mod:`.longpoll_origins`):

5. **``GET`` on the long-poll path crashes** (``bytes.format`` in crossbar's
   notice page, HTTP 500 and a traceback per request): Broker answers 405.
   Long-poll messages get the same checks as WebSocket ones
   (:func:`broker.router.crossbar.protocol.dispatch`).
7. **No WAMP session can start over long-poll** (the fallback for clients
   without WebSocket): ``RouterSession.onOpen`` asserts a list of transport
   types without crossbar's own ``WampLongPollResourceSession``, so
   ``POST /lp/open`` logs a traceback and HELLO fails; the router session also
   reads ``transport.transport_details`` (an autobahn ``TransportDetails``)
   and ``transport.peer``, which the long-poll session lacks (it keeps a dict).
   Broker opens the router session for long-poll as for any other transport
   and gives the long-poll session both attributes. Long-poll has no ``auth``
   in crossbar's config, so its sessions take the WebSocket path's. Two more
   defaults are unsafe, and Broker corrects them:

   * The receive queue is unbounded: ``queue_limit_bytes`` and
     ``queue_limit_messages`` are stored, never read
     (``WampLongPollResourceSessionReceive.queue`` appends without a check).
     Broker enforces both: a session whose queue would exceed either is let
     go like a slow WebSocket (:mod:`.backpressure`): counted
     ``SlowSubscriber``, one log line, every later message for it discarded,
     the session closed.
   * A protocol violation closes the transport at once, so a client that was
     not polling at that moment never sees the ABORT. Broker ends the router
     session at once but keeps the transport until the next poll delivers the
     ABORT (or ``session_timeout`` reaps it).

Replaces, in ``crossbar/router/longpoll.py``: ``WampLongPollResource.render_GET``,
``WampLongPollResourceSession.onMessage`` (and adds its ``peer`` and
``transport_details``), ``WampLongPollResourceSessionReceive.queue`` and
``_trigger``; and wraps ``crossbar/router/session.py: RouterSession.onOpen``.
Tests: ``tests/test_longpoll.py``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from autobahn.wamp.types import TransportDetails
from crossbar.router import longpoll
from crossbar.router.session import RouterSession
from twisted.web import http

from broker.errors import ClientError
from broker.router.crossbar.context import Clock, Door
from broker.router.crossbar.protocol import _log, _refuse, dispatch

if TYPE_CHECKING:
    from broker.router.state import NodeState


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


def _make_longpoll_on_message(state: NodeState) -> Any:
    def on_message(self: Any, payload: bytes, isBinary: bool | None) -> None:
        if self._session is None:
            return  # the router session ended (protocol violation); the transport waits to deliver ABORT
        try:
            dispatch(state, self, payload, None)
        except ClientError as error:
            _refuse(state, self, error)
            end_keeping_transport(self)

    return on_message


def end_keeping_transport(self: Any) -> None:
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


def _make_longpoll_queue(state: NodeState, reactor: Clock, original: Any) -> Any:
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
            state.count_rejection("SlowSubscriber")
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


def install(door: Door) -> None:
    """Long-poll sessions open, are checked like WebSocket ones, and have a bounded queue."""
    lp, lp_receive = longpoll.WampLongPollResourceSession, longpoll.WampLongPollResourceSessionReceive
    lp.onMessage = _make_longpoll_on_message(door.state)  # type: ignore[method-assign]
    longpoll.WampLongPollResource.render_GET = _longpoll_render_get  # type: ignore[method-assign]
    RouterSession.onOpen = _make_router_on_open(RouterSession.onOpen)  # type: ignore[method-assign]
    lp.peer = property(_longpoll_peer)  # type: ignore[attr-defined]
    lp.transport_details = property(_longpoll_transport_details)  # type: ignore[attr-defined]
    lp._broker_slow = False  # type: ignore[attr-defined]
    lp._broker_closing = False  # type: ignore[attr-defined]
    lp_receive.queue = _make_longpoll_queue(door.state, door.reactor, lp_receive.queue)  # type: ignore[method-assign]
    lp_receive._trigger = _make_longpoll_trigger(lp_receive._trigger)  # type: ignore[method-assign]
