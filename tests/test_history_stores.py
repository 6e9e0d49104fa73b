"""One contract for every history store: positions, reads after a cursor, trimming, persistence."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from broker.config.settings import parse_settings
from broker.engines import ENGINES, create_store
from broker.engines.memory import MemoryStore
from broker.engines.redis import RedisStore
from broker.engines.sqlite import SQLiteStore
from broker.errors import ConfigError
from broker.history import (
    DEFAULT_MAX_TOPICS,
    STORE_OPTIONS,
    HistoryStore,
    RedisAddress,
    Retention,
    StoredEvent,
    parse_redis_url,
)
from broker.history.policy import HistoryPolicy, retention_for
from tests.engines import MAKERS, after, append, make, recover
from tests.redisserver import SocketLink

KEEP: Retention = Retention(max_events=100, max_age=3600.0)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def everything(_topic: str) -> bool:
    return True


def only(*names: str) -> Callable[[str], bool]:
    return lambda topic: topic in names


def cursors(events: Sequence[StoredEvent] | None) -> list[int]:
    assert events is not None
    return [e.cursor for e in events]


def publish(store: HistoryStore, topic: str, retention: Retention = KEEP, n: int = 1) -> list[StoredEvent]:
    return [append(store, topic, [i], {}, retention) for i in range(n)]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=sorted(ENGINES))
def store(request: pytest.FixtureRequest, tmp_path: Path, clock: Clock) -> Iterator[HistoryStore]:
    made = make(request.param, tmp_path, clock, request=request)
    yield made
    made.close()


@pytest.fixture
def bounded(request: pytest.FixtureRequest, tmp_path: Path, clock: Clock) -> Iterator[HistoryStore]:
    """A store of the fixture's kind that keeps at most 3 topics."""
    made = make(request.param, tmp_path, clock, max_topics=3, request=request)
    yield made
    made.close()


def both(fixture: str) -> pytest.MarkDecorator:
    return pytest.mark.parametrize(fixture, sorted(ENGINES), indirect=True)


def kept_topics(store: HistoryStore) -> set[str]:
    """The topics a store holds (memory: its dict; SQLite: its topics table; Redis: its streams)."""
    if isinstance(store, MemoryStore):
        return set(store._topics)
    if isinstance(store, RedisStore):
        link = store._link
        assert isinstance(link, SocketLink)
        base = f"{store._base}:{store.epoch}"
        streams = {key.removeprefix(f"{base}:t:") for key in link.command("KEYS", f"{base}:t:*")}
        assert set(link.command("ZRANGE", f"{base}:recent", "0", "-1")) == streams
        return streams
    assert isinstance(store, SQLiteStore)
    return {row[0] for row in store._db.execute("SELECT topic FROM topics")}


# -- the contract, for every store --------------------------------------------


def test_empty_store(store: HistoryStore) -> None:
    assert store.cursor() == 0
    assert after(store, everything, 0, 10) == []


def test_append_returns_the_event_with_its_position(store: HistoryStore, clock: Clock) -> None:
    clock.now = 1234.5
    event = append(store, "chat.lobby", ["hi"], {"from": "ann"}, KEEP)
    assert event == StoredEvent("chat.lobby", 1, 1, 1234.5, ["hi"], {"from": "ann"})
    assert event.position(store.epoch) == {"epoch": store.epoch, "seq": 1, "cursor": 1}
    assert store.cursor() == 1


def test_seq_is_gapless_per_topic_and_cursor_increases_across_topics(store: HistoryStore) -> None:
    order = ["a", "a", "b", "a", "c", "b", "a"]
    events = [append(store, topic, [], {}, KEEP) for topic in order]
    assert [(e.topic, e.seq, e.cursor) for e in events] == [
        ("a", 1, 1),
        ("a", 2, 2),
        ("b", 1, 3),
        ("a", 3, 4),
        ("c", 1, 5),
        ("b", 2, 6),
        ("a", 4, 7),
    ]
    assert store.cursor() == 7


