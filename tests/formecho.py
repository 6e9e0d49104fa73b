"""A Twisted resource that answers with the form fields Twisted parsed into ``request.args``.

Mounted by tests beside the publish API (``"type": "resource"`` in a node's
config) to stand for any resource on the same site that reads a POST form.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.web.resource import Resource
from twisted.web.server import Request


class FormEcho(Resource):
    """``POST`` answers ``{field: [values]}`` from ``request.args`` (query and form body), as JSON."""

    isLeaf = True

    def __init__(self, extra: dict[str, Any] | None = None) -> None:
        Resource.__init__(self)

    def render_POST(self, request: Request) -> bytes:
        request.setHeader(b"content-type", b"application/json")
        args = request.args or {}
        return json.dumps({k.decode(): [v.decode() for v in vs] for k, vs in sorted(args.items())}).encode()
