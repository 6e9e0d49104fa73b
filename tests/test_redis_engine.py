"""The Redis engine's own promises, against a real redis-server: two stores on one Redis are two nodes.

The contract every engine keeps is in tests/test_engine_contract.py and
tests/test_history_stores.py (they run Redis too); this file holds what only
a shared engine has: one epoch and one sequence of positions for every node,
the feed of the batches other nodes append (in cursor order, each once, never
this node's own), and a history that starts afresh when Redis loses its data.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator

import pytest

from broker.core.ratelimit import Quota
from broker.engines.redis import RedisStore
from broker.engines.redis_batcher import MAYBE_STORED
from broker.errors import HistoryUnanswered, IdempotencyMismatch
from broker.history import NO_HISTORY, Appended, NewEvent, Once, Retention
from tests.engines import after, settle
from tests.redisserver import RedisServer, SocketLink, store_link

KEEP = Retention(max_events=100, max_age=3600.0)

Node = Callable[[], tuple[RedisStore, SocketLink]]


@pytest.fixture
def nodes(redis_server: RedisServer) -> Iterator[Node]:
    """Stores on one prefix of the session's Redis: each is one node of a cluster."""
    prefix = f"n{secrets.token_hex(6)}"
    made: list[RedisStore] = []

    def node() -> tuple[RedisStore, SocketLink]:
        link = store_link()
        store = RedisStore(link, prefix=prefix)
        made.append(store)
        return store, link

    yield node
    for store in made:
        store.close()


def batch(*topics: str) -> list[NewEvent]:
    return [NewEvent(topic, [topic, n], {"n": n}, KEEP) for n, topic in enumerate(topics)]


def test_nodes_share_one_epoch_and_one_sequence_of_positions(nodes: Node) -> None:
    a, _ = nodes()
    b, _ = nodes()
    first = settle(a.append(batch("t", "u")))
    second = settle(b.append(batch("t")))
    assert first.epoch == second.epoch == a.epoch == b.epoch
    assert [(e.topic, e.seq, e.cursor) for e in first.events + second.events] == [
        ("t", 1, 1),
        ("u", 1, 2),
        ("t", 2, 3),
    ]
    # recovery answers the same on both
    stored = [*first.events, *second.events]
    assert after(a, lambda t: True, 0, 10) == after(b, lambda t: True, 0, 10) == stored


def test_another_nodes_batches_are_fed_in_cursor_order_with_their_positions(
    nodes: Node,
) -> None:
    a, a_link = nodes()
    b, _ = nodes()
    fed: list[Appended] = []
    a.subscribe(fed.append)
    one = settle(b.append(batch("t", "u")))
    two = settle(b.append(batch("t")))
    a_link.pump()
    assert fed == [one, two]  # one Appended per batch B stored, positions set
    a_link.pump()  # nothing new: nothing fed twice
    assert fed == [one, two]


def test_a_node_never_gets_its_own_batches_back(nodes: Node) -> None:
    a, a_link = nodes()
    b, b_link = nodes()
    fed_a: list[Appended] = []
    fed_b: list[Appended] = []
    a.subscribe(fed_a.append)
    b.subscribe(fed_b.append)
    mine = settle(a.append(batch("t")))
    a_link.pump()
    b_link.pump()
    assert fed_a == []
    assert fed_b == [mine]


def test_another_nodes_earlier_batch_is_fed_before_an_append_returns(
    nodes: Node,
) -> None:
    """Per-topic order: B's t1 must reach A's subscribers before A's own t2 is dispatched."""
    a, a_link = nodes()
    b, _ = nodes()
    fed: list[Appended] = []
    a.subscribe(fed.append)
    theirs = settle(b.append(batch("t")))  # t seq 1; A's reader has not read it yet
    mine = settle(a.append(batch("t")))  # t seq 2
    assert [e.seq for e in mine.events] == [2]
    assert fed == [theirs]  # fed during the append, before it returned
    a_link.pump()
    assert fed == [theirs]  # and not again by the reader