def test_after_returns_matching_events_in_cursor_order(store: HistoryStore) -> None:
    for topic in ["a", "b", "c", "a", "c", "b", "a"]:
        append(store, topic, [topic], {}, KEEP)
    found = after(store, only("a", "c"), 0, 100)
    assert found is not None
    assert [(e.topic, e.seq, e.cursor, e.args) for e in found] == [
        ("a", 1, 1, ["a"]),
        ("c", 1, 3, ["c"]),
        ("a", 2, 4, ["a"]),
        ("c", 2, 5, ["c"]),
        ("a", 3, 7, ["a"]),
    ]
    assert cursors(after(store, only("a", "c"), 3, 100)) == [4, 5, 7]
    assert cursors(after(store, only("b"), 0, 100)) == [2, 6]
    assert cursors(after(store, everything, 7, 100)) == []
    assert cursors(after(store, only("nothing"), 0, 100)) == []


def test_after_respects_limit(store: HistoryStore) -> None:
    for topic in ["a", "b", "a", "b", "a", "b"]:
        append(store, topic, [], {}, KEEP)
    assert cursors(after(store, everything, 0, 3)) == [1, 2, 3]
    assert cursors(after(store, everything, 3, 2)) == [4, 5]
    assert cursors(after(store, only("b"), 0, 2)) == [2, 4]
    assert cursors(after(store, only("a"), 1, 1)) == [3]
    assert cursors(after(store, everything, 0, 0)) == []


def test_payload_round_trips(store: HistoryStore) -> None:
    args: list[Any] = [1, "two", 3.5, None, True, False, [1, [2, {"x": []}]], {"k": {"n": [1, 2]}}, -7]
    kwargs: dict[str, Any] = {
        "nested": {"list": [{"a": 1}, {"b": [None, 0.25]}], "empty": {}, "none": None},
        "unicode": "héllo ✓ 日本",
        "big": 2**53,
    }
    append(store, "data.x", args, kwargs, KEEP)
    append(store, "data.y", [], {}, KEEP)
    found = after(store, only("data.x"), 0, 10)
    assert found is not None
    assert len(found) == 1
    assert found[0].args == args
    assert found[0].kwargs == kwargs
    assert found[0].args == [1, "two", 3.5, None, True, False, [1, [2, {"x": []}]], {"k": {"n": [1, 2]}}, -7]
    empty = after(store, only("data.y"), 0, 10)
    assert empty is not None
    assert (empty[0].args, empty[0].kwargs) == ([], {})


def test_trim_by_max_events(store: HistoryStore) -> None:
    three = Retention(max_events=3, max_age=3600.0)
    # a1=1 b1=2 a2=3 a3=4 a4=5 a5=6: a keeps a3..a5, so a1 (1) and a2 (3) are gone
    append(store, "a", ["a1"], {}, three)
    append(store, "b", ["b1"], {}, three)
    for n in range(2, 6):
        append(store, "a", [f"a{n}"], {}, three)
    kept = after(store, only("a"), 3, 100)
    assert kept is not None
    assert [(e.seq, e.cursor, e.args) for e in kept] == [(3, 4, ["a3"]), (4, 5, ["a4"]), (5, 6, ["a5"])]
    assert store.cursor() == 6
    # the next append continues the topic's seq despite the trimming
    assert append(store, "a", [], {}, three).seq == 6
    assert cursors(after(store, only("a"), 4, 100)) == [5, 6, 7]


def test_trim_by_max_age(store: HistoryStore, clock: Clock) -> None:
    ten_seconds = Retention(max_events=100, max_age=10.0)
    clock.now = 1000.0
    append(store, "a", ["old"], {}, ten_seconds)  # cursor 1
    clock.now = 1005.0
    append(store, "a", ["edge"], {}, ten_seconds)  # cursor 2
    assert cursors(after(store, only("a"), 0, 100)) == [1, 2]
    clock.now = 1015.0  # horizon 1005: "old" is out, "edge" is exactly max_age old and stays
    append(store, "a", ["new"], {}, ten_seconds)  # cursor 3
    assert after(store, only("a"), 0, 100) is None
    kept = after(store, only("a"), 1, 100)
    assert kept is not None
    assert [(e.args, e.published_at) for e in kept] == [(["edge"], 1005.0), (["new"], 1015.0)]
    clock.now = 1100.0  # every earlier event of "a" is now out
    append(store, "a", ["latest"], {}, ten_seconds)  # cursor 4
    assert after(store, only("a"), 2, 100) is None
    assert cursors(after(store, only("a"), 3, 100)) == [4]


