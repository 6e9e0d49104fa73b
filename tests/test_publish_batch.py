"""The HTTP API's batch path without a node: one engine append per batch, positions as return values.

``publish_all`` is driven with a counting engine and a recording delivery in
place of the router: what reaches the engine, in how many calls, and what is
handed to local delivery, in which order, with which kwargs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from autobahn.wamp.exception import ApplicationError

from broker.core.publishing import Event
from broker.engines.memory import MemoryStore
from broker.errors import PayloadTooLarge
from broker.history import Appended, HistoryStore, NewEvent, Once, Retention
from broker.history.policy import HistoryPolicy
from broker.router.delivery import Outgoing
from broker.router.publish_api import publish_all
from broker.router.state import STATE
from tests import engines
from tests.engines import settle

KEEP = Retention(max_events=100, max_age=3600.0)
#: ``public.`` keeps history; ``live.`` does not (max_events 0).
POLICIES = (
    HistoryPolicy("live.", "prefix", Retention(max_events=0, max_age=0.0)),
    HistoryPolicy("", "prefix", KEEP),
)


def sent(topic: str, args: list[Any], kwargs: dict[str, Any]) -> Outgoing:
    """The event as handed to delivery: with the tail of its JSON EVENT frame written, as
    ``json.dumps`` writes ``marshal()[4:]`` with autobahn's options (no kwargs: args alone)."""
    tail = json.dumps([args, kwargs] if kwargs else [args], separators=(",", ":"), ensure_ascii=False)
    return Outgoing(topic, args, kwargs, tail[1:-1])