def test_the_reader_feeds_nothing_past_an_append_still_in_flight(nodes: Node) -> None:
    """A's t1 is stored first but its answer is late: B's t2 must wait for it on A."""
    a, a_link = nodes()
    b, _ = nodes()
    fed: list[Appended] = []
    a.subscribe(fed.append)
    a_link.hold_scripts = True
    pending = a.append(batch("t"))
    pending.send(None)  # sent, stored (t seq 1), answer not read yet
    a_link.hold_scripts = False
    theirs = settle(b.append(batch("t")))  # t seq 2
    a_link.pump()  # the reader reads both from the log
    assert fed == []  # B's t2 would overtake A's t1, which A has not dispatched yet
    with pytest.raises(StopIteration) as done:
        pending.send(None)
    assert [(e.seq, e.cursor) for e in done.value.value.events] == [(1, 1)]
    assert fed == []  # still not: the router dispatches A's t1 when the append returns
    a_link.run_soon()  # the next turn
    assert fed == [theirs]


def test_what_the_reader_holds_behind_a_calls_later_batch_is_fed_once_that_is_answered(
    nodes: Node,
) -> None:
    """A call carries A's u and v; v is answered on the next turn. B's w, read meanwhile, waits
    behind v, and is fed on that turn, right after v is answered (not at some later read)."""
    a, a_link = nodes()
    b, _ = nodes()
    fed: list[Appended] = []
    a.subscribe(fed.append)
    a_link.hold_scripts = True
    first = a.append(batch("t"))
    first.send(None)  # sent, its answer not read
    u, v = a.append(batch("u")), a.append(batch("v"))
    u.send(None)
    v.send(None)  # both wait for the call in flight
    with pytest.raises(StopIteration):
        first.send(None)  # answered: u leads the next call
    a_link.hold_scripts = False
    with pytest.raises(StopIteration) as done:
        u.send(None)  # one call with u and v, answered at once; v's answer waits a turn
    assert [(e.topic, e.cursor) for e in done.value.value.events] == [("u", 2)]
    theirs = settle(b.append(batch("w")))  # cursor 4, after A's v
    a_link._step()  # the reader reads u, v and w from the log (the soon calls not run: pump would)
    assert fed == []  # w waits behind v, not answered yet
    a_link.run_soon()  # the next turn: v answered, then w fed
    with pytest.raises(StopIteration) as done:
        v.send(None)
    assert [(e.topic, e.cursor) for e in done.value.value.events] == [("v", 3)]
    assert fed == [theirs]


def test_a_joining_node_feeds_only_what_is_appended_after_it_joins(
    nodes: Node,
) -> None:
    b, _ = nodes()
    settle(b.append(batch("t", "t")))  # before A joins: recovery's business, not the feed's
    a, a_link = nodes()
    fed: list[Appended] = []
    a.subscribe(fed.append)
    later = settle(b.append(batch("t")))
    a_link.pump()
    assert fed == [later]
    assert a.cursor() == 3


def test_a_topic_without_history_goes_through_the_log_only(nodes: Node) -> None:
    """``NO_HISTORY``: a cursor in the shared log, fed to the other node in batch order without a
    seq (no position); no topic stream, seq, trim or recency entry; recovery never returns it, and
    the topics with history keep their gapless seq."""
    a, a_link = nodes()
    b, _ = nodes()
    fed: list[Appended] = []
    a.subscribe(fed.append)
    mixed = [
        NewEvent("t", ["t", 1], {}, KEEP),
        NewEvent("live", ["live", 1], {"n": 1}, NO_HISTORY),
        NewEvent("t", ["t", 2], {}, KEEP),
    ]
    stored = settle(b.append(mixed))
    assert [(e.topic, e.seq, e.cursor, e.args, e.kwargs) for e in stored.events] == [
        ("t", 1, 1, ["t", 1], {}),
        ("live", 0, 2, ["live", 1], {"n": 1}),
        ("t", 2, 3, ["t", 2], {}),
    ]
    assert stored.positions() == [
        {"epoch": stored.epoch, "seq": 1, "cursor": 1},
        None,
        {"epoch": stored.epoch, "seq": 2, "cursor": 3},
    ]
    only = settle(b.append([NewEvent("live", ["live", 2], {}, NO_HISTORY)]))
    assert [(e.seq, e.cursor) for e in only.events] == [(0, 4)]
    a_link.pump()
    assert fed == [stored, only]  # the other node gets both batches, in log order
    mine = settle(a.append(batch("t")))
    assert [(e.seq, e.cursor) for e in mine.events] == [(3, 5)]  # t's seq stays gapless
    # kept nowhere but the log
    e = f"{b._base}:{b.epoch}"
    assert a_link.command("EXISTS", f"{e}:t:live") == 0
    assert a_link.command("HGET", f"{e}:seq", "live") is None
    assert a_link.command("ZSCORE", f"{e}:recent", "live") is None
    assert a_link.command("HGET", f"{e}:trim", "live") is None
    assert a_link.command("XLEN", f"{e}:log") == 5
    # recovery after any cursor ignores it: only t's events, none missing
    assert [(ev.topic, ev.seq) for ev in after(b, lambda t: True, 0, 10) or []] == [
        ("t", 1),
        ("t", 2),
        ("t", 3),
    ]
    assert after(a, lambda t: t == "live", 0, 10) == []
    assert after(a, lambda t: True, 1, 10) == [stored.events[2], mine.events[0]]


