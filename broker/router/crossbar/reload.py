"""What a live reload reaches in crossbar: the WebSocket factories and long-poll resources it made.

What crossbar 26.10 does: it builds one autobahn WebSocket factory per
WebSocket path, and one long-poll resource per long-poll path, from the
config it read at start, and never looks at the config again. What Broker
does instead: :func:`install` records each of them as crossbar creates it,
and :func:`apply_origins` (called by :mod:`broker.router.reloader` with a
valid plan) gives them the reloaded allowed origins: the factory's
``setProtocolOptions(allowedOrigins=...)``, the long-poll resources' CORS
(:mod:`.longpoll_origins`) and static files' (:mod:`.cors`).

Wraps ``crossbar/webservice/websocket.py: RouterWebServiceWebSocket.create``
and ``crossbar/webservice/longpoll.py: RouterWebServiceLongPoll.create``.
Tests: ``tests/test_reload_node.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from autobahn.util import wildcards2patterns
from crossbar.webservice import longpoll as webservice_longpoll
from crossbar.webservice import websocket as webservice_websocket

from broker.config.reload import OriginPolicy
from broker.router.crossbar import cors

#: WebSocket path key -> the autobahn factory crossbar made for it.
_websocket_factories: dict[str, Any] = {}
#: Long-poll resources, whose CORS origins follow the WebSocket paths'.
_longpoll_resources: list[Any] = []


def _make_websocket_create(original: Any) -> Any:
    def create(transport: Any, path: str, config: dict[str, Any]) -> Any:
        service = original(transport, path, config)
        _websocket_factories[path] = service._resource._factory
        return service

    return staticmethod(create)


def _make_longpoll_create(original: Any) -> Any:
    def create(transport: Any, path: str, config: dict[str, Any]) -> Any:
        service = original(transport, path, config)
        _longpoll_resources.append(service._resource)
        return service

    return staticmethod(create)


def apply_origins(per_path: Mapping[str, OriginPolicy], origins: list[str], allow_null: bool) -> None:
    """Give every recorded WebSocket factory its path's reloaded origins, and the long-poll
    resources and static files the transport's (``origins``, ``allow_null``)."""
    for key, policy in per_path.items():
        factory = _websocket_factories.get(key)
        if factory is not None:
            factory.setProtocolOptions(
                allowedOrigins=list(policy.allowed_origins), allowNullOrigin=policy.allow_null_origin
            )
    for resource in _longpoll_resources:
        resource._broker_origin_patterns = wildcards2patterns(origins)
        resource._broker_allow_null_origin = allow_null
    cors.configure(origins, allow_null)  # static files' CORS follows them too


def install() -> None:
    """Record the web services crossbar creates (before transports start, after the long-poll
    patches, whose ``create`` this one wraps)."""
    ws = webservice_websocket.RouterWebServiceWebSocket
    ws.create = _make_websocket_create(ws.create)  # type: ignore[method-assign]
    lp = webservice_longpoll.RouterWebServiceLongPoll
    lp.create = _make_longpoll_create(lp.create)  # type: ignore[method-assign]
