"""A request's nonce and tokens taken by its append's own script call, decided as ``ADMIT`` alone.

On the Redis engine the HTTP API hands a signed request's claim
(:class:`broker.history.Claim`) to the append: one script call instead of an
``ADMIT`` then an ``APPEND``. Against a real redis-server (two stores on one
prefix: two nodes), every refusal must be what the two calls gave: a nonce
already taken, a key over its limit, nothing appended then (no cursor taken,
nothing fed to the other node, no idempotency scope recorded); a call that
fails publishes nothing. And through :func:`broker.router.publish_api.publish_all`:
409 and 429 as before, a request refused before its append admitted alone
first, so a replay is still a replay.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
from autobahn.wamp.exception import ApplicationError

from broker.core.publishing import Admitted, Event
from broker.core.ratelimit import Quota
from broker.engines.redis import RedisStore
from broker.errors import HistoryUnanswered, NotAdmitted, NotReady, RateLimited, Replayed
from broker.history import Appended, Claim, NewEvent, Once, Retention, parse_redis_url
from broker.history.policy import HistoryPolicy
from broker.router.publish_admit import Admission
from broker.router.publish_api import publish_all
from broker.router.state import STATE
from tests.engines import settle
from tests.redisserver import RedisServer, SocketLink
from tests.test_publish_batch import Recorder
from tests.test_redis_batching import CountingLink, one, step

KEEP = Retention(max_events=100, max_age=3600.0)
LIMITED = Quota(per_second=1.0, burst=2, count=1)


@pytest.fixture
def pair(redis_server: RedisServer) -> Iterator[tuple[RedisStore, CountingLink, RedisStore]]:
    """A node under test (counting its calls, its clock fixed) and another on the same prefix."""
    prefix = f"c{secrets.token_hex(6)}"
    link = CountingLink(redis_server)
    store = RedisStore(link, prefix=prefix, timeout=2.0, clock=lambda: 1000.0)
    other = RedisStore(SocketLink(parse_redis_url(redis_server.url)), prefix=prefix, clock=lambda: 1000.0)
    yield store, link, other
    store.close()
    other.close()


def claim(nonce: str, quota: Quota | None = LIMITED, key_id: str = "dev") -> Claim:
    return Claim(key_id, nonce, 60.0, quota)


def refused(
    store: RedisStore, batch: list[NewEvent], with_claim: Claim, once: Once | None = None
) -> float | None:
    """The ``wait`` of the append's refusal (it must be refused)."""
    with pytest.raises(NotAdmitted) as caught:
        settle(store.append(batch, once, with_claim))
    return caught.value.wait


def test_an_append_with_a_claim_is_one_call_and_takes_the_nonce_for_every_node(
    pair: tuple[RedisStore, CountingLink, RedisStore],
) -> None:
    store, link, other = pair
    appended = settle(store.append(one("t", 1), None, claim("n1")))
    assert [(e.seq, e.cursor) for e in appended.events] == [(1, 1)]
    assert link.calls == 1  # not ADMIT then APPEND
    assert settle(other.admit("dev", "n1", 60.0, None)) is None  # another node: a replay
    assert settle(other.admit("dev", "n2", 60.0, None)) == 0.0


def test_a_taken_nonce_appends_nothing_and_is_a_replay(
    pair: tuple[RedisStore, CountingLink, RedisStore],
) -> None:
    store, link, other = pair
    fed: list[Appended] = []
    other.subscribe(fed.append)
    assert settle(other.admit("dev", "n1", 60.0, None)) == 0.0  # another node took it
    assert refused(store, one("t", 1), claim("n1")) is None
    assert link.calls == 1
    assert refused(store, one("t", 2), claim("n1")) is None  # this node's own claim too
    after = settle(store.append(one("t", 3), None, claim("n2")))
    assert [(e.seq, e.cursor) for e in after.events] == [(1, 1)]  # nothing was appended before it
    other._link.pump()  # type: ignore[attr-defined]
    assert [[e.args for e in a.events] for a in fed] == [[[3]]]


def test_rate_limits_decide_as_admit_alone_and_a_refused_batch_takes_no_tokens(
    pair: tuple[RedisStore, CountingLink, RedisStore], redis_server: RedisServer
) -> None:
    store, _, _ = pair
    alone = RedisStore(SocketLink(parse_redis_url(redis_server.url)), prefix="a" + store._base[2:-1])
    alone._clock = lambda: 1000.0
    merged: list[float | str | None] = []
    separate: list[float | str | None] = []
    sequence = [("n1", LIMITED), ("n2", LIMITED), ("n1", LIMITED), ("n3", LIMITED), ("n4", None)]
    for nonce, quota in sequence:
        try:
            settle(store.append(one("t"), None, claim(nonce, quota)))
            merged.append("appended")
        except NotAdmitted as refusal:
            merged.append(refusal.wait)
        wait = settle(alone.admit("dev", nonce, 60.0, quota))
        if wait == 0.0:
            settle(alone.append(one("t")))
        separate.append("appended" if wait == 0.0 else wait)
    alone.close()
    assert merged == separate == ["appended", "appended", None, 1.0, "appended"]
    assert store.cursor() == 3  # the refused ones took no cursor
    over = Quota(per_second=1.0, burst=2, count=5)  # more than the burst: never
    assert refused(store, one("t"), claim("n5", over)) == float("inf")


