"""An event's arguments written once: the same text as autobahn's JSON serializer and the store's.

Pure, no reactor: :func:`broker.history.eventtext.args_json` and
:func:`~broker.history.eventtext.wire_tail` against ``json.dumps`` with
autobahn's options and against ``marshal()`` of a real ``message.Event``;
:func:`broker.history.storedtext.encode` given ``args_json`` against itself
without it, over every character up to U+00A0 and a few beyond.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from autobahn.wamp import message
from autobahn.wamp import serializer as wamp_serializer

from broker.history import POSITION_KEY, storedtext
from broker.history.eventtext import args_json, wire_tail

#: Strings that every quoting rule writes differently somewhere: controls, DEL, Latin-1, the JSON
#: line separators, an astral character, quotes and backslashes.
AWKWARD = ["".join(map(chr, range(0xA1))), "é€", "\u2028\u2029", "😀", '"\\/', "\x7f", "", "plain"]
VALUES: list[Any] = [
    *AWKWARD,
    {"symbol": "ACME", "price": 123.45, "volume": 1000, "note": "x" * 40},
    [1.5, 1e15, 1e16, -0.0, 2**63, -(2**70), float("nan"), float("inf"), True, False, None],
    {"nested": [{"k": ["é", {"\x7f": 0.1}]}], "": {}},
    [],
    {},
    0,
]
POSITION = {"epoch": "0acde71b8415968d", "seq": 7, "cursor": 123456789}


def autobahn_tail(args: list[Any], kwargs: dict[str, Any]) -> bytes:
    """What follows the details in autobahn's JSON frame of an EVENT of ``args`` and ``kwargs``."""
    event = message.Event(1, 2, args=args, kwargs=kwargs)
    whole = wamp_serializer.JsonObjectSerializer().serialize(event.marshal())
    head = b"[36,1,2,{}"
    assert whole.startswith(head) and whole.endswith(b"]")
    return whole[len(head) + 1 : -1]


@pytest.mark.parametrize("value", VALUES, ids=range(len(VALUES)))
def test_args_json_is_what_autobahn_writes(value: Any) -> None:
    compact = json.dumps([value], separators=(",", ":"), ensure_ascii=False)
    assert args_json([value]) == compact
    assert autobahn_tail([value], {}) == compact.encode()


@pytest.mark.parametrize("value", VALUES, ids=range(len(VALUES)))
@pytest.mark.parametrize(
    "kwargs",
    [{}, {POSITION_KEY: POSITION}, {POSITION_KEY: {**POSITION, "epoch": 'é"\x7f'}}, {"n": 1, "é": [2]}],
    ids=["none", "position", "odd-epoch", "other"],
)
def test_wire_tail_is_what_follows_the_details_in_autobahns_frame(value: Any, kwargs: dict[str, Any]) -> None:
    args = [value]
    text = args_json(args)
    assert text is not None
    assert wire_tail(args, text, kwargs).encode() == autobahn_tail(args, kwargs)  # type: ignore[union-attr]


def test_wire_tail_follows_marshal_for_empty_arguments() -> None:
    assert wire_tail([], "[]", {}) == ""  # marshal writes neither
    positioned = {POSITION_KEY: POSITION}
    assert wire_tail([], "[]", positioned).encode() == autobahn_tail([], positioned)
    # a position of another shape is written whole, as autobahn writes it
    for odd in ({"seq": 1, "epoch": "e", "cursor": 2}, {**POSITION, "seq": True}, {**POSITION, "x": 1}):
        assert wire_tail([1], "[1]", {POSITION_KEY: odd}).encode() == autobahn_tail([1], {POSITION_KEY: odd})


@pytest.mark.parametrize("value", [b"\x00\xff", Decimal("1.5"), object(), {1j: 2}], ids=repr)
def test_args_json_gives_up_on_what_only_autobahn_writes_or_none_does(value: Any) -> None:
    assert args_json([value]) is None
    assert wire_tail([1], "[1]", {"b": value}) is None  # other kwargs are written by args_json


def test_args_json_gives_up_on_a_cycle() -> None:
    looped: list[Any] = []
    looped.append(looped)
    assert args_json(looped) is None
    assert args_json([1]) == "[1]"  # the encoder's markers are empty again


@pytest.mark.parametrize("value", [*VALUES, b"\x00", {"\x00b": 1}], ids=range(len(VALUES) + 2))
def test_stored_text_from_args_json_is_the_stored_text(value: Any) -> None:
    """ASCII without DEL: made from ``args_json``; else (and with bytes, kwargs) written as before."""
    args = [value]
    assert storedtext.encode(args, {}, args_json(args)) == storedtext.encode(args, {})
    assert storedtext.encode(args, {"k": 1}, args_json(args)) == storedtext.encode(args, {"k": 1})
