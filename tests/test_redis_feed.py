"""The Redis engine's feed bookkeeping (:class:`broker.engines.redis_feed.Feeder`), without Redis.

Why: going past cursors (an append of this node answered, a joining node's
start) drops what the reader had buffered up to there. It looks at the
fewer of the cursors passed and the entries buffered (a node publishing
alone buffers its own entries read back while its call is in flight, and
was scanning all of them on every answer); either way exactly the entries at
or below the cursor go, and what comes after is still fed in order.
"""

from __future__ import annotations

import json

from broker.engines import redis_wire as wire
from broker.engines.redis_feed import Feeder
from broker.history import Appended


def entry(cursor: int, batch: str = "other:1") -> wire.Entry:
    data = json.dumps([[cursor], {}])
    return wire.Entry(batch, cursor, ["s", str(cursor), "p", "1.5", "d", data, "t", "t", "b", batch])


def feeder() -> tuple[Feeder, list[list[int]]]:
    fed: list[list[int]] = []
    feeding = Feeder("e")
    feeding.feed = lambda appended: fed.append([e.cursor for e in appended.events])
    return feeding, fed


def test_advancing_a_few_cursors_past_many_buffered_drops_those_only() -> None:
    feeding, fed = feeder()
    feeding.inflight.add("mine:1")
    feeding.take([entry(c, "mine:1") for c in range(1, 4)] + [entry(c) for c in range(4, 50)])
    feeding.drain()
    assert fed == []  # held behind this node's append in flight
    feeding.inflight.discard("mine:1")
    feeding.advance(3)  # its answer: cursors 1-3 (3 passed, 49 buffered: by range)
    assert sorted(feeding.buffer) == list(range(4, 50))
    assert feeding.fed == 3
    feeding.drain()
    assert fed == [list(range(4, 50))]
    assert feeding.buffer == {}


def test_advancing_far_past_a_few_buffered_drops_them_all() -> None:
    feeding, fed = feeder()
    feeding.take([entry(5), entry(9), entry(1_000_001)])
    feeding.advance(1_000_000)  # a joining node's start (a million passed, 3 buffered: by scan)
    assert sorted(feeding.buffer) == [1_000_001]
    assert (feeding.fed, feeding.read, feeding.top) == (1_000_000, 1_000_001, 1_000_001)
    feeding.drain()
    assert fed == [[1_000_001]]


def test_advancing_backwards_changes_nothing() -> None:
    feeding, _ = feeder()
    feeding.advance(10)
    feeding.take([entry(11), entry(12)])
    feeding.advance(4)
    assert (feeding.fed, sorted(feeding.buffer)) == (10, [11, 12])


def test_the_feed_gets_each_batch_of_entries_as_one_appended() -> None:
    feeding, _ = feeder()
    got: list[Appended] = []
    feeding.feed = got.append
    feeding.take([entry(1, "a:1"), entry(2, "a:1"), entry(3, "b:1")])
    feeding.drain()
    assert [[e.cursor for e in a.events] for a in got] == [[1, 2], [3]]
    assert got[0].events[1].args == [2]