def test_trim_by_max_age_a_fraction_past_the_edge(store: HistoryStore, clock: Clock) -> None:
    """Ages are compared in full precision: exactly ``max_age`` old stays, a millisecond more goes."""
    ten_seconds = Retention(max_events=100, max_age=10.0)
    clock.now = 1000.25
    append(store, "a", ["first"], {}, ten_seconds)  # cursor 1
    clock.now = 1010.25  # horizon 1000.25: "first" is exactly max_age old
    append(store, "a", ["second"], {}, ten_seconds)  # cursor 2
    assert cursors(after(store, only("a"), 0, 100)) == [1, 2]
    clock.now = 1010.251  # horizon 1000.251: "first" is just past it
    append(store, "a", ["third"], {}, ten_seconds)  # cursor 3
    assert after(store, only("a"), 0, 100) is None
    assert cursors(after(store, only("a"), 1, 100)) == [2, 3]


def test_each_topic_is_trimmed_at_its_own_policys_age(store: HistoryStore, clock: Clock) -> None:
    policies = (
        HistoryPolicy("ticker.", "prefix", Retention(max_events=50, max_age=60.0)),
        HistoryPolicy("", "prefix", Retention(max_events=1000, max_age=3600.0)),
    )
    ticker, orders = retention_for(policies, "ticker.eur"), retention_for(policies, "orders.new")
    assert ticker is not None and orders is not None
    clock.now = 1000.0
    append(store, "ticker.eur", ["t1"], {}, ticker)  # cursor 1
    append(store, "orders.new", ["o1"], {}, orders)  # cursor 2
    clock.now = 1060.0  # both exactly at or inside their age
    append(store, "ticker.eur", ["t2"], {}, ticker)  # cursor 3
    assert cursors(after(store, only("ticker.eur"), 0, 100)) == [1, 3]
    clock.now = 1060.5  # past the ticker's 60 s, far inside the orders' hour
    append(store, "ticker.eur", ["t3"], {}, ticker)  # cursor 4
    append(store, "orders.new", ["o2"], {}, orders)  # cursor 5
    assert after(store, only("ticker.eur"), 0, 100) is None
    assert cursors(after(store, only("ticker.eur"), 1, 100)) == [3, 4]
    assert cursors(after(store, only("orders.new"), 0, 100)) == [2, 5]
    clock.now = 4600.0  # "o1" is exactly an hour old: kept
    append(store, "orders.new", ["o3"], {}, orders)  # cursor 6
    assert cursors(after(store, only("orders.new"), 0, 100)) == [2, 5, 6]
    clock.now = 4600.5
    append(store, "orders.new", ["o4"], {}, orders)  # cursor 7
    assert after(store, only("orders.new"), 0, 100) is None
    assert cursors(after(store, only("orders.new"), 2, 100)) == [5, 6, 7]


def test_after_is_none_only_when_a_matching_topic_lost_events(store: HistoryStore) -> None:
    one = Retention(max_events=1, max_age=3600.0)
    append(store, "old.x", [], {}, one)  # 1, trimmed by the next
    append(store, "new.y", [], {}, KEEP)  # 2
    append(store, "old.x", [], {}, one)  # 3
    append(store, "new.y", [], {}, KEEP)  # 4
    # only a non-matching topic was trimmed: recoverable from the start
    assert cursors(after(store, lambda t: t.startswith("new."), 0, 100)) == [2, 4]
    # a matching topic lost an event above the cursor
    assert after(store, lambda t: t.startswith("old."), 0, 100) is None
    assert after(store, everything, 0, 100) is None
    # ... but not above this one
    assert cursors(after(store, everything, 1, 100)) == [2, 3, 4]
    assert cursors(after(store, lambda t: t.startswith("old."), 1, 100)) == [3]


