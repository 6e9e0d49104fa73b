"""A subscriber that stops reading is let go instead of growing the router without limit.

What crossbar 26.10 does (crossbar issue #874, item 6 of the index in
:mod:`broker.router.crossbar`): everything routed to a WebSocket peer that
stops reading waits in Twisted's user-space write buffer; 3000 events of
64 KB to one such WebSocket grew the router from 139 MB to 347 MB in 2.5 s.

What Broker does instead: after each message sent on a WebSocket, it reads
how many bytes wait for that peer's socket (O(1), it is on the path of every
event) and, beyond ``max_buffer_bytes``
(:func:`broker.core.backpressure.slow_subscriber`), lets the peer go: it counts
``SlowSubscriber``, logs one line (autobahn adds one when it drops the
connection) and discards every later message for that peer. If the kernel
takes the backlog at once, a close frame (1008 and the reason) follows it
and ``close_handshake_timeout`` bounds the wait for the peer; if not, the
connection is dropped, freeing the buffer now. The same hook discards
messages routed to a peer whose WebSocket is already closing: crossbar
still delivers to it until its session detaches, and autobahn's
``Disconnected`` would end crossbar's delivery loop for every subscriber
after it (and log a traceback). Long-poll's receive queue is bounded by
:mod:`.longpoll`. An EVENT that :mod:`.frames` writes itself (the fast path)
does not pass this wrapper: it is sent only to a peer neither let go nor
closing, and the same check follows the write there (calling :func:`_let_go`).

Wraps ``autobahn/wamp/websocket.py: WampWebSocketProtocol.send`` on
``crossbar/router/protocol.py: WampWebSocketServerProtocol``. Tests:
``tests/test_slow_subscriber.py``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from autobahn.websocket.protocol import WebSocketProtocol
from crossbar.router.protocol import WampWebSocketServerProtocol
from twisted.internet.abstract import FileDescriptor
from twisted.protocols.policies import ProtocolWrapper

from broker.core.backpressure import slow_subscriber
from broker.router.crossbar import limits
from broker.router.crossbar.context import Door
from broker.router.crossbar.protocol import CLOSE_POLICY_VIOLATION, _log

if TYPE_CHECKING:
    from broker.router.state import NodeState


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


def slow_stream(transport: Any, default_limit: int) -> str | None:
    """The close reason if more than the slow-subscriber limit waits to be sent on ``transport``
    (an HTTP response's, for ``GET /sse``: :mod:`broker.router.sse`), else None. The limit is
    the one WebSockets are held to, as a live reload last set it."""
    sock = _socket_of(transport)
    if sock is None:
        return None
    return slow_subscriber(_waiting(sock), limits._installed.get("max_buffer_bytes", default_limit))


def _make_websocket_send(state: NodeState, max_buffer_bytes: int, original: Any) -> Any:
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
        if sock is not None:
            bound(state, self, sock, max_buffer_bytes)

    return send


def bound(state: NodeState, protocol: Any, sock: FileDescriptor, default_limit: int) -> None:
    """Let ``protocol`` go if more than the slow-subscriber limit now waits in ``sock``: after
    every message sent to it (autobahn's send, or :mod:`.frames`' write), so O(1), the reason
    built only when over."""
    waiting = len(sock.dataBuffer) - sock.offset + sock._tempDataLen  # as in _waiting()
    limit = limits._installed.get("max_buffer_bytes", default_limit)
    if waiting > limit:
        _let_go(state, protocol, sock, slow_subscriber(waiting, limit) or "")


def _let_go(state: NodeState, self: Any, sock: FileDescriptor, reason: str) -> None:
    """Stop sending to a slow WebSocket: close 1008 if its backlog flushes now, else drop it.

    Either way nothing stays in the router's memory: a backlog the kernel takes
    at once (a burst, or room left in the socket's kernel buffer) is followed
    by the close frame, so a peer that reads on learns why; a backlog it
    refuses would hold the close frame back forever, so dropping frees it.
    """
    self._broker_slow = True
    state.count_rejection("SlowSubscriber")
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


def install(door: Door) -> None:
    """Bound what waits for each WebSocket peer."""
    ws = WampWebSocketServerProtocol
    ws.send = _make_websocket_send(door.state, door.max_buffer_bytes, ws.send)  # type: ignore[method-assign]
    # per-connection state, as class defaults: set on a connection once it is opened or let go
    ws._broker_socket = None  # type: ignore[attr-defined]
    ws._broker_slow = False  # type: ignore[attr-defined]
