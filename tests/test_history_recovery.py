"""Recovery: the events a subscriber missed since its last position, or a clear "unrecoverable"."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from broker.engines.memory import MemoryStore
from broker.errors import ClientError, InvalidUri
from broker.history import HistoryStore, Retention
from broker.history.recovery import MAX_EVENTS, NO_POSITION, recovery_outcome
from tests.engines import append, make, recover

KEEP: Retention = Retention(max_events=100, max_age=3600.0)


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[HistoryStore]:
    made = make(request.param, tmp_path, lambda: 1000.0)
    yield made
    made.close()


def publish(store: HistoryStore, *topics: str, retention: Retention = KEEP) -> None:
    """Publish one event per topic, in order; args carry the topic and its cursor."""
    for topic in topics:
        append(store, topic, [topic, store.cursor() + 1], {"k": {"v": [store.cursor() + 1]}}, retention)


def event(store: HistoryStore, topic: str, seq: int, cursor: int) -> dict[str, Any]:
    """What recovery returns for the event ``publish`` stored at ``cursor``."""
    return {
        "topic": topic,
        "args": [topic, cursor],
        "kwargs": {"k": {"v": [cursor]}},
        "position": {"epoch": store.epoch, "seq": seq, "cursor": cursor},
    }


def test_exact_topic_recovers_missed_events_in_order(store: HistoryStore) -> None:
    publish(store, "chat.room1", "chat.room2", "chat.room1", "chat.room1", "chat.room2", "chat.room1")
    # the subscriber saw chat.room1 up to cursor 3 (seq 2)
    answer = recover(store, "chat.room1", "exact", store.epoch, 3)
    assert answer == {
        "unrecoverable": False,
        "events": [event(store, "chat.room1", 3, 4), event(store, "chat.room1", 4, 6)],
        "more": False,
        "epoch": store.epoch,
        "cursor": 6,
    }


def test_from_zero_recovers_everything(store: HistoryStore) -> None:
    publish(store, "a", "a", "a")
    answer = recover(store, "a", "exact", store.epoch, 0)
    assert answer["events"] == [event(store, "a", 1, 1), event(store, "a", 2, 2), event(store, "a", 3, 3)]
    assert answer["more"] is False


def test_nothing_missed(store: HistoryStore) -> None:
    publish(store, "a", "b")
    assert recover(store, "a", "exact", store.epoch, 2) == {
        "unrecoverable": False,
        "events": [],
        "more": False,
        "epoch": store.epoch,
        "cursor": 2,
    }


def test_empty_store_from_zero(store: HistoryStore) -> None:
    assert recover(store, "a", "exact", store.epoch, 0) == {
        "unrecoverable": False,
        "events": [],
        "more": False,
        "epoch": store.epoch,
        "cursor": 0,
    }


def test_prefix_pattern_across_topics_in_cursor_order(store: HistoryStore) -> None:
    publish(store, "orders.eu.created", "users.1", "orders.us.created", "orders.eu.shipped", "ordersx.y")
    publish(store, "orders.us.created")
    answer = recover(store, "orders.", "prefix", store.epoch, 1)
    assert answer["events"] == [
        event(store, "orders.us.created", 1, 3),
        event(store, "orders.eu.shipped", 1, 4),
        event(store, "orders.us.created", 2, 6),
    ]
    assert (answer["unrecoverable"], answer["more"], answer["cursor"]) == (False, False, 6)


def test_wildcard_pattern_across_topics_in_cursor_order(store: HistoryStore) -> None:
    publish(
        store,
        "orders.eu.created",  # 1
        "orders.eu.shipped",  # 2
        "orders.us.created",  # 3
        "orders.us.created.late",  # 4: one component too many
        "users.eu.created",  # 5
        "orders.eu.created",  # 6
    )
    answer = recover(store, "orders..created", "wildcard", store.epoch, 0)
    assert [e["position"]["cursor"] for e in answer["events"]] == [1, 3, 6]
    assert answer["events"] == [
        event(store, "orders.eu.created", 1, 1),
        event(store, "orders.us.created", 1, 3),
        event(store, "orders.eu.created", 2, 6),
    ]


def test_different_epoch_is_unrecoverable(store: HistoryStore) -> None:
    publish(store, "a", "a")
    assert recover(store, "a", "exact", "an-older-history", 1) == {
        "unrecoverable": True,
        "reason": "epoch changed: the history was reset",
        "epoch": store.epoch,
        "cursor": 2,
    }


def test_no_position_yet_answers_the_current_position_with_nothing_missed(store: HistoryStore) -> None:
    """A subscriber that saw no event yet (epoch "") missed nothing: not an unrecoverable gap."""
    publish(store, "a", "a")
    answer = recover(store, "a", "exact", NO_POSITION, 0)
    assert answer == {"unrecoverable": False, "events": [], "more": False, "epoch": store.epoch, "cursor": 2}
    assert recovery_outcome(NO_POSITION, answer) == "position"
    lost = recover(store, "a", "exact", "an-older-history", 0)
    assert recovery_outcome("an-older-history", lost) == "unrecoverable"
    assert recovery_outcome(store.epoch, recover(store, "a", "exact", store.epoch, 0)) == "recovered"


def test_epoch_of_another_store_is_unrecoverable(store: HistoryStore) -> None:
    publish(store, "a")
    other = MemoryStore()
    answer = recover(store, "a", "exact", other.epoch, 0)
    assert answer["unrecoverable"] is True
    assert answer["epoch"] == store.epoch


def test_cursor_ahead_of_the_store_is_unrecoverable(store: HistoryStore) -> None:
    publish(store, "a", "b", "a")
    assert recover(store, "a", "exact", store.epoch, 4) == {
        "unrecoverable": True,
        "reason": "cursor is ahead of this history",
        "epoch": store.epoch,
        "cursor": 3,
    }


def test_trimmed_events_are_unrecoverable(store: HistoryStore) -> None:
    two = Retention(max_events=2, max_age=3600.0)
    publish(store, "a", "b", "a", "a", "a", retention=two)  # a keeps seq 3, 4 (cursors 4, 5)
    expected = {
        "unrecoverable": True,
        "reason": "some missed events are no longer in history",
        "epoch": store.epoch,
        "cursor": 5,
    }
    assert recover(store, "a", "exact", store.epoch, 0) == expected
    assert recover(store, "a", "exact", store.epoch, 2) == expected
    assert recover(store, "", "prefix", store.epoch, 2) == expected
    # from the last trimmed cursor on, nothing is missing
    answer = recover(store, "a", "exact", store.epoch, 3)
    assert answer["events"] == [event(store, "a", 3, 4), event(store, "a", 4, 5)]
    # another topic's trimming does not matter
    assert recover(store, "b", "exact", store.epoch, 0)["events"] == [event(store, "b", 1, 2)]


def test_more_pages_through_with_a_small_limit(store: HistoryStore) -> None:
    publish(store, "a", "b", "a", "a", "b", "a", "a")  # a: cursors 1, 3, 4, 6, 7
    seen: list[int] = []
    answers: list[bool] = []
    after = 0
    for _ in range(5):
        answer = recover(store, "a", "exact", store.epoch, after, limit=2)
        assert answer["unrecoverable"] is False
        seen.extend(e["position"]["cursor"] for e in answer["events"])
        answers.append(answer["more"])
        if not answer["more"]:
            break
        after = answer["events"][-1]["position"]["cursor"]
    assert seen == [1, 3, 4, 6, 7]
    assert answers == [True, True, False]


def test_more_is_false_when_exactly_limit_events_are_left(store: HistoryStore) -> None:
    publish(store, "a", "a", "a")
    answer = recover(store, "a", "exact", store.epoch, 0, limit=3)
    assert len(answer["events"]) == 3
    assert answer["more"] is False
    answer = recover(store, "a", "exact", store.epoch, 0, limit=2)
    assert [e["position"]["seq"] for e in answer["events"]] == [1, 2]
    assert answer["more"] is True


def test_default_limit_is_max_events() -> None:
    store = MemoryStore(clock=lambda: 1000.0)
    retention = Retention(max_events=MAX_EVENTS + 10, max_age=3600.0)
    for _ in range(MAX_EVENTS + 1):
        append(store, "a", [], {}, retention)
    answer = recover(store, "a", "exact", store.epoch, 0)
    assert MAX_EVENTS == 1000
    assert len(answer["events"]) == MAX_EVENTS
    assert answer["events"][-1]["position"]["cursor"] == MAX_EVENTS
    assert answer["more"] is True
    rest = recover(store, "a", "exact", store.epoch, MAX_EVENTS)
    assert [e["position"]["cursor"] for e in rest["events"]] == [MAX_EVENTS + 1]
    assert rest["more"] is False


# -- invalid input -------------------------------------------------------------


@pytest.mark.parametrize(
    ("topic", "match"),
    [
        ("bad topic", "exact"),
        ("a..b", "exact"),
        ("a.", "exact"),
        ("a#b", "prefix"),
        ("a..b", "prefix"),
        ("a b..c", "wildcard"),
        (42, "exact"),
        (None, "prefix"),
        ("a.b", "fuzzy"),
    ],
)
def test_invalid_uri(store: HistoryStore, topic: Any, match: str) -> None:
    with pytest.raises(InvalidUri):
        recover(store, topic, match, store.epoch, 0)


@pytest.mark.parametrize("after", [-1, True, False, "3", 1.5, None, [1]])
def test_bad_after(store: HistoryStore, after: object) -> None:
    with pytest.raises(ClientError) as caught:
        recover(store, "a", "exact", store.epoch, after)
    assert type(caught.value) is ClientError
    assert str(caught.value) == f"after must be a cursor (an integer >= 0), not {after!r}"


@pytest.mark.parametrize("epoch", [None, 123, b"abc", ["e"]])
def test_bad_epoch(store: HistoryStore, epoch: object) -> None:
    with pytest.raises(ClientError) as caught:
        recover(store, "a", "exact", epoch, 0)
    assert type(caught.value) is ClientError
    assert str(caught.value) == f"epoch must be the string from an event's position, not {epoch!r}"


def test_errors_are_client_errors_with_the_wamp_uri() -> None:
    store = MemoryStore()
    with pytest.raises(ClientError) as bad_after:
        recover(store, "a", "exact", store.epoch, -5)
    assert bad_after.value.wamp_uri == "broker.error.bad_request"
    with pytest.raises(InvalidUri) as bad_uri:
        recover(store, "a b", "exact", store.epoch, 0)
    assert bad_uri.value.wamp_uri == "wamp.error.invalid_uri"