def test_after_is_none_even_with_a_small_limit(store: HistoryStore) -> None:
    one = Retention(max_events=1, max_age=3600.0)
    append(store, "a", [], {}, KEEP)  # 1
    append(store, "b", [], {}, one)  # 2, trimmed by the next
    append(store, "b", [], {}, one)  # 3
    # the first event after 0 is still there, but b's lost event makes the answer gappy
    assert after(store, everything, 0, 1) is None


# -- at most max_topics topics: the least recently published one is evicted ----


@both("bounded")
def test_a_new_topic_beyond_max_topics_evicts_the_least_recently_published(bounded: HistoryStore) -> None:
    store = bounded
    append(store, "a", ["a1"], {}, KEEP)  # 1
    append(store, "b", ["b1"], {}, KEEP)  # 2
    append(store, "c", ["c1"], {}, KEEP)  # 3
    append(store, "a", ["a2"], {}, KEEP)  # 4: a is now the most recent, b the least
    assert kept_topics(store) == {"a", "b", "c"}
    append(store, "d", ["d1"], {}, KEEP)  # 5: evicts b (last published at 2)
    assert kept_topics(store) == {"a", "c", "d"}
    assert store.cursor() == 5
    # from b's last cursor on, nothing evicted was missed: every kept topic answers
    assert cursors(after(store, everything, 2, 100)) == [3, 4, 5]
    assert cursors(after(store, only("b"), 2, 100)) == []
    assert cursors(after(store, only("a"), 2, 100)) == [4]
    # below it, b's events would be missing: unrecoverable, for any topic (b's name is forgotten)
    assert after(store, only("b"), 1, 100) is None
    assert after(store, only("b"), 0, 100) is None
    assert after(store, only("a"), 0, 100) is None
    assert after(store, everything, 1, 100) is None
    append(store, "e", [], {}, KEEP)  # 6: evicts c (3)
    assert kept_topics(store) == {"a", "d", "e"}
    assert after(store, only("a", "d", "e"), 2, 100) is None
    assert cursors(after(store, everything, 3, 100)) == [4, 5, 6]


@both("bounded")
def test_publishing_keeps_a_topic_from_eviction(bounded: HistoryStore) -> None:
    store = bounded
    for topic in ["hot", "x1", "hot", "x2", "hot", "x3", "hot", "x4", "hot", "x5"]:
        append(store, topic, [topic], {}, KEEP)
    assert kept_topics(store) == {"hot", "x4", "x5"}
    assert [(e.seq, e.args) for e in publish(store, "hot")] == [(6, [0])]  # seq continues


@both("bounded")
def test_an_evicted_topic_starts_again_and_its_old_positions_are_unrecoverable(bounded: HistoryStore) -> None:
    store = bounded
    publish(store, "a", n=2)  # 1, 2
    publish(store, "b")  # 3
    publish(store, "c")  # 4
    publish(store, "d")  # 5: evicts a (2)
    event = append(store, "a", ["again"], {}, KEEP)  # 6: evicts b (3)
    assert (event.seq, event.cursor) == (1, 6)  # a new topic to the store: seq restarts
    # a subscriber that saw a's cursor 1 missed a2 (evicted): never an empty "nothing missed"
    assert after(store, only("a"), 1, 100) is None
    assert cursors(after(store, only("a"), 3, 100)) == [6]


@both("bounded")
def test_recovery_from_an_evicted_topic_is_unrecoverable(bounded: HistoryStore) -> None:
    store = bounded
    first = append(store, "user.1.x", [], {}, KEEP)  # 1
    publish(store, "user.1.x")  # 2
    for n in range(2, 6):  # user.2.x .. user.5.x: 3..6; user.4.x evicts user.1.x, user.5.x user.2.x
        publish(store, f"user.{n}.x")
    answer = recover(store, "user.1.x", "exact", store.epoch, first.cursor)
    assert answer["unrecoverable"] is True
    assert answer["reason"] == "some missed events are no longer in history"
    assert (answer["epoch"], answer["cursor"]) == (store.epoch, 6)
    assert recover(store, "user.", "prefix", store.epoch, 0)["unrecoverable"] is True
    # from the evicted topics' last cursor on, recovery works again
    answer = recover(store, "user.", "prefix", store.epoch, 3)
    assert answer["unrecoverable"] is False
    assert [e["topic"] for e in answer["events"]] == ["user.3.x", "user.4.x", "user.5.x"]
    assert recover(store, "user.1.x", "exact", store.epoch, 3)["events"] == []


