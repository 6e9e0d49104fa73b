"""Long-poll transport ids name their node; a transport this node does not hold is a JSON 404.

Why: a long-poll session lives in the memory of the node that opened it, so
behind a load balancer every ``/lp/<transport>/...`` request of the session
must reach that node. crossbar 26.10 draws transport ids that say nothing
about their node (``generate_token(1, 12)``), so a proxy cannot route them,
and a request for a transport the node does not hold gets Twisted's 404 HTML
page ("No Such Resource") and an error log line each time, whether the
session expired or the proxy sent it to the wrong node. Broker:

* issues ``<node id>.<random>`` (:func:`broker.core.nodeid.new_transport_id`,
  128 random bits), so docs/operators.md's nginx ``map`` routes the session's
  requests to its node by the path alone; clients only echo the id;
* answers a transport it does not hold with ``404 {"error":
  "broker.error.unknown_transport", "message": ...}`` (CORS as the path's
  other answers). When the id names another node, the message says so and
  the request is counted ``MisroutedLongPoll`` with one warning (the proxy
  is misconfigured); otherwise (closed, expired, never issued) the client
  just opens a new session, and nothing is logged.

A ``debug_transport_id`` in the config (crossbar's fixed id for debugging)
is left as it is. Item 16 of the index in :mod:`broker.router.crossbar`.

Wraps ``crossbar/router/longpoll.py: WampLongPollResourceOpen.render_POST``
(setting the id through crossbar's own ``_debug_transport_id`` for the one
call) and ``WampLongPollResource.getChild``. Tests:
``tests/test_longpoll_sticky.py``, ``tests/test_cluster_longpoll.py``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from crossbar.router import longpoll
from twisted.logger import Logger
from twisted.web.resource import Resource

from broker.core.nodeid import issuing_node, new_transport_id
from broker.errors import UnknownTransport

if TYPE_CHECKING:
    from broker.router.state import NodeState

#: The reason a request for another node's transport is counted under.
MISROUTED: str = "MisroutedLongPoll"

_log = Logger(namespace="broker.hardening")


def unknown_transport_message(transport: str, this_node: str) -> tuple[str, bool]:
    """What a request for ``transport``, which this node does not hold, is told; and whether the
    id names another node (a misrouted request)."""
    issuer = issuing_node(transport)
    if issuer is not None and issuer != this_node:
        return (
            f"long-poll transport {transport!r} was opened on node {issuer!r}, this is node "
            f"{this_node!r}: the proxy must send /lp/{issuer}.*/ to node {issuer!r} "
            "(docs/operators.md, several nodes)",
            True,
        )
    return (
        f"no long-poll transport {transport!r} on this node (closed or expired): open a new one",
        False,
    )


class UnknownTransportResource(Resource):
    """The JSON 404 for a long-poll transport this node does not hold, whatever the method."""

    isLeaf = True

    def __init__(self, parent: Any, message: str) -> None:
        Resource.__init__(self)
        self._parent = parent
        self._message = message

    def render(self, request: Any) -> bytes:
        self._parent._set_standard_headers(request)
        request.setResponseCode(UnknownTransport.http_status)
        request.setHeader(b"content-type", b"application/json")
        return json.dumps({"error": UnknownTransport.wamp_uri, "message": self._message}).encode()


def _make_render_post(state: NodeState, original: Any) -> Any:
    def render_post(self: Any, request: Any) -> bytes:
        resource = self._parent
        if resource._debug_transport_id:
            return original(self, request)  # type: ignore[no-any-return]
        # crossbar's render_POST uses this fixed id when set: set it for this one call
        resource._debug_transport_id = new_transport_id(state.node_id)
        try:
            result: bytes = original(self, request)
        finally:
            resource._debug_transport_id = None
        return result

    return render_post


def _make_get_child(state: NodeState, original: Any) -> Any:
    def get_child(self: Any, name: bytes, request: Any) -> Any:
        transport = name.decode("utf-8", "replace")
        if not transport or transport in self._transports:
            return original(self, name, request)
        message, misrouted = unknown_transport_message(transport, state.node_id)
        if misrouted:
            state.count_rejection(MISROUTED)
            _log.warn(
                "misrouted long-poll request from {peer}: {message}",
                peer=request.getClientIP(),
                message=message,
            )
        return UnknownTransportResource(self, message)

    return get_child


def install(state: NodeState) -> None:
    """Name this node in every transport id it issues, and answer unknown transports in JSON
    (before :mod:`.longpoll_open` and :mod:`.longpoll_origins` wrap ``/open``: their checks run first)."""
    lp_open = longpoll.WampLongPollResourceOpen
    lp_open.render_POST = _make_render_post(state, lp_open.render_POST)  # type: ignore[method-assign]
    lp = longpoll.WampLongPollResource
    lp.getChild = _make_get_child(state, lp.getChild)  # type: ignore[method-assign]
