"""The backoff schedule and one call's retry decisions, without sockets."""

from __future__ import annotations

import json

import pytest

from broker.client.core import Call, Response, Settings
from broker.client.errors import Unavailable
from broker.client.retry import Backoff, parse_retry_after
from tests.sdk.fakenode import KEY_ID, SECRET, Request


def test_delays_double_from_base_up_to_cap_times_the_draw() -> None:
    backoff = Backoff(base=0.2, cap=5.0)
    assert [backoff.delay(n, 0.5) for n in range(7)] == [0.1, 0.2, 0.4, 0.8, 1.6, 2.5, 2.5]
    assert [backoff.delay(n, 0.0) for n in range(3)] == [0.0, 0.0, 0.0]


def test_full_jitter_stays_below_the_ceiling() -> None:
    backoff = Backoff(base=1.0, cap=4.0)
    assert backoff.delay(1, 0.999) < 2.0
    assert backoff.delay(9, 0.999) < 4.0


def test_retry_after_is_a_floor() -> None:
    backoff = Backoff(base=0.2, cap=5.0)
    assert backoff.delay(0, 0.5, floor=3.0) == 3.0
    assert backoff.delay(6, 0.9, floor=1.0) == 4.5
    assert backoff.delay(0, 0.5, floor=None) == 0.1


@pytest.mark.parametrize(("base", "cap"), [(-0.1, 5.0), (6.0, 5.0), (0.2, float("inf")), (float("nan"), 1.0)])
def test_invalid_backoff_is_refused(base: float, cap: float) -> None:
    with pytest.raises(ValueError):
        Backoff(base, cap)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("3", 3.0), (" 7 ", 7.0), ("0", 0.0), (None, None), ("", None), ("-1", None), ("1.5", None),
     ("Wed, 21 Oct 2015 07:28:00 GMT", None), ("\u00b2", None), ("9999999999", None)],
)  # fmt: skip
def test_retry_after_header(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value) == seconds


def settings(retries: int, draws: list[float]) -> Settings:
    return Settings.create(
        "http://127.0.0.1:9", KEY_ID, SECRET,
        timeout=1.0, retries=retries, backoff=0.2, max_backoff=5.0, rng=iter(draws).__next__,
    )  # fmt: skip


NOT_READY = json.dumps({"error": "broker.error.not_ready", "message": "starting"}).encode()


def test_each_attempt_is_signed_afresh_over_the_same_body() -> None:
    call = Call(settings(3, []), b'{"topic":"a","data":1,"idempotency_key":"k"}', 1)
    first, second = call.headers(), call.headers()
    assert first["X-Broker-Nonce"] != second["X-Broker-Nonce"]
    assert call.attempts == 2
    for headers in (first, second):
        lower = {k.lower(): v for k, v in headers.items()}
        assert Request("POST", "/api/publish", lower, call.body).signature_verifies()
        assert lower["content-type"] == "application/json"


def test_503_and_lost_answers_are_retried_then_unavailable_names_the_last() -> None:
    call = Call(settings(2, [0.5, 0.25]), b"{}", 1)
    call.headers()
    assert call.answered(Response(503, {"retry-after": "2"}, NOT_READY)) == 2.0
    call.headers()
    assert call.lost(ConnectionResetError("reset")) == 0.2 * 2 * 0.25
    call.headers()
    refused = ConnectionRefusedError("refused")
    with pytest.raises(Unavailable) as caught:
        call.lost(refused)
    err = caught.value
    assert err.status is None and err.error is None and err.retry_after is None
    assert err.cause is refused and err.__cause__ is refused
    assert "gave up after 3 attempts" in err.message and "refused" in err.message


def test_the_last_503_is_reported_when_retries_run_out() -> None:
    call = Call(settings(0, []), b"{}", 1)
    call.headers()
    with pytest.raises(Unavailable) as caught:
        call.answered(Response(503, {"retry-after": "4"}, NOT_READY))
    err = caught.value
    assert (err.status, err.error, err.retry_after, err.cause) == (503, "broker.error.not_ready", 4.0, None)
    assert err.message == "gave up after 1 attempts; last: starting"
