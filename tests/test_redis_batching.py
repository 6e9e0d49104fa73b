"""The Redis engine's group commit and honest refusals, against a real redis-server.

A node keeps one ``APPEND`` call in flight; the appends that arrive meanwhile
share the next call (:mod:`broker.engines.redis_batcher`), each with its own
answer. A queue that cannot be answered in time is refused before anything is
sent ("not stored", for certain); a call that was sent and not answered says
the event may have been stored. Each test drives the appends' coroutines by
hand over :class:`tests.redisserver.SocketLink` (``hold_scripts``: a call
sent and not yet answered), counting the script calls Redis received.
"""

from __future__ import annotations

import types
from collections.abc import Coroutine, Iterator, Sequence
from typing import Any

import pytest
from autobahn.wamp.exception import ApplicationError
from twisted.python.failure import Failure

from broker.core.publishing import Event
from broker.engines import redis as engine
from broker.engines.memory import MemoryStore
from broker.engines.redis import RedisStore
from broker.engines.redis_batcher import MAYBE_STORED, NOT_STORED, Batcher, Pending
from broker.engines.redis_wire import NotSent
from broker.errors import HistoryUnanswered, HistoryUnavailable, IdempotencyMismatch
from broker.history import Appended, NewEvent, Once, Retention, parse_redis_url
from broker.history.policy import HistoryPolicy
from broker.router import positions
from broker.router.publish_api import RETRY_ONCE, publish_all
from broker.router.state import STATE
from tests.engines import after, settle, two_redis_nodes
from tests.redisserver import RedisServer, SocketLink
from tests.test_publish_batch import Recorder

KEEP = Retention(max_events=100, max_age=3600.0)
UNANSWERED = f"the history engine did not answer within 2 s: {MAYBE_STORED}"


class CountingLink(SocketLink):
    """A real link that counts the script calls it sends; ``fail`` raises that error instead of
    answering (``sent``: after sending the call, as a timeout does; else before, as NotSent)."""

    def __init__(self, server: RedisServer) -> None:
        super().__init__(parse_redis_url(server.url))
        self.calls = 0
        self.fail: BaseException | None = None
        self.sent = True

    async def script(self, source: str, keys: Sequence[str], args: Sequence[str]) -> Any:
        if self.fail is not None and not self.sent:
            raise self.fail
        self.calls += 1
        reply = await super().script(source, keys, args)
        if self.fail is not None:
            raise self.fail
        return reply


@pytest.fixture
def pair(redis_server: RedisServer) -> Iterator[tuple[RedisStore, CountingLink, RedisStore]]:
    """A node under test (counting its calls) and another node on the same prefix."""
    link = CountingLink(redis_server)
    with two_redis_nodes(redis_server, link, timeout=2.0, queue_events=3) as (store, other):
        yield store, link, other


def one(topic: str, n: int = 0) -> list[NewEvent]:
    return [NewEvent(topic, [n], {}, KEEP)]