@both("bounded")
def test_spraying_unique_topics_keeps_max_topics(bounded: HistoryStore) -> None:
    store = bounded
    for n in range(200):
        append(store, f"user.{n}.x", [n], {}, KEEP)
    assert kept_topics(store) == {"user.197.x", "user.198.x", "user.199.x"}
    assert store.cursor() == 200
    assert cursors(after(store, everything, 197, 100)) == [198, 199, 200]
    assert after(store, everything, 196, 100) is None


def test_default_max_topics() -> None:
    assert MemoryStore().max_topics == DEFAULT_MAX_TOPICS == 100_000
    with pytest.raises(ValueError):
        MemoryStore(max_topics=0)


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_create_store_passes_max_topics(kind: str, tmp_path: Path) -> None:
    spec: dict[str, Any] = {"type": kind, "max_topics": 2}
    if kind == "sqlite":
        spec["path"] = "h.db"
    store = create_store(spec, base_dir=str(tmp_path))
    try:
        for topic in ["a", "b", "c"]:
            publish(store, topic)
        assert kept_topics(store) == {"b", "c"}
    finally:
        store.close()


@pytest.mark.parametrize("value", [0, -1, 100_000_001, "10", 2.5, True, None])
def test_settings_reject_a_bad_max_topics_by_json_path(value: object) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings({"history": {"store": {"type": "memory", "max_topics": value}}})
    assert caught.value.path == "$.history.store.max_topics"
    assert caught.value.message == f"must be an integer from 1 to 100000000, not {value!r}"


def test_settings_accept_max_topics() -> None:
    settings = parse_settings({"history": {"store": {"type": "sqlite", "path": "h.db", "max_topics": 5}}})
    assert settings.history.store["max_topics"] == 5


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_create_store_builds_a_working_store(kind: str, tmp_path: Path) -> None:
    spec = {"type": kind, "path": "sub.db"} if kind == "sqlite" else {"type": kind}
    store = create_store(spec, base_dir=str(tmp_path))
    try:
        assert type(store) is {"memory": MemoryStore, "sqlite": SQLiteStore}[kind]
        assert (tmp_path / "sub.db").exists() is (kind == "sqlite")
        assert [(e.seq, e.cursor) for e in publish(store, "t", n=3)] == [(1, 1), (2, 2), (3, 3)]
        assert cursors(after(store, only("t"), 1, 10)) == [2, 3]
    finally:
        store.close()


def test_create_store_defaults_to_memory() -> None:
    store = create_store({})
    assert type(store) is MemoryStore
    store.close()


# -- SQLite only: the history outlives the process ----------------------------


def test_sqlite_reopen_keeps_epoch_cursor_seq_and_events(tmp_path: Path, clock: Clock) -> None:
    path = str(tmp_path / "history.db")
    first = SQLiteStore(path, clock=clock)
    append(first, "a", ["a1"], {"n": {"deep": [1]}}, KEEP)
    clock.now = 1001.0
    append(first, "b", ["b1"], {}, KEEP)
    append(first, "a", ["a2"], {}, KEEP)
    epoch = first.epoch
    before = after(first, everything, 0, 100)
    first.close()

    second = SQLiteStore(path, clock=clock)
    try:
        assert second.epoch == epoch
        assert second.cursor() == 3
        assert after(second, everything, 0, 100) == before
        assert before == [
            StoredEvent("a", 1, 1, 1000.0, ["a1"], {"n": {"deep": [1]}}),
            StoredEvent("b", 1, 2, 1001.0, ["b1"], {}),
            StoredEvent("a", 2, 3, 1001.0, ["a2"], {}),
        ]
        event = append(second, "a", ["a3"], {}, KEEP)
        assert (event.seq, event.cursor) == (3, 4)
        assert (append(second, "c", [], {}, KEEP).seq, second.cursor()) == (1, 5)
    finally:
        second.close()