class CountingStore(MemoryStore):
    """A memory store that records every append call (and can be made to fail)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[list[NewEvent]] = []
        self.fail = False

    async def append(self, batch: Sequence[NewEvent], once: Once | None = None) -> Appended:
        self.calls.append(list(batch))
        if self.fail:
            raise OSError("disk full")
        return await super().append(batch, once)


class Recorder:
    """Stands for :class:`broker.router.delivery.LocalDelivery`: records what it is handed."""

    def __init__(self) -> None:
        self.delivered: list[Outgoing] = []
        #: whether each call said its topics passed :meth:`refusal` already
        self.checked: list[bool] = []

    def refusal(self, topics: Iterable[str]) -> str | None:
        """Crossbar refuses no topic here (the realm's loose ``uri_check``: the gate's rule)."""
        return None

    def deliver(self, events: Sequence[Outgoing], received: float, checked: bool = False) -> list[int]:
        self.checked.append(checked)
        first = len(self.delivered) + 100
        self.delivered.extend(events)
        return list(range(first, first + len(events)))


@pytest.fixture
def store() -> Iterator[CountingStore]:
    saved = (STATE.history, STATE.history_policies, STATE.message_limit, STATE.stopping)
    made = CountingStore()
    STATE.history, STATE.history_policies, STATE.message_limit, STATE.stopping = made, POLICIES, 65536, False
    yield made
    STATE.history, STATE.history_policies, STATE.message_limit, STATE.stopping = saved


def run(events: list[Event]) -> tuple[Any, Recorder]:
    recorder = Recorder()
    answer, replayed = settle(publish_all(recorder, tuple(events)))  # type: ignore[arg-type]
    assert replayed is False  # only a shared engine replays
    return answer, recorder


def test_a_batch_of_n_is_one_append_and_n_deliveries_in_order(store: CountingStore) -> None:
    events = [Event(f"public.t.{n % 3}", {"n": n}) for n in range(50)]
    (status, body), recorder = run(events)
    assert status == 200
    assert len(store.calls) == 1
    assert [(e.topic, e.args, e.kwargs) for e in store.calls[0]] == [(e.topic, [e.data], {}) for e in events]
    # each event's [data] written once, for an engine that keeps text (and the EVENT frames)
    compact = {"separators": (",", ":"), "ensure_ascii": False}
    assert [e.args_json for e in store.calls[0]] == [json.dumps([e.data], **compact) for e in events]
    positions = [p["position"] for p in body["published"]]
    assert [p["cursor"] for p in positions] == list(range(1, 51))  # in order, gapless
    assert [p["seq"] for p in positions[:6]] == [1, 1, 1, 2, 2, 2]
    assert {p["epoch"] for p in positions} == {store.epoch}
    assert [p["id"] for p in body["published"]] == list(range(100, 150))
    assert recorder.delivered == [
        sent(e.topic, [e.data], {"broker_position": p}) for e, p in zip(events, positions, strict=True)
    ]
    assert recorder.checked == [True]  # publish_all asked refusal() for every topic first
    assert body.encoded() == json.dumps(body).encode()  # the template's bytes are json.dumps'


def test_topics_without_history_are_delivered_in_place_without_a_position(store: CountingStore) -> None:
    events = [Event("public.a", 1), Event("live.b", 2), Event("public.a", 3)]
    (status, body), recorder = run(events)
    assert status == 200
    assert [[e.topic for e in call] for call in store.calls] == [["public.a", "public.a"]]
    assert [p["position"] and p["position"]["seq"] for p in body["published"]] == [1, None, 2]
    assert [(o.topic, o.kwargs.get("broker_position") is None) for o in recorder.delivered] == [
        ("public.a", False),
        ("live.b", True),
        ("public.a", False),
    ]


def test_a_batch_without_history_appends_nothing(store: CountingStore) -> None:
    (status, _), recorder = run([Event("live.x", 1)])
    assert status == 200
    assert store.calls == []
    assert recorder.delivered == [sent("live.x", [1], {})]


def test_a_failing_engine_refuses_the_whole_batch_and_delivers_nothing(store: CountingStore) -> None:
    store.fail = True
    with pytest.raises(ApplicationError) as caught:
        run([Event("public.a", 1), Event("public.b", 2)])
    assert caught.value.error == "broker.error.history_unavailable"
    assert caught.value.args[0] == "the event could not be stored, so it was not published"
    assert len(store.calls) == 1


def test_a_stopping_node_refuses_before_storing(store: CountingStore) -> None:
    STATE.stopping = True
    with pytest.raises(ApplicationError) as caught:
        run([Event("public.a", 1)])
    assert caught.value.error == "broker.error.not_ready"
    assert store.calls == []


def test_an_undeliverable_event_refuses_the_batch_before_storing(store: CountingStore) -> None:
    with pytest.raises(PayloadTooLarge):
        run([Event("public.a", 1), Event("public.b", "x" * 70000)])
    assert store.calls == []


@pytest.fixture
def shared(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[HistoryStore]:
    """The real Redis engine (a shared one) in STATE, as on a cluster node."""
    saved = (STATE.history, STATE.history_policies, STATE.shared_history, STATE.message_limit, STATE.stopping)
    made = engines.make("redis", tmp_path, time.time, request=request)
    STATE.history, STATE.history_policies, STATE.shared_history = made, POLICIES, True
    STATE.message_limit, STATE.stopping = 65536, False
    yield made
    made.close()
    STATE.history, STATE.history_policies, STATE.shared_history, STATE.message_limit, STATE.stopping = saved


def test_on_a_cluster_node_topics_without_history_are_in_the_append_unpositioned(
    shared: HistoryStore,
) -> None:
    """One append holds the whole batch in order (so the other nodes deliver it in that order);
    the topic without history gets no position, in the answer or in what is delivered here."""
    events = [Event("public.a", 1), Event("live.b", 2), Event("public.a", 3)]
    (status, body), recorder = run(events)
    assert status == 200
    positions = [p["position"] for p in body["published"]]
    assert positions == [
        {"epoch": shared.epoch, "seq": 1, "cursor": 1},
        None,
        {"epoch": shared.epoch, "seq": 2, "cursor": 3},
    ]
    assert recorder.delivered == [
        sent("public.a", [1], {"broker_position": positions[0]}),
        sent("live.b", [2], {}),
        sent("public.a", [3], {"broker_position": positions[2]}),
    ]
    # the shared log has all three, in batch order; recovery has only the topic with history
    assert shared.cursor() == 3
    assert [(e.topic, e.seq) for e in engines.after(shared, lambda t: True, 0, 10) or []] == [
        ("public.a", 1),
        ("public.a", 2),
    ]


def test_a_stopping_cluster_node_refuses_a_topic_without_history(shared: HistoryStore) -> None:
    """The other nodes could no longer get it: refused, not delivered here alone."""
    STATE.stopping, STATE.history = True, None
    recorder = Recorder()
    with pytest.raises(ApplicationError) as caught:
        settle(publish_all(recorder, (Event("live.b", 1),)))  # type: ignore[arg-type]
    assert caught.value.error == "broker.error.not_ready"
    assert recorder.delivered == []


def test_a_stopping_single_node_still_delivers_a_topic_without_history(store: CountingStore) -> None:
    STATE.stopping = True
    (status, body), recorder = run([Event("live.b", 1)])
    assert (status, body["published"][0]["position"]) == (200, None)
    assert recorder.delivered == [sent("live.b", [1], {})]
    assert store.calls == []
