"""The publish gate's time-dependent checks on a fake clock, in the order ``admit`` applies them.

The unit tests of :mod:`broker.core.replay`, :mod:`broker.core.ratelimit` and
:mod:`broker.core.idempotency` test each piece alone; these drive the whole gate
(signed requests, one injected clock) at the exact edges: the timestamp window
against a fractional clock, a refused request burning neither its nonce nor a
rate-limit token, replays inside the window and after it, a bucket refilled
over fake time, and an idempotency answer kept through its last second.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from broker.config.settings import parse_settings
from broker.core import signing
from broker.core.idempotency import IdempotencyCache
from broker.core.publishing import PUBLISH_PATH, PublishGate
from broker.core.ratelimit import Quota
from broker.errors import NotAuthorized, RateLimited, Replayed, Unauthenticated
from tests.test_replay import Clock

SECRET = "s" * 32
BODY = json.dumps({"topic": "orders.new", "data": 1}).encode()
OUTSIDE = "outside the allowed window of 60 s"


def make_gate(
    clock: Clock, rate_limit: dict[str, float] | None = None, cluster: bool = False, **limits: Any
) -> PublishGate:
    key: dict[str, Any] = {"secret": "${S}", "topics": [{"uri": "orders.", "match": "prefix"}]}
    if rate_limit is not None:
        key["rate_limit"] = rate_limit
    raw = {"publishers": {"k": key}, "http_publish": {"timestamp_window": 60, **limits}}
    settings = parse_settings(raw, env={"S": SECRET})
    return PublishGate(settings.http_publish, settings.publishers, clock=clock, cluster_rate_limits=cluster)


def headers(timestamp: float, nonce: str, body: bytes = BODY, secret: str = SECRET) -> dict[str, str]:
    nonce = nonce.ljust(16, "_")  # readable labels, padded to the shortest nonce allowed
    signed = signing.sign_headers("k", secret, "POST", PUBLISH_PATH, body, now=timestamp, nonce=nonce)
    return {"content-type": "application/json", **{k.lower(): v for k, v in signed.items()}}


def admit(gate: PublishGate, timestamp: float, nonce: str, body: bytes = BODY, secret: str = SECRET) -> str:
    return gate.admit("POST", PUBLISH_PATH, headers(timestamp, nonce, body, secret), body).key_id


def test_window_edges_against_the_node_clock() -> None:
    clock = Clock(1000.0)
    gate = make_gate(clock)
    assert admit(gate, 1060, "ahead-60") == "k"  # exactly the window ahead: accepted
    exact = rf"^timestamp 1061 is {OUTSIDE} around the node's clock \(1000\)$"
    with pytest.raises(Unauthenticated, match=exact):
        admit(gate, 1061, "ahead-61")
    clock.now = 1100.0
    assert admit(gate, 1040, "behind-60") == "k"  # exactly the window behind: accepted
    with pytest.raises(Unauthenticated, match=OUTSIDE):
        admit(gate, 1039, "behind-61")
    clock.now = 1100.5  # the clock has fractions, timestamps are whole seconds
    with pytest.raises(Unauthenticated, match=OUTSIDE):
        admit(gate, 1040, "behind-60-and-a-half")


def test_signed_before_the_gate_started_is_refused_inside_the_window() -> None:
    """No journal: a timestamp in the window but before the gate's start (whole seconds) could be a replay."""
    clock = Clock(1000.7)
    gate = make_gate(clock)
    with pytest.raises(Unauthenticated, match="before the node's replay memory begins"):
        admit(gate, 999, "n")
    assert admit(gate, 1000, "n") == "k"  # the start's own second is accepted


def test_a_request_refused_for_its_timestamp_does_not_burn_its_nonce() -> None:
    clock = Clock(1000.0)
    gate = make_gate(clock)
    early = headers(1061, "n1")
    with pytest.raises(Unauthenticated, match=OUTSIDE):
        gate.admit("POST", PUBLISH_PATH, early, BODY)
    clock.now = 1001.0
    assert gate.admit("POST", PUBLISH_PATH, early, BODY).key_id == "k"  # the same request, now in time


def test_a_replay_is_refused_through_the_window_then_by_its_timestamp() -> None:
    clock = Clock(1000.0)
    gate = make_gate(clock)
    request = headers(1000, "n1")
    gate.admit("POST", PUBLISH_PATH, request, BODY)
    clock.now = 1060.0  # the window's last second: the nonce is still remembered
    with pytest.raises(Replayed, match="nonce 'n1______________' was already used"):
        gate.admit("POST", PUBLISH_PATH, request, BODY)
    clock.now = 1061.0  # the nonce may be forgotten now; the timestamp check refuses it first
    with pytest.raises(Unauthenticated, match=OUTSIDE):
        gate.admit("POST", PUBLISH_PATH, request, BODY)
    admit(gate, 1061, "n2")  # and a new request expires the old nonce from memory
    assert len(gate.nonces) == 1


