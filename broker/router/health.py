"""``GET /health``: 200 once Broker's component is serving, 503 before.

Tests and process supervisors wait on this instead of sleeping.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.web.resource import Resource

from broker.router.state import STATE


class HealthResource(Resource):
    """Readiness of the node as JSON."""

    isLeaf = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        Resource.__init__(self)

    def render_GET(self, request: Any) -> bytes:
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"cache-control", b"no-store")
        if not STATE.ready:
            request.setResponseCode(503)
            return json.dumps({"status": "starting"}).encode()
        return json.dumps({"status": "ready", "rejections": STATE.rejections}).encode()
