"""Connection-level limits on crossbar's web transport (:mod:`broker.core.connlimits` has the rules and why).

Autobahn and Twisted do the work a peer asks for, byte by byte: every
WebSocket frame is parsed and handed on whatever it carries, and every byte of
an HTTP request restarts Twisted's idle timer. This module bounds both, with
hooks that run once per frame (a counter) or once per request (a timer):

* **WebSocket frames** (``WampWebSocketServerProtocol``): the frames of one
  message, the rate of control frames, and the frames after the router's own
  close are counted in ``onFrameBegin``. Over a limit, the peer gets close
  1008 with the reason (counted ``FrameFlood``, one log line) and nothing more
  it sends is parsed: its buffered bytes are dropped, its socket is no longer
  read, and ``close_handshake_timeout`` drops the connection (its close reply
  is never read).
* **HTTP requests** (Twisted's ``HTTPChannel`` under crossbar's ``Site``):
  from accept, and from each response on a kept-alive connection, the whole
  next request (headers and body; for a WebSocket, its upgrade request) must
  arrive within ``client_timeout`` seconds, however it trickles. A late one
  gets ``408`` if it had sent part of a request (nothing if it had sent
  nothing, as for an idle timeout), is counted ``RequestTimeout`` and closed.
  On a port with ``max_connections`` (crossbar's ``MaxConnectionsFactory``),
  a new connection that finds every slot taken closes the connection that has
  waited longest (counted ``RequestEvicted``, logged at most every 10 s) and
  takes its place; only when no connection is waiting is it refused, as
  crossbar does. Waiting means: for its HTTP request, or, once it is a
  WebSocket, for its WAMP session to join (``hello_timeout`` bounds that
  wait). Connections that are still handshaking can so never keep an
  established one, or a new one, out.

Items 13 and 14 of the index in :mod:`broker.router.crossbar`. Wraps
``autobahn/websocket/protocol.py: WebSocketProtocol.onFrameBegin``,
``_dataReceived`` and ``onClose`` (on crossbar's ``WampWebSocketServerProtocol``),
``crossbar/router/session.py: RouterSession.onJoin``, ``twisted/web/http.py:
HTTPChannel.connectionMade``, ``allContentReceived``, ``requestDone`` and
``connectionLost``, and ``crossbar/common/twisted/endpoint.py:
MaxConnectionsFactory.buildProtocol``. Tests: ``tests/test_connection_floods.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from autobahn.websocket.protocol import WebSocketProtocol
from crossbar.common.twisted.endpoint import MaxConnectionsFactory
from crossbar.router.protocol import WampWebSocketServerProtocol
from crossbar.router.session import RouterSession
from twisted.logger import Logger
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.web.http import HTTPChannel

from broker.core.connlimits import (
    CONTROL_FRAME_BURST,
    CONTROL_FRAMES_PER_SECOND,
    MAX_FRAGMENTS,
    MAX_FRAMES_AFTER_CLOSE,
    WaitingRoom,
    request_timeout,
    too_many_control_frames,
    too_many_fragments,
)
from broker.core.ratelimit import TokenBucket
from broker.router.crossbar.context import Clock

if TYPE_CHECKING:
    from broker.router.state import NodeState

#: Seconds between two log lines about evicted connections (as crossbar logs refusals).
EVICTION_LOG_INTERVAL: Final = 10.0

_OPEN: Final = WebSocketProtocol.STATE_OPEN
_CLOSING: Final = WebSocketProtocol.STATE_CLOSING
_CLOSE_POLICY_VIOLATION: Final = WebSocketProtocol.CLOSE_STATUS_CODE_POLICY_VIOLATION

_log = Logger(namespace="broker.connections")


# -- WebSocket frames ---------------------------------------------------------------


def _make_frame_begin(
    state: NodeState, original: Callable[[Any], None], clock: Callable[[], float]
) -> Callable[[Any], None]:
    def on_frame_begin(self: Any) -> None:
        original(self)
        if self.state != _OPEN:
            if self.state == _CLOSING:  # the router sent its close frame: the peer is to answer it
                self._broker_after_close += 1
                if self._broker_after_close > MAX_FRAMES_AFTER_CLOSE:
                    _stop_reading(self)
            return
        opcode = self.current_frame.opcode
        if opcode > 7:  # a control frame
            bucket = self._broker_control
            if bucket is None:
                bucket = TokenBucket(CONTROL_FRAMES_PER_SECOND, CONTROL_FRAME_BURST, clock)
                self._broker_control = bucket
            if bucket.take():
                _refuse_frames(state, self, too_many_control_frames())
            return
        fragments = self._broker_fragments + 1 if opcode == 0 else 1  # 0: a continuation frame
        self._broker_fragments = fragments
        if fragments > MAX_FRAGMENTS:
            _refuse_frames(state, self, too_many_fragments())

    return on_frame_begin


def _refuse_frames(state: NodeState, self: Any, reason: str) -> None:
    """Close 1008 with ``reason`` and read nothing more from this peer."""
    state.count_rejection("FrameFlood")
    _log.warn("closing {peer}: {reason}", peer=self.peer, reason=reason)
    self.failedByMe = True  # autobahn then hands nothing more of the current message on
    if self.failByDrop:
        self.dropConnection(abort=True)
    else:
        self.sendCloseFrame(code=_CLOSE_POLICY_VIOLATION, reasonUtf8=reason.encode("utf-8"), isReply=False)
    _stop_reading(self)


def _stop_reading(self: Any) -> None:
    """Parse nothing more this peer sent, and stop reading its socket: reads discarded at line
    rate would still cost the router a syscall per 64 KiB until the close timeout."""
    self._broker_deaf = True
    self.data = b""  # what is buffered after this frame is not parsed
    transport = self.transport
    if transport is not None:
        transport.pauseProducing()


def _make_data_received(original: Callable[[Any, bytes], None]) -> Callable[[Any, bytes], None]:
    def data_received(self: Any, data: bytes) -> None:
        if not self._broker_deaf:
            original(self, data)

    return data_received


# -- HTTP requests ------------------------------------------------------------------


def _attach(room: WaitingRoom[Any], protocol: Any) -> None:
    """Tell the HTTP channel under a newly accepted connection which waiting room it belongs to.

    Under the connection cap's wrapper there may be TLS (itself a
    ``ProtocolWrapper``), then Twisted's HTTP/1.1-or-2 proxy around the channel.
    """
    while isinstance(protocol, ProtocolWrapper):
        protocol = protocol.wrappedProtocol
    channel = getattr(protocol, "_channel", protocol)
    if isinstance(channel, HTTPChannel):
        channel._broker_room = room  # type: ignore[attr-defined]


def _await_request(state: NodeState, channel: Any) -> None:
    """``channel`` waits for a request: it gets ``client_timeout`` seconds for all of it."""
    deadline = channel._broker_deadline
    if deadline is not None and deadline.active():
        deadline.cancel()
    channel._broker_deadline = channel.callLater(channel._broker_timeout, _request_late, state, channel)
    if channel._broker_room is not None:
        channel._broker_room.wait(channel)


def _stop_waiting(channel: Any) -> None:
    deadline = channel._broker_deadline
    if deadline is not None and deadline.active():
        deadline.cancel()
    channel._broker_deadline = None
    if channel._broker_room is not None:
        channel._broker_room.leave(channel)


def _request_late(state: NodeState, channel: Any) -> None:
    channel._broker_deadline = None
    if channel._broker_room is not None:
        channel._broker_room.leave(channel)
    if channel.transport is None:  # the connection became a WebSocket meanwhile
        return
    state.count_rejection("RequestTimeout")
    if channel.requests or channel._buffer:  # part of a request arrived: say why it ends
        body = (request_timeout(channel._broker_timeout) + "\n").encode("utf-8")
        channel.transport.write(
            b"HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
        )
    channel.timeoutConnection()  # what Twisted's idle timeout does: close, abort if that stalls


def _make_connection_made(state: NodeState, original: Callable[[Any], None]) -> Callable[[Any], None]:
    def connection_made(self: Any) -> None:
        original(self)
        if self.timeOut:  # crossbar's Site: the transport's client_timeout
            self._broker_timeout = self.timeOut  # Twisted unsets timeOut while a request is handled
            _await_request(state, self)

    return connection_made


def _make_all_content_received(original: Callable[[Any], None]) -> Callable[[Any], None]:
    def all_content_received(self: Any) -> None:
        _stop_waiting(self)
        transport = self.transport
        original(self)  # renders the resource: a WebSocket upgrade takes the transport now
        if self.transport is None and self._broker_room is not None:
            _await_hello(self._broker_room, transport)

    return all_content_received


def _await_hello(room: WaitingRoom[Any], transport: Any) -> None:
    """A connection that became a WebSocket waits on, until its WAMP session joins.

    Autobahn gives the WebSocket the wrapper that was the channel's transport, or
    the wrapper (the connection cap's) that was that transport's protocol.
    """
    wrapper = transport if isinstance(transport, ProtocolWrapper) else getattr(transport, "protocol", None)
    websocket = getattr(wrapper, "wrappedProtocol", None)
    if isinstance(websocket, WampWebSocketServerProtocol) and websocket.state == _OPEN:
        websocket._broker_room = room  # type: ignore[attr-defined]
        room.wait(websocket)


def _make_session_join(original: Callable[[Any, Any], None]) -> Callable[[Any, Any], None]:
    def on_join(self: Any, details: Any) -> None:
        _leave_room(self._transport)
        original(self, details)

    return on_join


def _make_websocket_close(original: Callable[..., None]) -> Callable[..., None]:
    def on_close(self: Any, wasClean: bool, code: int, reason: str | None) -> None:
        _leave_room(self)
        original(self, wasClean, code, reason)

    return on_close


def _leave_room(websocket: Any) -> None:
    room = getattr(websocket, "_broker_room", None)  # long-poll transports have none
    if room is not None:
        websocket._broker_room = None
        room.leave(websocket)


def _make_request_done(state: NodeState, original: Callable[[Any, Any], None]) -> Callable[[Any, Any], None]:
    def request_done(self: Any, request: Any) -> None:
        if self.persistent and self._broker_timeout and self.transport is not None:
            _await_request(state, self)  # before the next pipelined request, if any, is parsed
        original(self, request)

    return request_done


def _make_connection_lost(original: Callable[[Any, Any], None]) -> Callable[[Any, Any], None]:
    def connection_lost(self: Any, reason: Any) -> None:
        _stop_waiting(self)
        original(self, reason)

    return connection_lost


def _make_build_protocol(
    state: NodeState, original: Callable[[Any, Any], Any], clock: Callable[[], float]
) -> Callable[[Any, Any], Any]:
    def build_protocol(self: Any, addr: Any) -> Any:
        room: WaitingRoom[Any] | None = self.__dict__.get("_broker_room")
        if room is None:
            room = self._broker_room = WaitingRoom()
        if len(self.protocols) >= self.max_connections and (waiting := room.oldest()) is not None:
            _evict(state, self, waiting, clock())
            # the evicted connection still counts until its connectionLost, in the next turn
            protocol = WrappingFactory.buildProtocol(self, addr)
        else:
            protocol = original(self, addr)
        if isinstance(protocol, ProtocolWrapper):  # not refused
            _attach(room, protocol.wrappedProtocol)
        return protocol

    return build_protocol


def _evict(state: NodeState, factory: Any, waiting: Any, now: float) -> None:
    """Close ``waiting`` (an HTTP channel waiting for its request, or a WebSocket for its
    session to join) to make room for a new connection."""
    if isinstance(waiting, HTTPChannel):
        _stop_waiting(waiting)
    else:
        _leave_room(waiting)
    state.count_rejection("RequestEvicted")
    evicted = factory.__dict__.get("_broker_evicted", 0) + 1
    last = factory.__dict__.get("_broker_evicted_logged")
    if last is None or now - last >= EVICTION_LOG_INTERVAL:
        _log.warn(
            "closed {evicted} connection(s) still waiting for their request or WAMP session "
            "to accept new ones: max_connections={max_connections} reached",
            evicted=evicted,
            max_connections=factory.max_connections,
        )
        evicted, factory._broker_evicted_logged = 0, now
    factory._broker_evicted = evicted
    waiting.transport.abortConnection()


def install(state: NodeState, reactor: Clock) -> None:
    """Apply the limits above (``state`` counts what they refuse, ``reactor`` times them)."""
    ws = WampWebSocketServerProtocol
    ws.onFrameBegin = _make_frame_begin(state, ws.onFrameBegin, reactor.seconds)  # type: ignore[method-assign,assignment]
    ws._dataReceived = _make_data_received(ws._dataReceived)  # type: ignore[method-assign,assignment]
    # per-connection state, as class defaults: set on a connection once it needs its own
    ws._broker_fragments = 0  # type: ignore[attr-defined]
    ws._broker_after_close = 0  # type: ignore[attr-defined]
    ws._broker_control = None  # type: ignore[attr-defined]
    ws._broker_deaf = False  # type: ignore[attr-defined]
    ws._broker_room = None  # type: ignore[attr-defined]
    ws.onClose = _make_websocket_close(ws.onClose)  # type: ignore[method-assign]
    RouterSession.onJoin = _make_session_join(RouterSession.onJoin)  # type: ignore[method-assign,assignment]
    channel = HTTPChannel
    channel.connectionMade = _make_connection_made(state, channel.connectionMade)  # type: ignore[method-assign]
    channel.allContentReceived = _make_all_content_received(channel.allContentReceived)  # type: ignore[method-assign]
    channel.requestDone = _make_request_done(state, channel.requestDone)  # type: ignore[method-assign]
    channel.connectionLost = _make_connection_lost(channel.connectionLost)  # type: ignore[method-assign]
    channel._broker_timeout = None  # type: ignore[attr-defined]
    channel._broker_deadline = None  # type: ignore[attr-defined]
    channel._broker_room = None  # type: ignore[attr-defined]
    cap = MaxConnectionsFactory
    cap.buildProtocol = _make_build_protocol(state, cap.buildProtocol, reactor.seconds)  # type: ignore[method-assign]
