"""A deadline for HELLO: a WebSocket that never establishes a WAMP session is aborted.

What crossbar 26.10 does: nothing; a WebSocket that never sends HELLO stays
open forever (item 3 of the index in :mod:`broker.router.crossbar`). What
Broker does instead: ``hello_timeout`` seconds after the WebSocket opens
(changed live by :func:`broker.router.crossbar.limits.configure`), a session
that has not joined gets ``ABORT broker.error.hello_timeout`` and close 1008;
the close cancels the timer. The same ``onOpen`` records the socket under the
connection, whose write buffer :mod:`.backpressure` reads.

Wraps ``autobahn/websocket/protocol.py: WebSocketProtocol.onOpen`` and
``onClose`` as crossbar's ``crossbar/router/protocol.py:
WampWebSocketServerProtocol`` inherits them. Tests: ``tests/test_hello_deadline.py``
(fake clock), ``tests/test_hardening.py`` (a real node).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from autobahn.websocket.protocol import WebSocketProtocol
from crossbar.router.protocol import WampWebSocketServerProtocol

from broker.errors import HelloTimeout
from broker.router.crossbar import limits
from broker.router.crossbar.backpressure import _socket_of
from broker.router.crossbar.context import Clock, Door
from broker.router.crossbar.protocol import CLOSE_POLICY_VIOLATION, _log, _refuse, _state, _truncate

if TYPE_CHECKING:
    from broker.router.state import NodeState


def _make_websocket_on_open(state: NodeState, reactor: Clock, hello_timeout: float, original: Any) -> Any:
    def on_open(self: Any) -> None:
        self._broker_socket = _socket_of(self.transport)
        if self._broker_socket is None:
            _log.warn(
                "cannot bound what waits to be sent to {peer}: unknown transport {transport}",
                peer=self.peer,
                transport=type(self.transport).__name__,
            )
        original(self)
        timeout = limits._installed.get("hello_timeout", hello_timeout)  # configure() changes it live
        self._broker_hello_deadline = reactor.callLater(timeout, _hello_deadline, state, self, timeout)

    return on_open


def _hello_deadline(state: NodeState, self: Any, hello_timeout: float) -> None:
    if self.state == WebSocketProtocol.STATE_OPEN and _state(self._session) != "joined":
        error = HelloTimeout(f"no WAMP session established within {hello_timeout:g} s of connecting")
        _refuse(state, self, error)
        self._bailout(CLOSE_POLICY_VIOLATION, reason=_truncate(str(error)))


def _make_websocket_on_close(original: Any) -> Any:
    def on_close(self: Any, wasClean: bool, code: int, reason: str | None) -> None:
        deadline = getattr(self, "_broker_hello_deadline", None)
        if deadline is not None and deadline.active():
            deadline.cancel()
        original(self, wasClean, code, reason)

    return on_close


def install(door: Door) -> None:
    """Start the deadline on every WebSocket that opens, cancel it when it closes."""
    ws = WampWebSocketServerProtocol
    ws.onOpen = _make_websocket_on_open(door.state, door.reactor, door.hello_timeout, ws.onOpen)  # type: ignore[method-assign]
    ws.onClose = _make_websocket_on_close(ws.onClose)  # type: ignore[method-assign]
