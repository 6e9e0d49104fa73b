"""The engine seam's contract, for every engine in ``ENGINES``: batches, snapshots, the feed.

tests/test_history_stores.py holds the per-event contract (positions,
trimming, eviction, persistence); this file holds what the asynchronous,
batch-shaped interface adds, so an engine that does I/O (Redis, next) is
held to the same promises as memory and SQLite.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from broker.core.ratelimit import Quota
from broker.engines import ENGINES
from broker.engines.sqlite import SQLiteStore
from broker.history import Appended, HistoryStore, NewEvent, Once, Retention, Snapshot
from broker.history.recovery import answer as recovery_answer
from broker.history.recovery import recover
from tests.engines import after, append, make, settle

KEEP = Retention(max_events=100, max_age=3600.0)


@pytest.fixture(params=sorted(ENGINES))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[HistoryStore]:
    made = make(request.param, tmp_path, lambda: 1000.0, request=request)
    yield made
    made.close()


def batch(*topics: str) -> list[NewEvent]:
    return [NewEvent(topic, [n], {"n": n}, KEEP) for n, topic in enumerate(topics)]


def test_a_batch_gets_consecutive_positions_in_order(store: HistoryStore) -> None:
    append(store, "a", [], {}, KEEP)
    appended = settle(store.append(batch("a", "b", "a", "c", "a")))
    assert appended.epoch == store.epoch
    assert [(e.topic, e.seq, e.cursor, e.args, e.kwargs) for e in appended.events] == [
        ("a", 2, 2, [0], {"n": 0}),
        ("b", 1, 3, [1], {"n": 1}),
        ("a", 3, 4, [2], {"n": 2}),
        ("c", 1, 5, [3], {"n": 3}),
        ("a", 4, 6, [4], {"n": 4}),
    ]
    assert appended.positions()[0] == {"epoch": store.epoch, "seq": 2, "cursor": 2}
    assert store.cursor() == 6
    # the next batch goes on from there, without a gap
    assert [(e.seq, e.cursor) for e in settle(store.append(batch("b"))).events] == [(2, 7)]


def test_a_batch_is_read_back_as_appended(store: HistoryStore) -> None:
    appended = settle(store.append(batch("x", "y", "x")))
    assert list(after(store, lambda t: True, 0, 10) or []) == list(appended.events)


def test_an_empty_batch_issues_nothing(store: HistoryStore) -> None:
    assert settle(store.append([])) == Appended(store.epoch, ())
    assert store.cursor() == 0


def test_an_idempotency_scope_is_kept_only_by_a_shared_engine(store: HistoryStore) -> None:
    """The same scope twice: an engine of one node appends both times (the node's own idempotency
    cache answers repeats before the engine is asked); a shared one (Redis) appends once and
    answers the second with the first positions. Either way nonces and quotas: one node's engine
    admits everything (its gate decides), a shared one claims and counts."""
    once = Once("dev", "k", "fingerprint", 60.0)
    first = settle(store.append(batch("a"), once))
    second = settle(store.append(batch("a"), once))
    assert first.replayed is False
    quota = Quota(per_second=1.0, burst=1, count=1)
    if store.shared:
        assert (second.replayed, second.positions()) == (True, first.positions())
        assert store.cursor() == 1
        assert [settle(store.admit("dev", "n", 60.0, quota)) for _ in range(2)] == [0.0, None]
        assert settle(store.admit("dev", "m", 60.0, quota)) == 1.0  # the fake clock stands still
    else:
        assert (second.replayed, [e.seq for e in second.events]) == (False, [2])
        assert [settle(store.admit("dev", "n", 60.0, quota)) for _ in range(3)] == [0.0] * 3


def test_a_batch_trims_each_topic_to_its_own_retention(store: HistoryStore) -> None:
    two = Retention(max_events=2, max_age=3600.0)
    settle(store.append([NewEvent("short", [n], {}, two) for n in range(4)] + batch("long", "long", "long")))
    assert [e.args for e in after(store, lambda t: t == "short", 2, 10) or []] == [[2], [3]]
    assert after(store, lambda t: t == "short", 0, 10) is None  # its first two were trimmed
    assert len(after(store, lambda t: t == "long", 0, 10) or []) == 3


def test_a_snapshot_holds_epoch_cursor_and_events_of_one_moment(store: HistoryStore) -> None:
    settle(store.append(batch("a", "b", "a", "b")))
    snapshot = settle(store.read(lambda t: t == "a", 1, 10))
    assert snapshot == Snapshot(store.epoch, 4, snapshot.events)
    assert [e.cursor for e in snapshot.events or []] == [3]
    assert all(e.cursor <= snapshot.cursor for e in snapshot.events or [])
    assert (
        settle(store.read(lambda t: True, 0, 2)).events
        == list(settle(store.read(lambda t: True, 0, 9)).events or [])[:2]
    )


def test_an_engine_feeds_only_what_another_process_appended(store: HistoryStore) -> None:
    fed: list[Appended] = []
    store.subscribe(fed.append)
    settle(store.append(batch("a", "b")))
    append(store, "a", [], {}, KEEP)
    assert fed == []  # the router dispatches its own appends: fed again, they would arrive twice


def test_a_failed_batch_stores_none_of_its_events(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "history.db"))
    try:
        append(store, "a", [], {}, KEEP)
        with pytest.raises(TypeError):  # the second is not JSON: the whole batch is rolled back
            settle(store.append([NewEvent("a", [1], {}, KEEP), NewEvent("b", [object()], {}, KEEP)]))
        assert store.cursor() == 1
        assert [e.cursor for e in after(store, lambda t: True, 0, 10) or []] == [1]
        assert [(e.seq, e.cursor) for e in settle(store.append(batch("a", "b"))).events] == [(2, 2), (1, 3)]
    finally:
        store.close()


class Interleaving:
    """A store where another publish lands between any two of the reader's steps.

    Its snapshot read is atomic (as the contract demands), but a recovery that
    read the epoch, the cursor and the events separately would see events
    appended in between: each ``cursor()`` and each read appends one more.
    """

    def __init__(self, inner: HistoryStore) -> None:
        self.inner = inner
        self.reads = 0

    def _land(self) -> None:
        append(self.inner, "t", ["late"], {}, KEEP)

    @property
    def epoch(self) -> str:
        return self.inner.epoch

    def cursor(self) -> int:
        self._land()
        return self.inner.cursor()

    def problem(self) -> str | None:
        return self.inner.problem()

    async def read(self, topics: Any, cursor: int, limit: int) -> Snapshot:
        self.reads += 1
        self._land()
        snapshot = await self.inner.read(topics, cursor, limit)
        self._land()  # lands while the answer is on its way
        return snapshot


def positions_of(answer: dict[str, Any]) -> Sequence[int]:
    return [event["position"]["cursor"] for event in answer["events"]]


def test_recovery_answers_from_one_snapshot_while_publishes_interleave(store: HistoryStore) -> None:
    settle(store.append(batch("t", "t", "t")))
    racing = Interleaving(store)
    answer = settle(recover(racing, "t", "exact", store.epoch, 1))  # type: ignore[arg-type]
    assert racing.reads == 1
    # the answer's cursor is the last event it holds: nothing in between was skipped or half-seen
    assert positions_of(answer) == [2, 3, 4]
    assert answer["cursor"] == 4
    assert answer["more"] is False
    # resuming from it gets exactly the rest, which is also consistent
    rest = settle(recover(racing, "t", "exact", store.epoch, answer["cursor"]))  # type: ignore[arg-type]
    assert positions_of(rest) == [5, 6]
    assert rest["cursor"] == 6


def test_the_answer_is_the_snapshots_own() -> None:
    snapshot = Snapshot("e1", 9, [])
    assert recovery_answer(snapshot, "e1", 9) == {
        "unrecoverable": False,
        "events": [],
        "more": False,
        "epoch": "e1",
        "cursor": 9,
    }
    assert recovery_answer(snapshot, "e1", 10)["unrecoverable"] is True
    assert recovery_answer(Snapshot("e1", 9, None), "e1", 3)["unrecoverable"] is True
    assert recovery_answer(snapshot, "e0", 3)["reason"] == "epoch changed: the history was reset"


def test_only_an_engine_other_nodes_share_says_it_is_shared(
    store: HistoryStore, request: pytest.FixtureRequest
) -> None:
    """``shared`` makes the router append topics without history too (``NO_HISTORY``, see
    tests/test_redis_engine.py): an engine of one node must say False, so it pays nothing for them."""
    assert store.shared is (request.node.callspec.params["store"] == "redis")


@pytest.mark.parametrize("kind", sorted(ENGINES))
def test_a_batch_trims_and_evicts_as_event_after_event(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Within one batch a topic outgrows its retention and a new topic evicts the least recent one
    (two topics at most): the end state is the one appending event after event gives, whether an
    engine trims and scores each topic once per batch (Redis) or after each event."""
    store = make(kind, tmp_path, lambda: 1000.0, max_topics=2, request=request)
    try:
        two = Retention(max_events=2, max_age=3600.0)
        topics = ["a", "a", "a", "b", "b", "a", "c", "a", "c"]
        appended = settle(store.append([NewEvent(t, [n], {}, two) for n, t in enumerate(topics)]))
        assert [(e.topic, e.seq, e.cursor) for e in appended.events] == [
            ("a", 1, 1), ("a", 2, 2), ("a", 3, 3), ("b", 1, 4), ("b", 2, 5),
            ("a", 4, 6), ("c", 1, 7), ("a", 5, 8), ("c", 2, 9),
        ]  # fmt: skip
        a, b, c = (lambda t: t == "a"), (lambda t: t == "b"), (lambda t: t == "c")
        # c evicted b (last at 5, a at 6): nothing before cursor 5 can be read any more, b is gone
        assert [after(store, a, 2, 10), after(store, b, 3, 10), after(store, c, 0, 10)] == [None] * 3
        assert after(store, b, 5, 10) == []
        assert [e.args for e in after(store, a, 5, 10) or []] == [[5], [7]]  # a keeps its last two
        assert [e.args for e in after(store, c, 5, 10) or []] == [[6], [8]]
        assert store.cursor() == 9
    finally:
        store.close()


