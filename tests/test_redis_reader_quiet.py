"""The Redis engine's log reader waits for its node's appends in flight, then reads on past them.

Why: every append wakes every reader's ``XREAD BLOCK``, this node's too, which
then parsed its own events back from the log only to drop them (a quarter of
the engine's time under load). While an append of this node is in flight the
reader now waits for its answer (0.25 s at most, checked at each answer): the
append's own entries, and the other nodes' entries before them (its gap), come
with the answer, so the next read starts past them. Two stores on one real
Redis are two nodes; the reader is pumped by hand (:class:`tests.redisserver.SocketLink`).
"""

from __future__ import annotations

from collections.abc import Coroutine, Iterator
from typing import Any, NamedTuple

import pytest

from broker.engines.redis import QUIET_WAIT, READ_COUNT, RedisStore
from broker.engines.redis_reader import WAKE_COUNT
from broker.history import Appended, NewEvent, Retention, parse_redis_url
from tests.engines import settle, two_redis_nodes
from tests.redisserver import RedisServer, SocketLink

KEEP = Retention(max_events=100, max_age=3600.0)


class ReadsLink(SocketLink):
    """A link that records where each of its reader's ``XREAD`` starts, and how many entries it asks for."""

    def __init__(self, server: RedisServer) -> None:
        super().__init__(parse_redis_url(server.url))
        self.reads: list[str] = []
        self.counts: list[int] = []

    async def block_read(self, stream: str, after: str, count: int, block_ms: int) -> object:
        self.reads.append(after)
        self.counts.append(count)
        return await super().block_read(stream, after, count, block_ms)


class Pair(NamedTuple):
    """Two nodes on one Redis: ``a``, whose reader feeds ``fed`` over ``link``, and ``b``."""

    a: RedisStore
    link: ReadsLink
    b: RedisStore
    fed: list[Appended]


@pytest.fixture
def pair(redis_server: RedisServer) -> Iterator[Pair]:
    link = ReadsLink(redis_server)
    with two_redis_nodes(redis_server, link) as (a, b):
        fed: list[Appended] = []
        a.subscribe(fed.append)
        yield Pair(a, link, b, fed)


def event(topic: str, n: int) -> list[NewEvent]:
    return [NewEvent(topic, [n], {}, KEEP)]


def test_the_reader_waits_for_its_nodes_append_then_reads_on_past_it(pair: Pair) -> None:
    a, link, b, fed = pair
    assert link.reads == ["0-0"]  # the reader's first XREAD, waiting for the log
    link.hold_scripts = True
    pending = a.append(event("t", 1))
    pending.send(None)  # sent and stored (cursor 1), its answer not read yet
    link.hold_scripts = False
    link.pump()  # that XREAD returns A's own entry; the reader then waits for A's answer
    theirs = settle(b.append(event("t", 2)))  # cursor 2, after A's
    link.pump(3)
    assert link.reads == ["0-0"]  # no read while A's append is in flight
    assert fed == []
    with pytest.raises(StopIteration) as done:
        pending.send(None)
    assert [(e.seq, e.cursor) for e in done.value.value.events] == [(1, 1)]
    link.run_soon()  # the next turn: the reader may read on
    link.pump(2)
    assert link.reads == ["0-0", "1-0", "2-0"]  # past A's own entry (not from 0 again), then B's
    assert fed == [theirs]  # B's event, once, after A's


def test_a_node_that_stays_busy_still_reads_after_the_quiet_wait(pair: Pair) -> None:
    a, link, b, fed = pair
    link.hold_scripts = True
    first = a.append(event("t", 1))
    first.send(None)  # in flight
    second = a.append(event("t", 2))
    second.send(None)  # queued behind it: A stays busy after the first is answered
    link.pump()  # the waiting XREAD returns A's first; the reader waits for A's answers
    theirs = settle(b.append(event("u", 1)))
    a._quiet_since -= QUIET_WAIT  # the reader has waited as long as it may
    with pytest.raises(StopIteration):
        first.send(None)
    link.run_soon()  # the second has the turn (A is still busy); the reader may read on
    link.pump(2)
    assert link.reads == ["0-0", "1-0"]  # read on although A is busy (then waits for it again)
    assert fed == [theirs]
    second.send(None)  # the second's turn: sent, its answer held
    with pytest.raises(StopIteration) as done:
        second.send(None)
    assert [(e.seq, e.cursor) for e in done.value.value.events] == [(2, 3)]


def test_after_reading_only_its_own_entries_the_reader_asks_for_one(pair: Pair) -> None:
    """What wakes a blocked read is most often this node's next append: after a read of its
    own entries only, the next read asks for one entry (WAKE_COUNT), not the whole append
    back; once another node's entry comes, the read after takes the rest at once."""
    a, link, b, fed = pair

    def in_flight(first: int) -> Coroutine[Any, Any, Appended]:
        link.hold_scripts = True
        pending = a.append([NewEvent("t", [n], {}, KEEP) for n in range(first, first + 5)])
        pending.send(None)  # five events stored, the answer not read yet
        link.hold_scripts = False
        return pending

    def answer(pending: Coroutine[Any, Any, Appended]) -> None:
        with pytest.raises(StopIteration):
            pending.send(None)
        link.run_soon()  # the reader may read on

    first = in_flight(0)  # cursors 1-5
    link.pump()  # the waiting XREAD returns all five (A's own)
    assert a._feeder.read == 5
    answer(first)
    link.pump()  # the next read, past them, asks for one entry
    assert (link.reads, link.counts) == (["0-0", "5-0"], [READ_COUNT, WAKE_COUNT])
    second = in_flight(5)  # cursors 6-10: they wake that read
    link.pump()
    assert a._feeder.read == 6  # one of them read back, not five
    theirs = [settle(b.append(event("u", n))) for n in (1, 2, 3)]  # cursors 11-13
    answer(second)
    link.pump(2)  # past A's second: one entry, B's first, another node's
    assert (link.reads[2:], link.counts[2:]) == (["10-0", "11-0"], [WAKE_COUNT, READ_COUNT])
    assert fed == theirs[:1]
    link.pump()  # then the rest at once
    assert fed == theirs
