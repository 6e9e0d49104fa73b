"""The long-poll request rules as plain functions (:mod:`broker.core.longpoll`): no node needed."""

from __future__ import annotations

import pytest

from broker.core.longpoll import DEFAULT_MAX_MESSAGE_SIZE, body_too_large, max_message_size, open_protocol
from broker.errors import ClientError

SUPPORTED = ["json", "json.batched", "msgpack"]


def ws(**options: int) -> dict[str, object]:
    return {"type": "websocket", "options": options}


def test_limit_is_the_smallest_websocket_max_message_size() -> None:
    paths = {"ws": ws(max_message_size=65536), "ws2": ws(max_message_size=4096), "lp": {"type": "longpoll"}}
    assert max_message_size(paths) == 4096


def test_limit_defaults_to_crossbars_where_unset() -> None:
    assert max_message_size({"ws": ws()}) == DEFAULT_MAX_MESSAGE_SIZE == 2**24
    assert max_message_size({"lp": {"type": "longpoll"}}) == DEFAULT_MAX_MESSAGE_SIZE


@pytest.mark.parametrize(
    ("size", "declared", "reason"),
    [
        (100, True, None),
        (101, True, "long-poll request body of 101 bytes exceeds max_message_size (100 bytes)"),
        (101, False, "long-poll request body exceeds max_message_size (100 bytes)"),
    ],
)
def test_body_limit_is_inclusive(size: int, declared: bool, reason: str | None) -> None:
    assert body_too_large(size, 100, declared) == reason


def test_first_offered_protocol_the_node_speaks_wins() -> None:
    body = b'{"protocols": ["wamp.2.cbor", "wamp.2.msgpack", "wamp.2.json"]}'
    assert open_protocol(body, SUPPORTED) == "wamp.2.msgpack"


def test_unknown_keys_are_ignored() -> None:
    assert open_protocol(b'{"protocols": ["wamp.2.json"], "x": 1}', SUPPORTED) == "wamp.2.json"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            b'{"protocols": []}',
            "no common protocol: offered [], this node speaks wamp.2.json, "
            "wamp.2.json.batched, wamp.2.msgpack",
        ),
        (b'{"protocols": null}', '"protocols" must be an array of strings like ["wamp.2.json"], not null'),
        (
            b'"wamp.2.json"',
            "the long-poll open request must be a JSON object like "
            '{"protocols": ["wamp.2.json"]}, not a string',
        ),
        (
            b"[" * 100 + b"]" * 100,
            "the long-poll open request must be a JSON object like "
            '{"protocols": ["wamp.2.json"]}, not an array',
        ),
    ],
)
def test_bad_open_bodies_name_the_problem(body: bytes, message: str) -> None:
    with pytest.raises(ClientError) as raised:
        open_protocol(body, SUPPORTED)
    assert str(raised.value) == message
    assert (raised.value.wamp_uri, raised.value.http_status) == ("broker.error.bad_request", 400)
