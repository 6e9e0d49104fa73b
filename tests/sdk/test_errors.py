"""Which exception each answer of the publish API becomes, without sockets."""

from __future__ import annotations

import json

import pytest

import broker.client
from broker.client import (
    BadRequest,
    Forbidden,
    IdempotencyMismatch,
    PublishError,
    RateLimited,
    Replayed,
    TooLarge,
    Unauthenticated,
    Unavailable,
    UnsupportedMediaType,
)
from broker.client.errors import error_from_response

#: Every error status of the API contract, with an error URI the node sends.
CONTRACT = [
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
    (503, "broker.error.not_ready", Unavailable),
    (503, "broker.error.history_unavailable", Unavailable),  # the history engine (Redis) away: retried
]


def body(uri: str, message: str) -> bytes:
    return json.dumps({"error": uri, "message": message}).encode()


@pytest.mark.parametrize(("status", "uri", "cls"), CONTRACT)
def test_each_status_maps_to_its_exception(status: int, uri: str, cls: type[PublishError]) -> None:
    err = error_from_response(status, {}, body(uri, "why"))
    assert type(err) is cls
    assert (err.status, err.error, err.message) == (status, uri, "why")
    assert str(err) == f"HTTP {status} {uri}: why"


@pytest.mark.parametrize("cls", [RateLimited, Unavailable])
def test_retry_after_is_carried(cls: type[RateLimited | Unavailable]) -> None:
    status = 429 if cls is RateLimited else 503
    with_hint = error_from_response(status, {"retry-after": "3"}, body("x.y", "later"))
    without = error_from_response(status, {}, body("x.y", "later"))
    assert isinstance(with_hint, cls) and isinstance(without, cls)
    assert (with_hint.retry_after, without.retry_after) == (3.0, None)


@pytest.mark.parametrize("status", [201, 404, 500, 502, 504])
def test_other_statuses_are_plain_publish_errors(status: int) -> None:
    err = error_from_response(status, {}, body("broker.error.internal", "boom"))
    assert type(err) is PublishError
    assert (err.status, err.error) == (status, "broker.error.internal")


@pytest.mark.parametrize(
    "raw",
    [
        b"<html>403 Forbidden</html>",
        b"",
        b"\xff\xfe",
        b"[1, 2]",
        b'{"error": 1, "message": "m"}',
        b'{"error": "a"}',
    ],
)
def test_a_body_not_in_the_api_shape_keeps_the_class_and_quotes_the_body(raw: bytes) -> None:
    err = error_from_response(403, {}, raw)
    assert type(err) is Forbidden
    assert err.error is None
    assert err.message.startswith("unexpected response ")


def test_a_long_unexpected_body_is_quoted_short() -> None:
    err = error_from_response(502, {}, b"x" * 5000)
    assert type(err) is PublishError
    assert len(err.message) < 300 and err.message.endswith("...'")


def test_a_local_error_has_no_status() -> None:
    err = BadRequest("topic must be a str", error="broker.error.bad_request")
    assert str(err) == "broker.error.bad_request: topic must be a str"
    assert str(PublishError("plain")) == "plain"


def test_every_exception_is_exported_and_a_publish_error() -> None:
    exported = [getattr(broker.client, name) for name in broker.client.__all__]
    errors = [obj for obj in exported if isinstance(obj, type) and issubclass(obj, Exception)]
    assert {cls for _, _, cls in CONTRACT} <= set(errors)
    assert all(issubclass(cls, PublishError) for cls in errors)