def test_a_topic_without_history_takes_no_place_among_max_topics(nodes: Node) -> None:
    """An event kept nowhere evicts nothing: only topics with history count towards max_topics."""
    a, _ = nodes()
    small = RedisStore(store_link(), prefix=a._base.strip("{}"), max_topics=1)
    try:
        settle(small.append(batch("t")))
        settle(small.append([NewEvent(f"live.{n}", [n], {}, NO_HISTORY) for n in range(3)]))
        assert [(e.topic, e.seq) for e in after(small, lambda t: True, 0, 10) or []] == [("t", 1)]
    finally:
        small.close()


def test_a_redis_that_lost_its_data_is_a_new_epoch(nodes: Node) -> None:
    a, a_link = nodes()
    b, b_link = nodes()
    fed: list[Appended] = []
    a.subscribe(fed.append)
    old = settle(a.append(batch("t", "t"))).epoch
    assert settle(b.append(batch("t"))).epoch == old
    a_link.pump()
    for key in b_link.command("KEYS", f"{b._base}*"):  # Redis restarted empty (only this cluster's keys)
        b_link.command("DEL", key)
    fed.clear()
    fresh = settle(b.append(batch("t")))  # B knew the old epoch: it must not be reused
    assert fresh.epoch != old
    assert [(e.seq, e.cursor) for e in fresh.events] == [(1, 1)]  # positions start again
    a_link.pump(2)  # the reader's XREAD on the old log, then the new one
    assert a.epoch == fresh.epoch
    assert fed == [fresh]
    mine = settle(a.append(batch("t")))
    assert (mine.epoch, [(e.seq, e.cursor) for e in mine.events]) == (fresh.epoch, [(2, 2)])


def test_a_nonce_is_claimed_once_on_the_whole_cluster(nodes: Node) -> None:
    """admit: the first node wins the nonce, every other (and a second try) is refused; per key id;
    a key id or nonce holding ':' claims nothing of another's; the claim expires after its ttl."""
    a, a_link = nodes()
    b, _ = nodes()
    assert settle(a.admit("dev", "n1", 30.0)) == 0.0
    assert settle(b.admit("dev", "n1", 30.0)) is None
    assert settle(a.admit("dev", "n1", 30.0)) is None
    assert settle(b.admit("other", "n1", 30.0)) == 0.0  # another key's nonce space
    assert settle(a.admit("a:b", "c", 30.0)) == 0.0
    assert settle(b.admit("a", "b:c", 30.0)) == 0.0
    ttl = a_link.command("PTTL", f"{a._base}:nonce:3:dev:n1")
    assert 29_000 < int(ttl) <= 30_000


def scope(key: str, fingerprint: str = "f1") -> Once:
    return Once("dev", key, fingerprint, 3600.0)


def test_an_idempotency_scope_appends_once_whichever_node_runs_it(nodes: Node) -> None:
    """The second append under a scope (another node, same body) appends nothing and answers the
    first one's epoch and positions; no node is fed anything for it; the scope expires after its ttl."""
    a, a_link = nodes()
    b, _ = nodes()
    c, c_link = nodes()
    fed: list[Appended] = []
    c.subscribe(fed.append)
    first = settle(a.append(batch("t", "u"), scope("k1")))
    assert first.replayed is False
    again = settle(b.append(batch("t", "u"), scope("k1")))
    assert again.replayed is True
    assert (again.epoch, again.positions()) == (first.epoch, first.positions())
    assert [(e.topic, e.args) for e in again.events] == [(e.topic, e.args) for e in first.events]
    assert settle(a.append(batch("t", "u"), scope("k1"))).replayed is True  # the origin too: no cache here
    c_link.pump()
    assert fed == [first]  # the first append only, once
    assert after(b, lambda t: True, 0, 10) == list(first.events)  # nothing appended twice
    other = settle(b.append(batch("t"), Once("other-key", "k1", "f1", 3600.0)))  # another key id's scope
    assert (other.replayed, [e.seq for e in other.events]) == (False, [2])
    ttl = a_link.command("PTTL", f"{a._base}:once:3:dev:k1")
    assert 3_599_000 < int(ttl) <= 3_600_000


