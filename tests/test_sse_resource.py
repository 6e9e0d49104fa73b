"""``GET /sse`` answers a node that is not ready in the way each client can use, without a node."""

from __future__ import annotations

import json
import warnings

from twisted.web.test.requesthelper import DummyRequest

from broker.errors import NotReady

with warnings.catch_warnings():
    # crossbar imports web3, which imports websockets.legacy: deprecated, not ours to fix
    warnings.filterwarnings("ignore", "websockets.legacy is deprecated", DeprecationWarning)
    from broker.router.sse import _not_ready


def test_a_browser_is_told_to_retry_and_curl_gets_503() -> None:
    browser = DummyRequest([b"sse"])
    browser.requestHeaders.setRawHeaders(b"accept", [b"text/event-stream"])
    body = _not_ready(browser, NotReady("the node is starting or stopping"))
    assert browser.responseCode is None  # left at 200: any other makes an EventSource give up for good
    assert browser.responseHeaders.getRawHeaders(b"content-type") == [b"text/event-stream; charset=utf-8"]
    assert body == (
        b"retry: 2000\n\nevent: closed\n"
        b'data: {"error":"broker.error.not_ready","message":"the node is starting or stopping"}\n\n'
    )
    curl = DummyRequest([b"sse"])
    body = _not_ready(curl, NotReady("the node is starting or stopping"))
    assert curl.responseCode == 503
    assert curl.responseHeaders.getRawHeaders(b"retry-after") == [b"1"]
    assert json.loads(body) == {
        "error": "broker.error.not_ready",
        "message": "the node is starting or stopping",
    }
