"""Session rules crossbar does not enforce: which message when, and request URIs."""

import datetime
import json
from typing import Any

import cbor2
import pytest

from broker.core.protocol import (
    ABORT,
    AUTHENTICATE,
    CALL,
    HELLO,
    PUBLISH,
    REGISTER,
    SUBSCRIBE,
    check_allowed,
    check_publish_payload,
    check_request_uri,
    json_nesting_exceeds,
    lone_surrogate,
    must_walk,
    unsendable,
)
from broker.errors import ProtocolViolation


@pytest.mark.parametrize(
    ("message_type", "state", "error"),
    [
        (HELLO, "opening", None),
        (ABORT, "opening", None),
        (PUBLISH, "opening", "PUBLISH is not allowed before HELLO"),
        (HELLO, "authenticating", "HELLO is not allowed during authentication"),
        (AUTHENTICATE, "authenticating", None),
        (HELLO, "joined", "HELLO is not allowed after WELCOME"),
        (AUTHENTICATE, "joined", "AUTHENTICATE is not allowed after WELCOME"),
        (PUBLISH, "joined", None),
        (36, "joined", "EVENT is not allowed after WELCOME"),  # router-to-client message
        (99, "joined", "unknown WAMP message type 99"),
        ("1", "opening", "unknown WAMP message type '1'"),
    ],
)
def test_check_allowed(message_type: object, state: str, error: str | None) -> None:
    if error is None:
        check_allowed(message_type, state)
    else:
        with pytest.raises(ProtocolViolation, match=error):
            check_allowed(message_type, state)


@pytest.mark.parametrize("topic", ["a b", "a#b", 12345])
def test_invalid_subscribe_topic_is_answered(topic: object) -> None:
    rejection = check_request_uri([SUBSCRIBE, 7, {}, topic])
    assert rejection is not None
    assert (rejection.request_type, rejection.request_id, rejection.reply) == (SUBSCRIBE, 7, True)
    assert rejection.error.wamp_uri == "wamp.error.invalid_uri"


def test_prefix_subscription_may_end_with_dot() -> None:
    assert check_request_uri([SUBSCRIBE, 1, {"match": "prefix"}, "user.42."]) is None
    assert check_request_uri([SUBSCRIBE, 1, {}, "user.42."]) is not None


def test_publish_without_acknowledge_gets_no_error_reply() -> None:
    rejection = check_request_uri([PUBLISH, 1, {}, "a b", []])
    assert rejection is not None and rejection.reply is False
    acked = check_request_uri([PUBLISH, 1, {"acknowledge": True}, "a b", []])
    assert acked is not None and acked.reply is True


def test_valid_and_malformed_requests_are_left_alone() -> None:
    assert check_request_uri([CALL, 1, {}, "wamp.session.list"]) is None
    assert check_request_uri([REGISTER, 1, {}, "orders.get"]) is None
    assert check_request_uri([SUBSCRIBE, "x", {}, "a b"]) is None  # the parser rejects it
    assert check_request_uri([HELLO, "app", {}]) is None


@pytest.mark.parametrize(
    ("payload", "exceeds"),
    [
        (b"[" * 101 + b"]" * 101, True),
        (b"[" * 100 + b"]" * 100, False),
        (b'["' + b"[" * 300 + b'"]', False),  # brackets inside a string
        (b'["\\"' + b"[" * 300 + b'"]', False),  # escaped quote inside the string
        (b"[" + b'{"a":[1]},' * 500 + b"1]", False),  # many brackets, shallow
        (b"[" * 60000 + b"]" * 60000, True),
    ],
)
def test_json_nesting(payload: bytes, exceeds: bool) -> None:
    assert json_nesting_exceeds(payload) is exceeds


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (b'["\\ud800"]', "a JSON string holds a lone surrogate (\\ud800), not Unicode text"),
        (b'{"\\uDFFF": 1}', "a JSON string holds a lone surrogate (\\udfff), not Unicode text"),
        (b'["\\ud83d\\ude00"]', None),  # a pair: one character
        (b'["\\u00e9", "plain"]', None),  # other escapes are not surrogates
    ],
)
def test_a_lone_surrogate_is_named_and_everything_else_passes(text: bytes, problem: str | None) -> None:
    assert lone_surrogate(text, json.loads(text)) == problem


def test_binary_values_autobahn_decoded_do_not_hide_a_lone_surrogate() -> None:
    text = b'["\\u0000AA==", "\\ud800"]'  # autobahn hands the first over as bytes
    assert lone_surrogate(text, [b"\x00", "\ud800"]) is not None
    assert lone_surrogate(b'["\\u0000AA==", "\\ud83d\\ude00"]', [b"\x00", "\U0001f600"]) is None