def test_a_scope_reused_with_another_body_is_the_single_node_mismatch(nodes: Node) -> None:
    a, _ = nodes()
    b, _ = nodes()
    settle(a.append(batch("t"), scope("k2", "f1")))
    with pytest.raises(IdempotencyMismatch) as refused:
        settle(b.append(batch("t"), scope("k2", "f2")))
    assert str(refused.value) == "idempotency key 'k2' was already used for a different request"
    assert [e.seq for e in settle(b.append(batch("t"))).events] == [2]  # nothing was appended


def test_a_stored_append_whose_answer_was_lost_is_not_appended_again(nodes: Node) -> None:
    """The hole a per-node cache leaves: A's script ran, its answer never came back (A answered
    503), the client retries with its key on B: B answers A's positions and appends nothing."""
    a, a_link = nodes()
    b, _ = nodes()
    a_link.hold_scripts = True
    pending = a.append(batch("t"), scope("k3"))
    pending.send(None)  # sent and run by Redis; the answer is never read
    with pytest.raises(HistoryUnanswered) as unanswered:
        pending.throw(TimeoutError("the link gave up"))
    maybe = f"the history engine did not answer within 2 s: {MAYBE_STORED}"
    assert str(unanswered.value) == maybe
    retried = settle(b.append(batch("t"), scope("k3")))
    assert retried.replayed is True
    assert [(e.seq, e.cursor) for e in retried.events] == [(1, 1)]
    assert [e.seq for e in after(b, lambda t: True, 0, 10) or []] == [1]


def test_a_scope_with_no_event_to_keep_is_still_claimed_once(nodes: Node) -> None:
    """A batch whose events keep no history appends nothing, but its scope is recorded: a retry
    elsewhere is a replay (with no positions), not a second publish."""
    a, _ = nodes()
    b, _ = nodes()
    assert settle(a.append([], scope("k4"))) == Appended(a.epoch, ())
    assert settle(b.append([], scope("k4"))) == Appended(a.epoch, (), replayed=True)  # the first epoch
    with pytest.raises(IdempotencyMismatch):
        settle(b.append([], scope("k4", "f2")))
    assert settle(b.append(batch("t"))).events[0].cursor == 1  # no cursor was used


def test_a_keys_rate_limit_is_one_bucket_for_the_cluster(nodes: Node) -> None:
    """A burst of 3 at 0.5/s shared by two nodes: the 4th request, on either node, waits 2 s; another
    key is unaffected; time refills it; a replayed nonce takes no token; more than the burst is inf."""
    now = [1000.0]
    prefix = f"n{secrets.token_hex(6)}"
    a = RedisStore(store_link(), prefix=prefix, clock=lambda: now[0])
    b = RedisStore(store_link(), prefix=prefix, clock=lambda: now[0])
    try:
        quota = Quota(per_second=0.5, burst=3, count=1)
        assert [settle(s.admit("dev", f"n{i}", 60.0, quota)) for i, s in enumerate([a, b, a])] == [0.0] * 3
        assert settle(b.admit("dev", "n3", 60.0, quota)) == 2.0
        assert settle(a.admit("dev", "n4", 60.0, quota)) == 2.0
        assert settle(a.admit("other", "n5", 60.0, quota)) == 0.0  # a bucket per key id
        assert settle(b.admit("dev", "n0", 60.0, quota)) is None  # a replay: refused before the bucket
        now[0] += 1.0
        assert settle(b.admit("dev", "n6", 60.0, quota)) == 1.0
        now[0] += 1.0
        assert settle(b.admit("dev", "n7", 60.0, quota)) == 0.0
        assert settle(a.admit("dev", "n8", 60.0, quota)) == 2.0
        assert settle(a.admit("dev", "n9", 60.0, Quota(0.5, 3, 4))) == float("inf")
        now[0] += 100.0  # refilled, never above the burst
        assert settle(a.admit("dev", "n10", 60.0, Quota(0.5, 3, 3))) == 0.0
        assert settle(a.admit("dev", "n11", 60.0, quota)) == 2.0
    finally:
        a.close()
        b.close()
