"""Recovery over a history kept from before the node refused unsendable events.

A publish is refused today when some subscriber's serializer could not carry
it (an integer beyond 64 bits for MessagePack, a lone surrogate for every
serializer: :mod:`broker.core.protocol`), but a SQLite file or a Redis log
written by an older node may still hold such an event. A recovery answer
holding it could not be encoded for that caller (its connection is then
dropped by the router, on every retry), so the answer stops before it, and
one that would start with it is ``unrecoverable``: the caller reloads its
state and goes on live. The events are appended to the store directly, as an
older node did; each answer is encoded as the RESULT autobahn would send.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import txaio

txaio.use_twisted()  # autobahn's serializers keep statistics with txaio's clock

from autobahn.wamp import message  # noqa: E402
from autobahn.wamp import serializer as serializers  # noqa: E402

from broker.history import HistoryStore, Retention  # noqa: E402
from tests.engines import append, make, recover  # noqa: E402

KEEP = Retention(max_events=100, max_age=3600.0)
TOPIC = "public.old"
SERIALIZERS = [
    serializers.JsonObjectSerializer(),
    serializers.MsgPackObjectSerializer(),
    serializers.CBORObjectSerializer(),
]
#: What an older node stored, and what the answer says of it.
OLD = [
    pytest.param(
        {"n": 2**64}, "an integer of 65 bits: MessagePack subscribers can be sent at most 64", id="int65"
    ),
    pytest.param({"s": "a\ud800"}, "a string holds a lone surrogate, not Unicode text", id="surrogate"),
]


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[HistoryStore]:
    made = make(request.param, tmp_path, lambda: 1000.0)
    yield made
    made.close()


def sendable(answer: dict[str, Any]) -> bool:
    """Whether the RESULT carrying ``answer`` encodes in JSON, MessagePack and CBOR alike."""
    for serializer in SERIALIZERS:
        message.Result(1, args=[answer]).serialize(serializer)
    return True


@pytest.mark.parametrize(("kwargs", "problem"), OLD)
def test_a_page_stops_before_an_old_unsendable_event_then_says_unrecoverable(
    store: HistoryStore, kwargs: dict[str, Any], problem: str
) -> None:
    append(store, TOPIC, [1], {}, KEEP)
    append(store, TOPIC, [2], kwargs, KEEP)
    append(store, TOPIC, [3], {}, KEEP)
    first = recover(store, TOPIC, "exact", store.epoch, 0)
    assert sendable(first)
    assert [e["args"] for e in first["events"]] == [[1]] and first["more"] is True
    after = first["events"][-1]["position"]["cursor"]
    second = recover(store, TOPIC, "exact", store.epoch, after)
    assert sendable(second)
    assert second == {
        "unrecoverable": True,
        "reason": f"a missed event cannot be sent to every subscriber ({problem}): "
        "it was stored before the node refused such events",
        "epoch": store.epoch,
        "cursor": 3,
    }
    # past it, recovery answers as ever
    third = recover(store, TOPIC, "exact", store.epoch, 2)
    assert [e["args"] for e in third["events"]] == [[3]] and third["more"] is False


def test_ordinary_events_are_answered_whole(store: HistoryStore) -> None:
    """What every serializer carries is answered as before, in one page."""
    append(store, TOPIC, [1, "é", 2**63], {"k": [None, 1.5]}, KEEP)
    append(store, TOPIC, [2], {}, KEEP)
    answer = recover(store, TOPIC, "exact", store.epoch, 0)
    assert sendable(answer)
    assert [e["args"] for e in answer["events"]] == [[1, "é", 2**63], [2]] and answer["more"] is False