def test_claims_sharing_a_call_are_each_decided_in_order(
    pair: tuple[RedisStore, CountingLink, RedisStore],
) -> None:
    store, link, _ = pair
    link.hold_scripts = True
    first = store.append(one("t", 1), None, claim("m1"))
    assert step(first) is None  # sent, unanswered
    queued = [
        store.append(one("t", 2), None, claim("m1")),  # m1 again: taken by the call in flight
        store.append(one("u", 3), None, claim("m2")),
        store.append(one("t", 4)),  # a WebSocket publish: no claim
    ]
    for coroutine in queued:
        assert step(coroutine) is None
    assert [(e.seq, e.cursor) for e in step(first).events] == [(1, 1)]
    link.hold_scripts = False
    with pytest.raises(NotAdmitted) as caught:
        step(queued[0])  # led the second call, carrying all three: its own claim refused
    assert caught.value.wait is None
    assert link.calls == 2
    link.run_soon()
    assert [(e.topic, e.seq, e.cursor) for e in step(queued[1]).events] == [("u", 1, 2)]
    assert [(e.topic, e.seq, e.cursor) for e in step(queued[2]).events] == [("t", 2, 3)]


def test_a_refused_claim_records_no_idempotency_scope(
    pair: tuple[RedisStore, CountingLink, RedisStore],
) -> None:
    store, _, other = pair
    once = Once("dev", "k1", "f" * 64, 60.0)
    settle(other.admit("dev", "n1", 60.0, None))
    assert refused(store, one("t", 1), claim("n1"), once) is None
    appended = settle(store.append(one("t", 1), once, claim("n2")))  # the scope was free
    assert not appended.replayed
    assert [(e.seq, e.cursor) for e in appended.events] == [(1, 1)]


def test_a_call_that_fails_after_sending_says_perhaps_stored(
    pair: tuple[RedisStore, CountingLink, RedisStore],
) -> None:
    store, link, _ = pair
    link.fail = TimeoutError("Redis did not answer within 2 s")
    with pytest.raises(HistoryUnanswered):
        settle(store.append(one("t", 1), None, claim("n1")))


# -- through publish_all: the HTTP answers ---------------------------------------


@pytest.fixture
def node(pair: tuple[RedisStore, CountingLink, RedisStore]) -> Iterator[tuple[RedisStore, CountingLink]]:
    store, link, _ = pair
    saved = (STATE.history, STATE.history_policies, STATE.message_limit, STATE.stopping, STATE.publish_gate)
    STATE.history, STATE.history_policies = store, (HistoryPolicy("public.", "prefix", KEEP),)
    STATE.message_limit, STATE.stopping, STATE.publish_gate = 65536, False, None
    yield store, link
    STATE.history, STATE.history_policies, STATE.message_limit, STATE.stopping, STATE.publish_gate = saved


def admission(nonce: str, events: tuple[Event, ...], quota: Quota | None = None) -> Admission:
    return Admission(Admitted("dev", events, None, "f" * 64, nonce), 60.0, quota)


def test_publish_all_takes_the_claim_with_the_append_and_answers_replays_409(
    node: tuple[RedisStore, CountingLink],
) -> None:
    store, link = node
    events = (Event("public.a", 1),)
    (status, _), _ = settle(publish_all(Recorder(), events, None, 0, admission("p1", events)))  # type: ignore[arg-type]
    assert status == 200
    assert link.calls == 1
    recorder = Recorder()
    with pytest.raises(Replayed):
        settle(publish_all(recorder, events, None, 0, admission("p1", events)))  # type: ignore[arg-type]
    assert recorder.delivered == []
    assert store.cursor() == 1


def test_publish_all_answers_a_key_over_its_limit_429_and_delivers_nothing(
    node: tuple[RedisStore, CountingLink],
) -> None:
    events = (Event("public.a", 1),)
    quota = Quota(per_second=1.0, burst=1, count=1)
    settle(publish_all(Recorder(), events, None, 0, admission("r1", events, quota)))  # type: ignore[arg-type]
    recorder = Recorder()
    with pytest.raises(RateLimited) as caught:
        settle(publish_all(recorder, events, None, 0, admission("r2", events, quota)))  # type: ignore[arg-type]
    assert caught.value.retry_after == 1.0
    assert recorder.delivered == []


def test_a_request_refused_before_its_append_is_admitted_alone_first(
    node: tuple[RedisStore, CountingLink],
) -> None:
    store, link = node
    STATE.stopping = True  # refused before anything is appended
    events = (Event("public.a", 1),)
    with pytest.raises(ApplicationError) as caught:
        settle(publish_all(Recorder(), events, None, 0, admission("s1", events)))  # type: ignore[arg-type]
    assert caught.value.error == NotReady.wamp_uri
    assert link.calls == 1  # ADMIT alone: the nonce is taken, as before the merge
    with pytest.raises(Replayed):  # so its replay is a replay, not another refusal
        settle(publish_all(Recorder(), events, None, 0, admission("s1", events)))  # type: ignore[arg-type]
    assert store.cursor() == 0
