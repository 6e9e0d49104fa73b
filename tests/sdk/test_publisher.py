"""Both publishers against a fake node on 127.0.0.1: what they send, what they retry,
and what they raise. Every test runs for ``Publisher`` and ``AsyncPublisher``."""

from __future__ import annotations

import re
import ssl
from collections.abc import Callable
from dataclasses import replace

import pytest

from broker.client import (
    BadRequest,
    Forbidden,
    IdempotencyMismatch,
    Published,
    PublishError,
    RateLimited,
    Replayed,
    TooLarge,
    Unauthenticated,
    Unavailable,
    UnsupportedMediaType,
)
from tests.sdk.conftest import Client
from tests.sdk.fakenode import FIRST_ID, KEY_ID, FakeNode, Reply, error

MakeClient = Callable[..., Client]
StartFake = Callable[..., FakeNode]


def test_publish_sends_one_signed_json_request(client: MakeClient, fake: StartFake) -> None:
    node = fake()
    published = client(node.url).publish("public.x", {"n": 1, "s": "é"})
    assert published == Published("public.x", FIRST_ID)
    [request] = node.requests
    assert (request.method, request.path) == ("POST", "/api/publish")
    assert request.headers["content-type"] == "application/json"
    assert request.headers["content-length"] == str(len(request.body))
    assert request.headers["connection"] == "close"
    assert request.headers["x-broker-key"] == KEY_ID
    assert "origin" not in request.headers
    assert request.signature_verifies()
    body = request.json
    assert set(body) == {"topic", "data", "idempotency_key"}
    assert (body["topic"], body["data"]) == ("public.x", {"n": 1, "s": "é"})
    assert re.fullmatch(r"[0-9a-f]{32}", body["idempotency_key"])


def test_each_call_gets_its_own_idempotency_key_unless_given(client: MakeClient, fake: StartFake) -> None:
    node = fake()
    publisher = client(node.url)
    publisher.publish("a", 1)
    publisher.publish("a", 1)
    publisher.publish("a", 1, idempotency_key="order-42")
    keys = [request.json["idempotency_key"] for request in node.requests]
    assert keys[0] != keys[1] and keys[2] == "order-42"


def test_a_base_url_path_prefix_is_requested_and_signed(client: MakeClient, fake: StartFake) -> None:
    node = fake()
    client(node.url + "/broker/").publish("a", 1)
    [request] = node.requests
    assert request.path == "/broker/api/publish"
    assert request.signature_verifies()


def test_publish_many_sends_one_batch_in_order(client: MakeClient, fake: StartFake) -> None:
    node = fake()
    published = client(node.url).publish_many([("a", 1), {"topic": "b", "data": 2}, ("c", 3)], "batch-1")
    assert published == [Published("a", FIRST_ID), Published("b", FIRST_ID + 1), Published("c", FIRST_ID + 2)]
    [request] = node.requests
    assert request.json == {
        "events": [{"topic": "a", "data": 1}, {"topic": "b", "data": 2}, {"topic": "c", "data": 3}],
        "idempotency_key": "batch-1",
    }
    assert request.signature_verifies()


def test_503_is_retried_with_the_same_key_and_fresh_signatures(client: MakeClient, fake: StartFake) -> None:
    node = fake(
        error(503, "broker.error.not_ready", "starting", retry_after="1"),
        error(503, "broker.error.not_ready", "starting"),
    )
    publisher = client(node.url)
    assert publisher.publish("a", {"n": 1}) == Published("a", FIRST_ID)
    assert len(node.requests) == 3
    assert len({request.body for request in node.requests}) == 1  # so the same idempotency key
    assert len({request.headers["x-broker-nonce"] for request in node.requests}) == 3
    assert all(request.signature_verifies() for request in node.requests)
    assert publisher.sleeps == [1.0, 0.2]  # Retry-After floors 0.1; then 0.4 * 0.5


def test_a_lost_answer_is_retried_with_the_same_key(client: MakeClient, fake: StartFake) -> None:
    node = fake(Reply(drop=True))  # the fake publishes, then closes without answering
    publisher = client(node.url)
    assert publisher.publish_many([("a", 1)], "k") == [Published("a", FIRST_ID)]  # published once
    assert [request.json["idempotency_key"] for request in node.requests] == ["k", "k"]
    assert publisher.sleeps == [0.1]


