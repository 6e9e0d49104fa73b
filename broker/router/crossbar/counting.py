"""Counting what crossbar refuses on its own, and following each publication's dispatch.

What crossbar 26.10 does: it refuses failed logins, denied authorizations,
oversized WebSocket messages and foreign-origin handshakes without a trace
Broker could count, and it dispatches a publication to its subscribers in
chunks scheduled through ``txaio``. What Broker does instead: it counts each
refusal (``broker_rejections_total``, as on ``/health``) and replaces the
``txaio`` that ``crossbar.router.broker`` sees with a proxy whose
``add_callbacks`` and ``call_later`` turn each dispatch step into a step of
its publication (:class:`broker.router.metrics.DeliveryTracker`, which counts
deliveries and their latency). Nothing is added per EVENT.

Counted here: failed logins (``RouterSession.onHello``/``onAuthenticate``
answering ``Deny``), denied subscribe/call/register authorizations
(``Router.authorize``; denied publishes are counted by the position hook,
which authorizes every publish already), WebSocket messages over the size
limit (autobahn's ``_max_message_size_exceeded``) and handshakes refused for
their ``Origin`` (``failHandshake``).

Replaces ``crossbar/router/broker.py``'s module global ``txaio``; wraps
``crossbar/router/session.py: RouterSession.onHello`` and ``onAuthenticate``,
``crossbar/router/router.py: Router.authorize``, and
``autobahn/websocket/protocol.py: WebSocketProtocol._max_message_size_exceeded``
and ``failHandshake`` (on crossbar's ``WampWebSocketServerProtocol``).
Tests: ``tests/test_metrics.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

import txaio
from autobahn.wamp.types import Deny
from crossbar.router import broker as crossbar_broker
from crossbar.router.protocol import WampWebSocketServerProtocol
from crossbar.router.router import Router
from crossbar.router.session import RouterSession
from twisted.internet.defer import Deferred

from broker.router.metrics import (
    AUTHENTICATION_FAILED,
    FOREIGN_ORIGIN,
    MESSAGE_TOO_LARGE,
    NOT_AUTHORIZED,
    TRACKER,
)

if TYPE_CHECKING:
    from broker.router.state import NodeState

#: How autobahn words a WebSocket handshake refused for its Origin header (allowed_origins).
_ORIGIN_DENIED: Final = "WebSocket connection denied: origin "


class _Txaio:
    """What ``crossbar.router.broker`` sees as ``txaio``: the real one, two functions wrapped."""

    add_callbacks = staticmethod(TRACKER.add_callbacks)
    call_later = staticmethod(TRACKER.call_later)

    def __getattr__(self, name: str) -> Any:
        value = getattr(txaio, name)
        setattr(self, name, value)  # looked up once: txaio's framework is chosen before the router starts
        return value


def _count_denied_login(result: Any, state: NodeState) -> Any:
    if isinstance(result, Deny):
        state.count_rejection(AUTHENTICATION_FAILED)
    return result


def _counting_login(state: NodeState, original: Callable[..., Any]) -> Callable[..., Any]:
    def login_step(self: Any, *args: Any) -> Any:
        result = original(self, *args)
        if isinstance(result, Deferred):
            return result.addCallback(_count_denied_login, state)
        return _count_denied_login(result, state)

    return login_step


def _count_denied_authorization(authorization: Any, state: NodeState) -> Any:
    if isinstance(authorization, dict) and not authorization.get("allow"):
        state.count_rejection(NOT_AUTHORIZED)
    return authorization


def _counting_authorize(state: NodeState, original: Callable[..., Any]) -> Callable[..., Any]:
    def authorize(self: Any, session: Any, uri: str, action: str, options: Any) -> Any:
        result = original(self, session, uri, action, options)
        if action != "publish":  # publishes: counted by the position hook, once
            result.addCallback(_count_denied_authorization, state)
        return result

    return authorize


def _counting_oversize(state: NodeState, original: Callable[..., Any]) -> Callable[..., Any]:
    def exceeded(self: Any, *args: Any) -> Any:
        state.count_rejection(MESSAGE_TOO_LARGE)
        return original(self, *args)

    return exceeded


def _counting_handshake_failure(state: NodeState, original: Callable[..., Any]) -> Callable[..., Any]:
    # a page whose origin is not in allowed_origins never gets a session: without this
    # count a wrong allowed_origins looks like a quiet node
    def fail(self: Any, reason: str, *args: Any, **kwargs: Any) -> Any:
        if isinstance(reason, str) and reason.startswith(_ORIGIN_DENIED):
            state.count_rejection(FOREIGN_ORIGIN)
        return original(self, reason, *args, **kwargs)

    return fail


def install(state: NodeState) -> None:
    """Hook delivery tracking and refusal counting into crossbar."""
    crossbar_broker.txaio = _Txaio()  # type: ignore[attr-defined,assignment]
    RouterSession.onHello = _counting_login(state, RouterSession.onHello)  # type: ignore[method-assign]
    RouterSession.onAuthenticate = _counting_login(state, RouterSession.onAuthenticate)  # type: ignore[method-assign]
    Router.authorize = _counting_authorize(state, Router.authorize)  # type: ignore[method-assign]
    ws = WampWebSocketServerProtocol
    ws._max_message_size_exceeded = _counting_oversize(state, ws._max_message_size_exceeded)  # type: ignore[method-assign]
    ws.failHandshake = _counting_handshake_failure(state, ws.failHandshake)  # type: ignore[method-assign]
