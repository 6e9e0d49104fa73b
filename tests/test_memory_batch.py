"""The memory store appends a batch run by run (one topic's events, then trimmed once): the
same events, positions, trims and evictions as appending the batch's events one at a time."""

from __future__ import annotations

import random

from broker.engines.memory import MemoryStore
from broker.history import NewEvent, Retention, StoredEvent
from tests.engines import settle

SMALL, AGED = Retention(max_events=3, max_age=3600.0), Retention(max_events=100, max_age=5.0)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def state(store: MemoryStore) -> tuple[object, ...]:
    topics = {
        name: ([(e.seq, e.cursor, e.args) for e in t.events], t.last_seq, t.last_cursor, t.trimmed_cursor)
        for name, t in store._topics.items()
    }
    return (list(store._topics), topics, store._cursor, store._evicted_cursor)


def test_a_batch_leaves_what_one_append_per_event_leaves() -> None:
    rng = random.Random(16)
    for _ in range(200):
        clocks = Clock(), Clock()
        batched, single = (MemoryStore(clock=c, max_topics=3) for c in clocks)
        for _ in range(4):
            batch = [
                NewEvent(f"public.{rng.randrange(5)}", [rng.random()], {}, rng.choice([SMALL, AGED]))
                for _ in range(rng.randrange(0, 12))
            ]
            together = settle(batched.append(batch))
            one_by_one = [settle(single.append([event])).events[0] for event in batch]
            assert together.events == tuple(one_by_one)
            assert state(batched) == state(single)
            step = rng.choice([0.0, 3.0, 6.0])
            for clock in clocks:
                clock.now += step


def test_an_appended_event_is_a_stored_event_like_any() -> None:
    store = MemoryStore(clock=lambda: 5.0)
    (event,) = settle(store.append([NewEvent("public.a", [1], {"k": 2}, SMALL)])).events
    assert type(event) is StoredEvent
    assert event == StoredEvent("public.a", 1, 1, 5.0, [1], {"k": 2})
    assert repr(event) == repr(StoredEvent("public.a", 1, 1, 5.0, [1], {"k": 2}))
    assert event.position(store.epoch) == {"epoch": store.epoch, "seq": 1, "cursor": 1}