def test_sqlite_cursor_never_goes_back_when_everything_was_trimmed(tmp_path: Path, clock: Clock) -> None:
    path = str(tmp_path / "history.db")
    nothing = Retention(max_events=0, max_age=3600.0)
    first = SQLiteStore(path, clock=clock)
    append(first, "a", [], {}, KEEP)  # 1
    append(first, "b", [], {}, KEEP)  # 2
    append(first, "a", [], {}, nothing)  # 3: drops a entirely
    append(first, "b", [], {}, nothing)  # 4: drops b entirely
    assert after(first, only("a", "b"), 4, 100) == []
    first.close()

    second = SQLiteStore(path, clock=clock)
    try:
        assert second.cursor() == 4
        assert after(second, only("a"), 0, 100) is None  # the trimming is remembered
        assert after(second, only("a"), 3, 100) == []
        event = append(second, "a", [], {}, KEEP)
        assert (event.seq, event.cursor) == (3, 5)
    finally:
        second.close()


def test_sqlite_trims_by_age_on_the_reopened_clock(tmp_path: Path, clock: Clock) -> None:
    """A reopened file measures age from each event's stored (fractional) publish time."""
    path = str(tmp_path / "history.db")
    ten_seconds = Retention(max_events=100, max_age=10.0)
    clock.now = 1000.75
    first = SQLiteStore(path, clock=clock)
    append(first, "a", ["before"], {}, ten_seconds)  # cursor 1
    first.close()

    clock.now = 1010.75  # exactly max_age later, in the next process
    second = SQLiteStore(path, clock=clock)
    append(second, "a", ["after"], {}, ten_seconds)  # cursor 2
    assert cursors(after(second, only("a"), 0, 100)) == [1, 2]
    second.close()

    clock.now = 1010.8
    third = SQLiteStore(path, clock=clock)
    try:
        append(third, "a", ["later"], {}, ten_seconds)  # cursor 3
        assert after(third, only("a"), 0, 100) is None
        assert cursors(after(third, only("a"), 1, 100)) == [2, 3]
    finally:
        third.close()


def test_sqlite_separate_files_have_separate_epochs(tmp_path: Path) -> None:
    one, two = SQLiteStore(str(tmp_path / "1.db")), SQLiteStore(str(tmp_path / "2.db"))
    assert one.epoch != two.epoch
    one.close()
    two.close()


def test_sqlite_failed_append_issues_no_position(tmp_path: Path, clock: Clock) -> None:
    store = SQLiteStore(str(tmp_path / "history.db"), clock=clock)
    try:
        append(store, "a", [], {}, KEEP)
        with pytest.raises(TypeError):
            append(store, "a", [object()], {}, KEEP)  # not JSON: rolled back
        assert store.cursor() == 1
        event = append(store, "a", [], {}, KEEP)
        assert (event.seq, event.cursor) == (2, 2)
    finally:
        store.close()


def test_sqlite_eviction_is_remembered_across_reopen(tmp_path: Path, clock: Clock) -> None:
    path = str(tmp_path / "history.db")
    first = SQLiteStore(path, clock=clock, max_topics=2)
    publish(first, "a")  # 1
    publish(first, "b")  # 2
    publish(first, "c")  # 3: evicts a
    first.close()

    second = SQLiteStore(path, clock=clock, max_topics=2)
    try:
        assert after(second, only("a"), 0, 100) is None
        assert cursors(after(second, everything, 1, 100)) == [2, 3]
        publish(second, "d")  # 4: evicts b, counting the topics already in the file
        assert kept_topics(second) == {"c", "d"}
        assert second._db.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 2
    finally:
        second.close()


def test_sqlite_reopened_with_a_smaller_max_topics_evicts_down_to_it(tmp_path: Path, clock: Clock) -> None:
    path = str(tmp_path / "history.db")
    first = SQLiteStore(path, clock=clock, max_topics=10)
    for topic in "abcde":
        publish(first, topic)  # 1..5
    first.close()
    second = SQLiteStore(path, clock=clock, max_topics=2)
    try:
        assert kept_topics(second) == set("abcde")  # nothing changes until a new topic comes
        publish(second, "f")  # 6: a..d go
        assert kept_topics(second) == {"e", "f"}
        assert after(second, everything, 3, 100) is None
        assert cursors(after(second, everything, 4, 100)) == [5, 6]
    finally:
        second.close()


