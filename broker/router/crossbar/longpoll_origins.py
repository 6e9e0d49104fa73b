"""Long-poll answers CORS for the origins the WebSocket paths allow, and refuses the others.

What crossbar 26.10 does (part of item 7 of the index in
:mod:`broker.router.crossbar`): long-poll answers *any* ``Origin`` with
``Access-Control-Allow-Origin: <origin>`` and ``-Allow-Credentials: true``.
What Broker does instead: it allows the origins the web transport's
WebSocket paths allow (their ``allowed_origins``, crossbar's default ``*`` if
unset, same wildcards, :func:`broker.core.longpoll.websocket_origin_policy`):
only those get CORS headers; ``POST /lp/open`` from another origin is refused
with 403 (counted ``ForeignOrigin``); a request without ``Origin`` (not a
browser) is served without CORS headers. The long-poll service also captures
the WebSocket path's ``auth`` for its sessions (:mod:`.longpoll`).

Replaces ``crossbar/router/longpoll.py: WampLongPollResource._set_standard_headers``,
wraps ``WampLongPollResourceOpen.render_POST`` and
``crossbar/webservice/longpoll.py: RouterWebServiceLongPoll.create``.
:func:`origin_allowed` uses autobahn's own origin checks
(``autobahn/websocket/protocol.py: _is_same_origin``), as static files'
CORS does (:mod:`.cors`). Tests: ``tests/test_longpoll.py``, ``tests/test_cors.py``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from autobahn.util import wildcards2patterns
from autobahn.websocket.protocol import _is_same_origin, _url_to_origin
from crossbar.router import longpoll
from crossbar.webservice import longpoll as webservice_longpoll
from twisted.web import http

from broker.core.longpoll import websocket_auth, websocket_origin_policy
from broker.router.crossbar.context import Door
from broker.router.crossbar.protocol import _log

if TYPE_CHECKING:
    from broker.router.state import NodeState


def origin_allowed(resource: Any, origin: bytes) -> bool:
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
    if origin is None or not origin_allowed(self, origin):
        return  # no CORS for non-browsers and foreign origins
    request.setHeader(b"access-control-allow-origin", origin)
    request.setHeader(b"access-control-allow-credentials", b"true")
    request.setHeader(b"vary", b"Origin")
    headers = request.getHeader(b"access-control-request-headers")
    if headers is not None:
        request.setHeader(b"access-control-allow-headers", headers)


def _make_longpoll_open(state: NodeState, original: Any) -> Any:
    def render_post(self: Any, request: Any) -> bytes:
        origin = request.getHeader(b"origin")
        if origin is not None and not origin_allowed(self._parent, origin):
            state.count_rejection("ForeignOrigin")
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


def install_defaults(door: Door) -> None:
    """CORS for allowed origins only (before the limits and ``/open`` checks are installed)."""
    # transports start after components, so every long-poll resource is created after this;
    # one that was not allows no origin (fail closed)
    longpoll.WampLongPollResource._broker_origin_patterns = []  # type: ignore[attr-defined]
    longpoll.WampLongPollResource._broker_allow_null_origin = False  # type: ignore[attr-defined]
    longpoll.WampLongPollResource._set_standard_headers = _longpoll_standard_headers  # type: ignore[method-assign]


def install(door: Door) -> None:
    """The origin check in front of ``/open`` (a foreign origin gets 403 before any other check)
    and the origins captured per long-poll service (after :mod:`.longpoll_limits` and
    :mod:`.longpoll_open` are installed: these wrap theirs)."""
    lp_open = longpoll.WampLongPollResourceOpen
    lp_open.render_POST = _make_longpoll_open(door.state, lp_open.render_POST)  # type: ignore[method-assign]
    lp_service = webservice_longpoll.RouterWebServiceLongPoll
    lp_service.create = _make_longpoll_create(lp_service.create)  # type: ignore[method-assign]