@pytest.mark.parametrize(
    ("status", "uri", "cls"),
    [
        (400, "broker.error.bad_request", BadRequest),
        (400, "wamp.error.invalid_uri", BadRequest),
        (401, "broker.error.unauthenticated", Unauthenticated),
        (403, "wamp.error.not_authorized", Forbidden),
        (405, "broker.error.method_not_allowed", PublishError),
        (409, "broker.error.replay", Replayed),
        (413, "broker.error.too_large", TooLarge),
        (415, "broker.error.unsupported_media_type", UnsupportedMediaType),
        (422, "broker.error.idempotency_mismatch", IdempotencyMismatch),
        (429, "broker.error.rate_limited", RateLimited),
        (500, "broker.error.internal", PublishError),
    ],
)
def test_4xx_and_other_errors_are_raised_without_retry(
    client: MakeClient, fake: StartFake, status: int, uri: str, cls: type[PublishError]
) -> None:
    node = fake(error(status, uri, "no", retry_after="7"))
    publisher = client(node.url)
    with pytest.raises(PublishError) as caught:
        publisher.publish("a", 1)
    assert type(caught.value) is cls
    assert (caught.value.status, caught.value.error, caught.value.message) == (status, uri, "no")
    assert len(node.requests) == 1
    assert publisher.sleeps == []
    if isinstance(caught.value, RateLimited):
        assert caught.value.retry_after == 7.0


def test_503_until_retries_run_out_is_unavailable(client: MakeClient, fake: StartFake) -> None:
    node = fake(*[error(503, "broker.error.not_ready", "starting", retry_after="0")] * 3)
    publisher = client(node.url, retries=2)
    with pytest.raises(Unavailable) as caught:
        publisher.publish("a", 1)
    err = caught.value
    assert (err.status, err.error, err.retry_after, err.cause) == (503, "broker.error.not_ready", 0.0, None)
    assert len(node.requests) == 3
    assert publisher.sleeps == [0.1, 0.2]


def test_connection_refused_is_retried_then_unavailable(client: MakeClient, refused_url: str) -> None:
    publisher = client(refused_url, retries=2)
    with pytest.raises(Unavailable) as caught:
        publisher.publish("a", 1)
    assert caught.value.status is None
    assert isinstance(caught.value.cause, ConnectionRefusedError)
    assert caught.value.__cause__ is caught.value.cause
    assert publisher.sleeps == [0.1, 0.2]


def test_a_silent_node_times_out_then_unavailable(client: MakeClient, silent_url: str) -> None:
    publisher = client(silent_url, retries=1, timeout=0.2)
    with pytest.raises(Unavailable) as caught:
        publisher.publish("a", 1)
    assert isinstance(caught.value.cause, TimeoutError)
    assert publisher.sleeps == [0.1]


def test_https_speaks_tls(client: MakeClient, fake: StartFake) -> None:
    node = fake()
    publisher = client(node.url.replace("http://", "https://"), retries=0)
    with pytest.raises(Unavailable) as caught:
        publisher.publish("a", 1)
    assert isinstance(caught.value.cause, ssl.SSLError)  # the plain-HTTP fake cannot answer TLS
    assert node.requests == []


@pytest.mark.parametrize("framing", ["length", "chunked", "eof"])
def test_every_response_framing_is_read(client: MakeClient, fake: StartFake, framing: str) -> None:
    node = fake(
        Reply(framing=framing), replace(error(403, "wamp.error.not_authorized", "no"), framing=framing)
    )
    publisher = client(node.url)
    assert publisher.publish_many([("a", 1), ("b", 2)]) == [
        Published("a", FIRST_ID),
        Published("b", FIRST_ID + 1),
    ]
    with pytest.raises(Forbidden):
        publisher.publish("a", 1)


@pytest.mark.parametrize(
    "reply",
    [
        Reply(body=b"<html>ok</html>"),
        Reply(body=b'{"published": []}'),
        Reply(body=b'{"published": [' + b" " * (2 << 20) + b"]}"),
        Reply(body=b'{"published": [' + b" " * (2 << 20) + b"]}", framing="chunked"),
        Reply(body=b'{"published": [' + b" " * (2 << 20) + b"]}", framing="eof"),
    ],
    ids=["html", "empty", "oversize-length", "oversize-chunked", "oversize-eof"],
)
def test_an_unusable_success_answer_is_a_publish_error(
    client: MakeClient, fake: StartFake, reply: Reply
) -> None:
    node = fake(reply)
    publisher = client(node.url)
    with pytest.raises(PublishError) as caught:
        publisher.publish("a", 1)
    assert type(caught.value) is PublishError
    assert caught.value.status == 200
    assert len(node.requests) == 1


def test_invalid_input_sends_nothing(client: MakeClient, fake: StartFake) -> None:
    node = fake()
    publisher = client(node.url)
    with pytest.raises(BadRequest):
        publisher.publish(12345, 1)
    with pytest.raises(BadRequest):
        publisher.publish_many([])
    with pytest.raises(BadRequest):
        publisher.publish("a", object())
    assert node.requests == []
