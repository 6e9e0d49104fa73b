"""The publish resource as an adapter, without a node: the not-ready answer, a failing admission
(nonce claim and cluster rate limit)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from twisted.python.failure import Failure
from twisted.web.test.requesthelper import DummyRequest

from broker.core.publishing import Admitted, Event
from broker.core.ratelimit import Quota
from broker.engines.memory import MemoryStore
from broker.router.positions import HISTORY_UNAVAILABLE
from broker.router.publish_api import PublishResource, admit
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


class _RedisAway:
    """A shared engine whose Redis does not answer the nonce claim."""

    async def admit(self, key_id: str, nonce: str, ttl: float, quota: Quota | None = None) -> float | None:
        raise ConnectionError("Redis is away")


def test_a_nonce_claim_that_fails_is_503_history_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(STATE, "history", _RedisAway())
    admitted = Admitted("dev", (Event("public.t", 1),), None, "f", "n1")
    coroutine = admit(admitted, 60.0, Quota(1.0, 1, 1))
    with pytest.raises(Exception) as raised:
        coroutine.send(None)
    assert getattr(raised.value, "error", None) == HISTORY_UNAVAILABLE
    status, body = PublishResource()._failed(Failure(raised.value), admitted).answer
    assert status == 503
    assert body["error"] == HISTORY_UNAVAILABLE


def test_a_single_node_engine_grants_the_claim(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(STATE, "history", MemoryStore())  # one node's engine: its journal decides
    coroutine: Any = admit(Admitted("dev", (), None, "f", "n1"), 60.0)
    with pytest.raises(StopIteration):
        coroutine.send(None)


def test_a_wait_with_no_end_is_sent_as_a_retry_after_of_a_day() -> None:
    """A batch larger than the key's burst never fits (``retry_after`` inf): still a JSON 429 with a
    ``Retry-After`` header a client can read, not a failure inside the node."""
    request = DummyRequest([b"publish"])
    answer = (429, {"error": "broker.error.rate_limited", "message": "over"})
    body = PublishResource._send(request, answer, retry_after=float("inf"))
    assert request.responseCode == 429
    assert request.responseHeaders.getRawHeaders(b"retry-after") == [b"86400"]
    assert json.loads(body) == answer[1]