@pytest.mark.parametrize("kind", sorted(ENGINES))
def test_a_topic_evicted_within_a_batch_starts_again_at_seq_1(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """One topic at most: b evicts a, a comes back and evicts b, all in one batch. a starts again at
    seq 1 (its seq, read once per batch by the Redis engine, is forgotten when it is evicted), and
    the next batch goes on from the seqs the first left, not from any an evicted topic had."""
    store = make(kind, tmp_path, lambda: 1000.0, max_topics=1, request=request)
    try:
        topics = ["a", "a", "b", "a", "a"]
        appended = settle(store.append([NewEvent(t, [n], {}, KEEP) for n, t in enumerate(topics)]))
        assert [(e.topic, e.seq, e.cursor) for e in appended.events] == [
            ("a", 1, 1), ("a", 2, 2), ("b", 1, 3), ("a", 1, 4), ("a", 2, 5),
        ]  # fmt: skip
        following = settle(store.append([NewEvent("a", [5], {}, KEEP), NewEvent("b", [6], {}, KEEP)]))
        assert [(e.topic, e.seq, e.cursor) for e in following.events] == [("a", 3, 6), ("b", 1, 7)]
        assert [e.args for e in after(store, lambda t: t == "b", 6, 10) or []] == [[6]]
    finally:
        store.close()
