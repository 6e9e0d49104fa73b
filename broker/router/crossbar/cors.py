"""Static files answer cross-origin requests from allowed origins only.

Why: crossbar 26.10's static file service (and its ``json`` value service)
calls ``crossbar.webservice.base.set_cross_origin_headers`` on every ``GET``,
which echoes *any* ``Origin`` with ``Access-Control-Allow-Credentials: true``:
a page on ``http://evil.example`` could read ``/`` and ``/dist/broker.js``
with the visitor's cookies. (``allow_cross_origin: false`` would not help:
files under the directory are served by copies that forget it.) Broker
answers CORS the way long-poll does (:mod:`.longpoll_origins`, item 7):
only an origin the web transport's WebSocket paths allow (their
``allowed_origins``, crossbar's ``*`` where unset; ``null`` only with
``allow_null_origin``) gets ``Access-Control-Allow-Origin: <origin>`` and
``-Allow-Credentials: true``; a foreign origin, or a request without
``Origin``, gets no CORS headers. Every such answer says ``Vary: Origin`` so
no cache hands one origin's answer to another. Broker's own resources
(``/health``, ``/metrics``, ``/api``) never send CORS headers. A live reload
of the origins applies here too (:func:`configure`). Item 10 of the index
in :mod:`broker.router.crossbar`.

Replaces ``crossbar/webservice/base.py: set_cross_origin_headers`` where
``base``, ``static`` and ``misc`` call it, and wraps ``RouterWebService.__init__``
(each web service of a transport: the origins its WebSocket paths allow).
Tests: ``tests/test_cors.py``.
"""

from __future__ import annotations

from typing import Any

from autobahn.util import wildcards2patterns
from crossbar.webservice import base, misc, static

from broker.core.longpoll import websocket_origin_policy
from broker.router.crossbar.longpoll_origins import origin_allowed


class _OriginPolicy:
    """The node's allowed origins, in the form :func:`.longpoll_origins.origin_allowed` reads.

    None allowed until a web service of the node's web transport is created (fail closed).
    """

    _broker_origin_patterns: list[Any] = []  # noqa: RUF012 - replaced as a whole by configure()
    _broker_allow_null_origin = False


POLICY = _OriginPolicy()


def configure(origins: list[str], allow_null: bool) -> None:
    """Allow ``origins`` (crossbar's wildcard syntax) and, if ``allow_null``, the ``null`` origin."""
    POLICY._broker_origin_patterns = wildcards2patterns(origins)
    POLICY._broker_allow_null_origin = allow_null


def allowed(origin: bytes) -> bool:
    """Whether the node's WebSocket paths allow ``origin`` (``GET /sse`` refuses the others)."""
    return origin_allowed(POLICY, origin)


def set_cross_origin_headers(request: Any) -> None:
    """CORS headers for an allowed origin, none for any other (crossbar's function, corrected)."""
    request.setHeader(b"vary", b"Origin")
    origin = request.getHeader(b"origin")
    if origin is None or not origin_allowed(POLICY, origin):
        return
    request.setHeader(b"access-control-allow-origin", origin)
    request.setHeader(b"access-control-allow-credentials", b"true")
    headers = request.getHeader(b"access-control-request-headers")
    if headers is not None:
        request.setHeader(b"access-control-allow-headers", headers)


def _make_service_init(original: Any) -> Any:
    def init(self: Any, transport: Any, *args: Any, **kwargs: Any) -> None:
        original(self, transport, *args, **kwargs)
        config = getattr(transport, "_config", None)
        if isinstance(config, dict):  # each web service of the transport: the same paths
            web = config.get("web", config)  # "universal" transports nest it
            configure(*websocket_origin_policy(web.get("paths", {})))

    return init


def install() -> None:
    """Replace crossbar's CORS function where its web services call it (before transports start)."""
    for module in (base, static, misc):
        module.set_cross_origin_headers = set_cross_origin_headers  # type: ignore[attr-defined]
    service = base.RouterWebService
    service.__init__ = _make_service_init(service.__init__)  # type: ignore[method-assign]