def test_full_nonce_memory_refuses_at_its_floor_through_the_gate() -> None:
    clock = Clock(1000.0)
    gate = make_gate(clock, nonce_capacity=100)  # the smallest memory allowed
    clock.now = 1030.0
    for n in range(101):  # the 101st pushes out the oldest (timestamp 1001): the floor is 1001
        admit(gate, 1001 + n // 10, f"n{n}")
    assert len(gate.nonces) == 100
    with pytest.raises(
        Unauthenticated, match=r"^timestamp too old: the replay memory is full, retry with a fresh one$"
    ):
        admit(gate, 1001, "at-the-floor")
    assert admit(gate, 1002, "above-the-floor") == "k"


def test_rate_limit_refills_over_fake_time_up_to_the_burst() -> None:
    clock = Clock(1000.0)
    gate = make_gate(clock, rate_limit={"per_second": 2, "burst": 3})
    for n in range(3):
        admit(gate, 1000, f"burst-{n}")
    with pytest.raises(RateLimited) as refused:
        admit(gate, 1000, "over")
    assert refused.value.retry_after == 0.5
    clock.now = 1000.5  # one token back
    admit(gate, 1000, "refilled")
    with pytest.raises(RateLimited):
        admit(gate, 1000, "over-again")
    clock.now = 1059.0  # idle far longer than the burst needs: still only 3 tokens
    for n in range(3):
        admit(gate, 1059, f"after-idle-{n}")
    with pytest.raises(RateLimited):
        admit(gate, 1059, "over-after-idle")


def test_refused_requests_take_no_rate_limit_token() -> None:
    """The rate limit is the last check: a bad signature, a replay or a topic not granted costs nothing."""
    clock = Clock(1000.0)
    gate = make_gate(clock, rate_limit={"per_second": 1, "burst": 1})
    with pytest.raises(Unauthenticated, match="signature does not match"):
        admit(gate, 1000, "bad-signature", secret="wrong" * 8)
    with pytest.raises(Unauthenticated, match=OUTSIDE):
        admit(gate, 1061, "too-early")
    forbidden = json.dumps({"topic": "payments.new", "data": 1}).encode()
    with pytest.raises(NotAuthorized, match=r"may not publish to 'payments\.new'"):
        admit(gate, 1000, "not-granted", body=forbidden)
    assert admit(gate, 1000, "first") == "k"  # the one token is still there
    with pytest.raises(Replayed):
        admit(gate, 1000, "first")
    clock.now = 1001.0
    assert admit(gate, 1001, "second") == "k"  # the replay took no token either


def test_with_cluster_rate_limits_the_gate_takes_no_token_and_asks_for_a_quota() -> None:
    """A shared engine keeps the bucket: the gate never refuses on its own (its bucket could refuse
    what the cluster's accepts), and names what the cluster's bucket must give each request."""
    clock = Clock(1000.0)
    gate = make_gate(clock, rate_limit={"per_second": 1, "burst": 1}, cluster=True)
    batch = json.dumps({"events": [{"topic": "orders.new", "data": n} for n in range(3)]}).encode()
    admitted = [gate.admit("POST", PUBLISH_PATH, headers(1000, f"n{n}", batch), batch) for n in range(3)]
    assert [gate.quota(a) for a in admitted] == [Quota(per_second=1, burst=1, count=3)] * 3
    single = make_gate(clock, rate_limit={"per_second": 1, "burst": 1})
    assert single.quota(single.admit("POST", PUBLISH_PATH, headers(1000, "one"), BODY)) is None
    unlimited = make_gate(clock, cluster=True)
    assert unlimited.quota(unlimited.admit("POST", PUBLISH_PATH, headers(1000, "two"), BODY)) is None


def test_idempotency_answer_is_kept_through_its_last_second() -> None:
    clock = Clock(1000.0)
    cache = IdempotencyCache(window=60, capacity=10, clock=clock)
    cache.begin(("k", "key"), "fp")
    cache.finish(("k", "key"), (200, {"ids": [1]}), keep=True)
    clock.now = 1060.0  # created exactly one window ago: still answered
    entry = cache.begin(("k", "key"), "fp")
    assert entry is not None and entry.answer == (200, {"ids": [1]})
    clock.now = 1060.001
    assert cache.begin(("k", "key"), "fp") is None  # expired: a repeat publishes again
    assert len(cache) == 1


def test_idempotency_keeps_a_pending_request_with_waiters_past_the_window() -> None:
    clock = Clock(1000.0)
    cache = IdempotencyCache(window=60, capacity=10, clock=clock)
    cache.begin(("k", "slow"), "fp")
    entry = cache.begin(("k", "slow"), "fp")
    assert entry is not None
    got: list[object] = []
    entry.waiters.append(got.append)
    clock.now = 2000.0
    again = cache.begin(("k", "slow"), "fp")
    assert again is entry  # not dropped: someone waits on it, and a repeat must not publish twice
    cache.finish(("k", "slow"), (200, {"ids": [7]}), keep=True)
    assert got == [(200, {"ids": [7]})]