def test_sqlite_failed_append_evicts_nothing(tmp_path: Path, clock: Clock) -> None:
    store = SQLiteStore(str(tmp_path / "history.db"), clock=clock, max_topics=2)
    try:
        publish(store, "a")
        publish(store, "b")
        with pytest.raises(TypeError):
            append(store, "c", [object()], {}, KEEP)  # not JSON: rolled back, a stays
        assert kept_topics(store) == {"a", "b"}
        assert cursors(after(store, everything, 0, 100)) == [1, 2]
        publish(store, "c")  # 3: evicts a now
        assert kept_topics(store) == {"b", "c"}
    finally:
        store.close()


def test_sqlite_opens_a_file_written_before_max_topics(tmp_path: Path, clock: Clock) -> None:
    import sqlite3

    path = str(tmp_path / "old.db")
    db = sqlite3.connect(path)
    db.executescript(
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE topics (topic TEXT PRIMARY KEY, last_seq INTEGER NOT NULL,
                             trimmed_cursor INTEGER NOT NULL DEFAULT 0);
        CREATE TABLE events (cursor INTEGER PRIMARY KEY, topic TEXT NOT NULL, seq INTEGER NOT NULL,
                             published_at REAL NOT NULL, payload TEXT NOT NULL);
        INSERT INTO meta VALUES ('epoch', 'e0'), ('cursor', '4');
        INSERT INTO topics VALUES ('a', 2, 0), ('b', 1, 0), ('gone', 1, 3);
        INSERT INTO events VALUES (1, 'a', 1, 1.0, '[[], {}]'), (2, 'b', 1, 1.0, '[[], {}]'),
                                  (4, 'a', 2, 1.0, '[[], {}]');
        """
    )
    db.commit()
    db.close()
    store = SQLiteStore(path, clock=clock, max_topics=3)
    try:
        assert (store.epoch, store.cursor()) == ("e0", 4)
        publish(store, "c")  # 5: evicts b (last cursor 2), not "gone" (3) nor a (4)
        assert kept_topics(store) == {"a", "gone", "c"}
        assert cursors(after(store, only("a", "c"), 2, 100)) == [4, 5]
    finally:
        store.close()


# -- memory only: a new store is a new history --------------------------------


def test_memory_stores_have_different_epochs() -> None:
    one, two = MemoryStore(), MemoryStore()
    assert isinstance(one.epoch, str)
    assert one.epoch
    assert one.epoch != two.epoch


# -- create_store errors name the JSON path ------------------------------------


@pytest.mark.parametrize(
    ("spec", "path", "message"),
    [
        ({"type": "redis"}, "$.history.store.url", "the Redis store needs a redis://host:port/db URL"),
        ({"type": "redis", "url": ""}, "$.history.store.url", "the Redis store needs a redis://"),
        ({"type": "rediss"}, "$.history.store.type", "unknown store type 'rediss'"),
        (
            {"type": "redis", "url": "http://127.0.0.1:6379/0"},
            "$.history.store.url",
            "must be a redis://host:port/db URL, not 'http://127.0.0.1:6379/0'",
        ),
        ({"type": "redis", "url": "redis://:6379/0"}, "$.history.store.url", "names no host"),
        (
            {"type": "redis", "url": "redis://h:99999/0"},
            "$.history.store.url",
            "has a port that is not a number from 1 to 65535",
        ),
        (
            {"type": "redis", "url": "redis://h:6379/x"},
            "$.history.store.url",
            "has database 'x': expected a number from 0 to 15",
        ),
        ({"type": "redis", "url": "redis://h/0?x=1"}, "$.history.store.url", "takes no query or fragment"),
        (
            {"type": "redis", "url": "redis://h/0", "prefix": "a{b}"},
            "$.history.store.prefix",
            "must be 1 to 64 letters, digits, '_', '.' or '-', not 'a{b}'",
        ),
        (
            {"type": "redis", "url": "redis://h/0", "timeout": 0},
            "$.history.store.timeout",
            "must be a number of seconds from 0.05 to 60.0, not 0",
        ),
        (
            {"type": "redis", "url": "redis://h/0", "timeout": "1"},
            "$.history.store.timeout",
            "must be a number of seconds from 0.05 to 60.0, not '1'",
        ),
        (
            {"type": "redis", "url": "redis://h/0", "log_max": 10},
            "$.history.store.log_max",
            "must be an integer from 1000 to 100000000, not 10",
        ),
        (
            {"type": "redis", "url": "redis://h/0", "path": "x.db"},
            "$.history.store.path",
            "unknown key 'path' for a redis store",
        ),
        ({"type": ["memory"]}, "$.history.store.type", "unknown store type ['memory']"),
        ({"type": None}, "$.history.store.type", "unknown store type None"),
        ({"type": "sqlite"}, "$.history.store.path", "the SQLite store needs a file path"),
        ({"type": "sqlite", "path": ""}, "$.history.store.path", "the SQLite store needs a file path"),
        ({"type": "sqlite", "path": 5}, "$.history.store.path", "the SQLite store needs a file path"),
        ({"type": "memory", "path": "x.db"}, "$.history.store.path", "unknown key 'path' for a memory store"),
        (
            {"type": "sqlite", "path": "x.db", "mode": "wal"},
            "$.history.store.mode",
            "unknown key 'mode' for a sqlite store",
        ),
        ({"typo": "memory"}, "$.history.store.typo", "unknown key 'typo' for a memory store"),
        ({"max_topics": 0}, "$.history.store.max_topics", "must be an integer from 1 to 100000000, not 0"),
        (
            {"type": "sqlite", "path": "x.db", "max_topics": "5"},
            "$.history.store.max_topics",
            "must be an integer from 1 to 100000000, not '5'",
        ),
        ("memory", "$.history.store", "must be an object with a 'type', not str"),
    ],
)
def test_create_store_errors(spec: Any, path: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        create_store(spec, base_dir=str(tmp_path))
    assert caught.value.path == path
    assert caught.value.message.startswith(message)
    assert str(caught.value).startswith(f"{path}: ")
    assert list(tmp_path.iterdir()) == []  # nothing was created


def test_create_store_errors_use_the_given_path() -> None:
    with pytest.raises(ConfigError) as caught:
        create_store({"type": "nope"}, "$.extra.history.store")
    assert caught.value.path == "$.extra.history.store.type"


def test_a_redis_store_is_built_over_the_link_it_is_given(redis_server: Any) -> None:
    opened: list[tuple[RedisAddress, float]] = []

    def connect(address: RedisAddress, timeout: float) -> SocketLink:
        opened.append((address, timeout))
        return SocketLink(address, timeout)

    spec = {"type": "redis", "url": redis_server.url, "prefix": "built", "timeout": 0.5, "max_topics": 2}
    store = create_store(spec, connect=connect)
    try:
        assert opened == [(RedisAddress("127.0.0.1", redis_server.port, 0), 0.5)]
        for topic in ["a", "b", "c"]:
            publish(store, topic)
        assert kept_topics(store) == {"b", "c"}
    finally:
        store.close()
    with pytest.raises(ValueError, match="a Redis store needs a connection"):
        create_store(spec)


def test_a_redis_url_gives_host_port_db_and_credentials() -> None:
    assert parse_redis_url("redis://127.0.0.1:6380/3") == RedisAddress("127.0.0.1", 6380, 3)
    assert parse_redis_url("redis://cache") == RedisAddress("cache", 6379, 0)
    assert parse_redis_url("redis://ann:s%40cret@cache:1/0") == RedisAddress("cache", 1, 0, "ann", "s@cret")


def test_every_store_type_the_checker_accepts_has_an_engine() -> None:
    assert set(ENGINES) == set(STORE_OPTIONS)


def test_every_engine_runs_the_contract() -> None:
    assert set(MAKERS) == set(ENGINES)
