"""``GET /health``: 200 once the node serves everything it is configured to, 503 before.

Tests and process supervisors wait on this instead of sleeping. Ready means
Broker's component has joined *and* every web path of the config is attached
(:mod:`broker.router.readiness`): crossbar attaches ``/ws`` after ``/health``.
The answer names the node (``node_id``: ``BROKER_NODE_ID`` from the
environment, else an id drawn at start; :attr:`~broker.router.state.NodeState.node_id`), so whoever
waits on it can tell its own node from another one answering on the same
address.

Once ready, a history engine that cannot store or share events (Redis away:
:meth:`broker.history.HistoryStore.problem`) makes it 503 ``{"status":
"unavailable", "problem": ...}``: publishes are being refused, so a load
balancer should send none here; it says ready again by itself once the
engine is back.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.web.resource import Resource

from broker.router.readiness import pending_paths
from broker.router.state import STATE


class HealthResource(Resource):
    """Readiness of the node as JSON."""

    isLeaf = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        Resource.__init__(self)

    def render_GET(self, request: Any) -> bytes:
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"cache-control", b"no-store")
        pending = pending_paths()
        node_id = STATE.node_id
        if not STATE.ready or pending:
            request.setResponseCode(503)
            return json.dumps({"status": "starting", "node_id": node_id, "pending_paths": pending}).encode()
        problem = None if STATE.history is None else STATE.history.problem()
        if problem is not None:
            request.setResponseCode(503)
            body = {"status": "unavailable", "node_id": node_id, "problem": f"history engine: {problem}"}
            return json.dumps({**body, "rejections": STATE.rejections}).encode()
        return json.dumps({"status": "ready", "node_id": node_id, "rejections": STATE.rejections}).encode()
