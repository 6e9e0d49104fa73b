"""What the Redis engine sends as an event's payload: the same compact JSON ``json.dumps`` writes.

:func:`broker.engines.redis_wire.event_args` encodes with one C encoder made
once instead of a ``JSONEncoder.encode`` per event; other nodes decode the
stored text with ``json.loads``, so it must be byte for byte what the
encoder per call gave, and a payload it cannot encode must fail as it did and
leave the encoder usable.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from broker.engines import redis_wire as wire
from broker.history import NewEvent, Retention

KEEP = Retention(max_events=10, max_age=60.0)
PAYLOADS: list[Any] = [
    [[1], {}],
    [[{"symbol": "ACME", "price": 123.45, "volume": 1000, "note": "x" * 40}], {}],
    [["é ✓ 😀", None, True, False, -0.0, 1e300, 2**70], {"k": [1.5, {"n": []}]}],
    [[float("nan"), float("inf")], {"b": '\u2028\n"\\'}],
]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_the_payload_is_what_json_dumps_writes(payload: list[Any]) -> None:
    args, kwargs = payload
    sent = wire.event_args([NewEvent("t", args, kwargs, KEEP)])
    assert sent == ["t", "10", "60.0", json.dumps([args, kwargs], separators=(",", ":"))]


def test_a_payload_it_cannot_encode_fails_and_the_next_encodes() -> None:
    looped: list[Any] = []
    looped.append(looped)
    with pytest.raises(ValueError, match="Circular reference"):
        wire.event_args([NewEvent("t", [looped], {}, KEEP)])
    with pytest.raises(TypeError):
        wire.event_args([NewEvent("t", [{1, 2}], {}, KEEP)])
    shared = [1]
    sent = wire.event_args([NewEvent("t", [shared, shared], {}, KEEP)])  # no stale markers
    assert sent[3] == "[[[1],[1]],{}]"


def test_each_event_carries_its_own_topics_retention() -> None:
    kept, other = Retention(5, 1.5), Retention(0, 0.0)
    batch = [NewEvent("t", [1], {}, kept), NewEvent("u", [2], {}, other), NewEvent("t", [3], {}, kept)]
    assert wire.event_args(batch) == [
        *["t", "5", "1.5", "[[1],{}]"],
        *["u", "0", "0.0", "[[2],{}]"],
        *["t", "5", "1.5", "[[3],{}]"],
    ]