def test_only_a_publish_with_an_integer_beyond_64_bits_is_refused() -> None:
    big = [PUBLISH, 5, {"acknowledge": True}, "public.x", [1, {"deep": [2**64]}]]
    rejection = check_publish_payload(big, b"18446744073709551616", "json")
    assert rejection is not None and (rejection.request_id, rejection.reply) == (5, True)
    assert str(rejection.error) == "an integer of 65 bits: MessagePack subscribers can be sent at most 64"
    assert rejection.reason == "unsendable_payload"
    quiet = [PUBLISH, 6, {}, "public.x", [], {"n": -(2**63) - 1}]
    assert check_publish_payload(quiet, b"-9223372036854775809", "json").reply is False  # type: ignore[union-attr]
    edges = [PUBLISH, 7, {}, "public.x", [2**64 - 1, -(2**63)]]
    assert check_publish_payload(edges, b"18446744073709551615", "json") is None
    assert check_publish_payload([SUBSCRIBE, 8, {}, "public.x"], b"1" * 30, "json") is None


def test_only_json_without_a_long_number_goes_unwalked() -> None:
    assert not must_walk(b'[16,1,{},"t",[1234567890123456789]]', "json")  # 19 digits
    assert not must_walk(b'[16,1,{},"t",[-922337203685477580]]', "json")
    assert must_walk(b'[16,1,{},"t",[12345678901234567890]]', "json")
    assert must_walk(b'[16,1,{},"t",[-9223372036854775809]]', "json")  # 19 after a minus
    assert must_walk(cbor2.dumps([1]), "cbor") and must_walk(b"\x91\x01", "msgpack")
    # the digit-run prefilter: 19 digits after a letter are no long number, 20 after 13 KiB are
    assert not must_walk(b'["x1234567890123456789"]', "json")
    many = b'{"events":[' + b",".join([b'{"topic":"t","data":[123.45,1000]}'] * 400) + b"]}"
    assert not must_walk(many, "json")
    assert must_walk(many[:-2] + b',{"topic":"t","data":[12345678901234567890]}]}', "json")


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ([1, "s", b"\x00", 1.5, True, None, {"k": [2**64 - 1, -(2**63)]}, (1,), {1: "int key"}], None),
        ([{"deep": [2**64]}], "an integer of 65 bits: MessagePack subscribers can be sent at most 64"),
        ([{b"key": 1}], "a map key of type bytes: JSON subscribers cannot be sent it"),
        ([{1, 2}], "a value of type set: not every subscriber's serializer can carry it"),
        (
            [cbor2.loads(cbor2.dumps(datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)))],
            "a value of type datetime: not every subscriber's serializer can carry it",
        ),
    ],
)
def test_unsendable_names_what_a_serializer_could_not_carry(value: Any, problem: str | None) -> None:
    assert unsendable(value) == problem


def wrapped(depth: int, leaf: Any, in_map: bool = False) -> Any:
    """``leaf`` inside ``depth`` arrays (or maps, every other one with ``in_map``)."""
    value = leaf
    for n in range(depth):
        value = {"k": value} if in_map and n % 2 else [value]
    return value


@pytest.mark.parametrize("in_map", [False, True])
@pytest.mark.parametrize("depth", [97, 98, 99, 100])
def test_a_binary_publish_may_nest_exactly_as_deep_as_a_json_one(depth: int, in_map: bool) -> None:
    """The JSON limit, checked on the text, and the walk of a MessagePack or CBOR payload
    (which could nest ~1000 levels, past what JSON subscribers and stores can be written) agree."""
    for place in (4, 5):  # in args, in kwargs
        payload: list[Any] = [[], {}]
        payload[place - 4] = [wrapped(depth, b"\x00")] if place == 4 else {"deep": wrapped(depth, b"\x00")}
        raw = [PUBLISH, 3, {"acknowledge": True}, "public.x", *payload]
        as_json = json.dumps([PUBLISH, 3, {"acknowledge": True}, "public.x", *payload], default=lambda _: "b")
        rejection = check_publish_payload(raw, cbor2.dumps(raw), "cbor")
        assert (rejection is not None) == json_nesting_exceeds(as_json.encode()), (depth, place)
        if rejection is not None:
            assert str(rejection.error) == "nested deeper than 100 levels, the limit of a WAMP message"
            assert (rejection.reason, rejection.reply) == ("unsendable_payload", True)
    assert unsendable(wrapped(5000, 1)) is None  # no limit: only the publish check has one