def step(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Resume ``coroutine`` once: its result if it finished (its exception raised), else None."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    return None


def positions_of(appended: Appended) -> list[tuple[str, int, int]]:
    return [(e.topic, e.seq, e.cursor) for e in appended.events]


def start_held(store: RedisStore, link: CountingLink) -> tuple[Coroutine[Any, Any, Any], list[Any]]:
    """A first append sent and unanswered, and two more queued behind it (not sent)."""
    link.hold_scripts = True
    first = store.append(one("t", 1))
    assert step(first) is None  # sent; its answer not read
    queued = [store.append(one("u", 2)), store.append(one("t", 3))]
    for coroutine in queued:
        assert step(coroutine) is None  # waiting for the call in flight
    return first, queued


def test_appends_arriving_during_a_call_share_the_next_each_with_its_own_positions(
    pair: tuple[RedisStore, CountingLink, RedisStore],
) -> None:
    store, link, other = pair
    fed: list[Appended] = []
    other.subscribe(fed.append)
    first, queued = start_held(store, link)
    second, third = queued[0], queued[1]
    assert link.calls == 1
    done = step(first)  # answered: its turn passes to the second, which leads the next call
    assert positions_of(done) == [("t", 1, 1)]
    link.hold_scripts = False
    mine = step(second)  # sends one call carrying the second and the third
    assert link.calls == 2
    assert positions_of(mine) == [("u", 1, 2)]
    assert step(third) is None  # answered on the next turn, after the second's caller
    link.run_soon()
    theirs = step(third)
    assert positions_of(theirs) == [("t", 2, 3)]
    other._link.pump()  # type: ignore[attr-defined]
    assert fed == [done, mine, theirs]  # one batch each, in cursor order, on the other node
    assert settle(store.append(one("t", 5))).events[0].seq == 3  # the turn is free again
    assert link.calls == 3


def test_the_next_call_goes_out_while_a_calls_batches_are_answered_and_is_answered_after_them(
    pair: tuple[RedisStore, CountingLink, RedisStore],
) -> None:
    """A call of several batches passes the turn on at once, so the next call is sent before
    the call's other batches are answered; that next call's answer still waits for them, even
    on a link that answers at once (this one, once it stops holding scripts)."""
    store, link, _ = pair
    first, (second, third) = start_held(store, link)
    step(first)  # answered: the second leads the next call
    assert step(second) is None  # that call, the second and the third, sent and held
    fourth = store.append(one("t", 4))
    assert step(fourth) is None  # queued behind it
    link.hold_scripts = False
    assert positions_of(step(second)) == [("u", 1, 2)]  # the leader's answer; the turn passed on
    assert step(fourth) is None and link.calls == 3  # its call sent and answered, its answer held
    assert step(third) is None  # answered on the next turn
    link.run_soon()
    assert positions_of(step(third)) == [("t", 2, 3)]
    assert positions_of(step(fourth)) == [("t", 3, 4)]  # only now, after the third
    assert store._feeder.fed == 4


def test_one_batchs_mismatched_key_fails_only_that_batch(
    pair: tuple[RedisStore, CountingLink, RedisStore],
) -> None:
    store, link, other = pair
    settle(other.append(one("k", 0), Once("dev", "key", "f1", 60.0)))
    link.hold_scripts = True
    first = store.append(one("t", 1))
    step(first)
    reused = store.append(one("k", 0), Once("dev", "key", "f2", 60.0))  # another body
    replay = store.append(one("k", 0), Once("dev", "key", "f1", 60.0))  # the same body again
    plain = store.append(one("k", 9))
    for coroutine in (reused, replay, plain):
        assert step(coroutine) is None
    step(first)
    link.hold_scripts = False
    with pytest.raises(IdempotencyMismatch) as refused:
        step(reused)  # leads the call carrying all three; its own answer is the mismatch
    assert str(refused.value) == "idempotency key 'key' was already used for a different request"
    link.run_soon()
    again = step(replay)
    assert again.replayed is True and positions_of(again) == [("k", 1, 1)]
    assert positions_of(step(plain)) == [("k", 2, 3)]
    assert link.calls == 2


def test_a_call_that_fails_unanswered_fails_every_batch_in_it_as_perhaps_stored(
    pair: tuple[RedisStore, CountingLink, RedisStore],
) -> None:
    store, link, other = pair
    first, queued = start_held(store, link)
    step(first)
    link.fail = TimeoutError("the link gave up")  # after sending: Redis runs it, no answer comes
    assert step(queued[0]) is None  # leads the next call: sent, carrying both
    assert link.calls == 2
    with pytest.raises(HistoryUnanswered) as leader:
        step(queued[0])
    assert str(leader.value) == UNANSWERED
    link.run_soon()
    with pytest.raises(HistoryUnanswered) as follower:
        step(queued[1])
    assert str(follower.value) == UNANSWERED
    # it was stored after all: the other node reads both events (the publisher was told it may be)
    assert [(e.topic, e.seq) for e in after(other, lambda t: True, 1, 10) or []] == [("u", 1), ("t", 2)]
    link.fail = None
    link.hold_scripts = False
    assert settle(store.append(one("t", 5))).events[0].seq == 3  # the turn was passed on


def test_a_call_that_never_left_is_not_stored_for_certain(
    pair: tuple[RedisStore, CountingLink, RedisStore],
) -> None:
    store, link, other = pair
    link.fail, link.sent = NotSent("no connection to Redis within 2 s"), False
    with pytest.raises(HistoryUnavailable) as refused:
        settle(store.append(one("t")))
    assert type(refused.value) is HistoryUnavailable
    assert (
        str(refused.value)
        == f"the history engine failed (NotSent: no connection to Redis within 2 s): {NOT_STORED}"
    )
    assert link.calls == 0
    assert after(other, lambda t: True, 0, 10) == []


def test_a_full_queue_refuses_at_once_and_sends_nothing(
    pair: tuple[RedisStore, CountingLink, RedisStore],
) -> None:
    """queue_events 3: the first is in flight, two wait, a batch of two more would be four."""
    store, link, other = pair
    first, queued = start_held(store, link)
    with pytest.raises(HistoryUnavailable) as refused:
        step(store.append(one("t", 7) + one("u", 8)))
    waiting = "2 events already wait for it (at most 3)"
    assert str(refused.value) == f"the history engine is behind: {waiting}: {NOT_STORED}"
    assert step(store.append(one("u", 9))) is None  # one more still fits
    assert link.calls == 1
    step(first)
    link.hold_scripts = False
    step(queued[0])
    assert link.calls == 2
    assert [e.args for e in after(other, lambda t: True, 0, 10) or []] == [[1], [2], [3], [9]]


def test_a_batch_that_waited_past_its_bound_is_refused_unsent(
    pair: tuple[RedisStore, CountingLink, RedisStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Half the timeout (1 s) waited when its turn comes: refused, and the turn passes on."""
    now = [100.0]
    monkeypatch.setattr(engine, "time", types.SimpleNamespace(monotonic=lambda: now[0]))
    store, link, other = pair
    link.hold_scripts = True
    first = store.append(one("t", 1))
    step(first)
    late = store.append(one("u", 2))
    step(late)
    now[0] += 0.9
    fresh = store.append(one("t", 3))
    step(fresh)
    now[0] += 0.2  # the first answer comes 1.1 s after the second was queued
    step(first)
    link.hold_scripts = False
    with pytest.raises(HistoryUnavailable) as refused:
        step(late)
    assert (
        str(refused.value)
        == f"the history engine is behind: the event waited 1 s without being sent: {NOT_STORED}"
    )
    assert positions_of(step(fresh)) == [("t", 2, 2)]  # handed the turn, sent alone
    assert link.calls == 2
    assert [e.args for e in after(other, lambda t: True, 0, 10) or []] == [[1], [3]]


# -- what the publishers are told ------------------------------------------------


def test_the_wamp_refusal_says_whether_the_event_was_stored() -> None:
    maybe, certain = (
        HistoryUnanswered(UNANSWERED),
        HistoryUnavailable(f"the history engine is behind: x: {NOT_STORED}"),
    )
    assert positions.refusal(Failure(maybe), "t") == UNANSWERED
    assert positions.refusal(Failure(certain), "t") == f"the history engine is behind: x: {NOT_STORED}"
    assert positions.refusal(Failure(OSError("disk full")), "t") == positions.NOT_STORED


class FailingStore(MemoryStore):
    """A store whose append raises :attr:`error`."""

    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    async def append(self, batch: Sequence[NewEvent], once: Once | None = None) -> Appended:
        raise self.error


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (HistoryUnanswered(UNANSWERED), f"{UNANSWERED}; {RETRY_ONCE}"),
        (
            HistoryUnavailable(f"the history engine is behind: x: {NOT_STORED}"),
            f"the history engine is behind: x: {NOT_STORED}",
        ),
        (OSError("disk full"), positions.NOT_STORED),
    ],
)
def test_the_http_refusal_says_whether_the_batch_was_stored(error: Exception, message: str) -> None:
    saved = (STATE.history, STATE.history_policies, STATE.message_limit, STATE.stopping)
    STATE.history, STATE.history_policies = FailingStore(error), (HistoryPolicy("", "prefix", KEEP),)
    STATE.message_limit, STATE.stopping = 65536, False
    try:
        with pytest.raises(ApplicationError) as caught:
            settle(publish_all(Recorder(), (Event("public.a", 1),)))  # type: ignore[arg-type]
    finally:
        STATE.history, STATE.history_policies, STATE.message_limit, STATE.stopping = saved
    assert (caught.value.error, caught.value.args[0]) == ("broker.error.history_unavailable", message)


# -- the queue itself (pure) ------------------------------------------------------


def pending(n: int, since: float = 0.0, events: int = 1) -> Pending:
    return Pending(f"node:{n}", one("t") * events, [], None, since)


def test_a_call_carries_at_most_group_events_but_always_its_first_batch() -> None:
    queue = Batcher(1.0, group_events=4)
    assert queue.enqueue(pending(0, events=9)) is False  # nothing in flight: it leads
    for n in range(1, 7):
        assert queue.enqueue(pending(n)) is True
    assert [p.batch_id for p in queue.take()] == ["node:0"]  # larger than a call: alone
    assert [p.batch_id for p in queue.take()] == ["node:1", "node:2", "node:3", "node:4"]
    assert queue.release() is queue.queue[0]  # the turn goes to the next waiting batch
    assert [p.batch_id for p in queue.take()] == ["node:5", "node:6"]
    assert (queue.release(), queue.busy, queue.queued) == (None, False, 0)


def test_only_the_batches_that_waited_too_long_expire() -> None:
    queue = Batcher(1.0)
    for n, since in enumerate([0.0, 0.5, 1.2]):
        queue.enqueue(pending(n, since))
    assert [p.batch_id for p in queue.expire(1.6)] == ["node:0", "node:1"]  # waited 1.6 s and 1.1 s
    assert [p.batch_id for p in queue.take()] == ["node:2"]
