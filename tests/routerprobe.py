"""A web resource inside a test node's router worker: counts authorizations, feeds remote events.

Loaded by tests/test_engine_seam.py at ``/probe`` (a node's config names it by
``tests.routerprobe.RouterProbe``). Why inside the node: what it observes —
how often crossbar's ``Router.authorize`` runs per publish, and what a
subscriber receives for an event another process appended — exists only in
the router worker.

- ``GET /probe/authorizations?uri=<topic>``: ``{"publish": n, "subscribe": m, ...}``,
  the ``Router.authorize`` calls for that URI since the probe was created.
- ``POST /probe/feed`` with ``{"topic", "seq", "cursor", "args", "kwargs"}``: hands
  one event, with that position in the node's epoch, to the node's local
  delivery exactly as a history engine's feed would (``LocalDelivery.feed``).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

from crossbar.router.router import Router
from twisted.web.resource import Resource

from broker.history import Appended, StoredEvent
from broker.router.state import STATE

#: ``(uri, action) -> calls`` of ``Router.authorize``.
CALLS: Counter[tuple[str, str]] = Counter()


def _counting(original: Any) -> Any:
    def authorize(self: Any, session: Any, uri: str, action: str, options: Any = None) -> Any:
        CALLS[(uri, action)] += 1
        return original(self, session, uri, action, options)

    authorize.counting = True  # type: ignore[attr-defined]
    return authorize


class RouterProbe(Resource):
    """See the module docstring."""

    isLeaf = True

    def __init__(self, *args: Any) -> None:
        Resource.__init__(self)
        if not getattr(Router.authorize, "counting", False):
            Router.authorize = _counting(Router.authorize)  # type: ignore[method-assign]

    def render_GET(self, request: Any) -> bytes:
        uri = request.args.get(b"uri", [b""])[0].decode()
        counts = {action: n for (u, action), n in CALLS.items() if u == uri}
        request.setHeader(b"content-type", b"application/json")
        return json.dumps(counts).encode()

    def render_POST(self, request: Any) -> bytes:
        body = json.loads(request.content.read())
        store, delivery = STATE.history, STATE.delivery
        if store is None or delivery is None:
            request.setResponseCode(503)
            return b'{"fed": false}'
        event = StoredEvent(
            body["topic"], body["seq"], body["cursor"], time.time(), body["args"], body["kwargs"]
        )
        delivery.feed(Appended(store.epoch, (event,)))
        request.setHeader(b"content-type", b"application/json")
        return json.dumps({"fed": True, "epoch": store.epoch}).encode()
