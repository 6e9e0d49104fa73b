"""The publish resource as an adapter, without a node: the not-ready answer."""

from __future__ import annotations

import json

from twisted.web.test.requesthelper import DummyRequest

from broker.router.publish_api import PublishResource
from broker.router.state import STATE


def test_not_ready_is_503_with_retry_after() -> None:
    assert STATE.session is None and STATE.publish_gate is None  # no component in this process
    request = DummyRequest([b"publish"])
    request.method = b"POST"
    request.path = b"/api/publish"
    body = PublishResource().render(request)
    assert request.responseCode == 503
    assert request.responseHeaders.getRawHeaders(b"retry-after") == [b"1"]
    assert json.loads(body) == {"error": "broker.error.not_ready", "message": "the node is starting"}
