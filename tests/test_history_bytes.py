"""Bytes from a MessagePack or CBOR publisher, live and recovered, on every history engine.

WAMP carries binary in every serializer: MessagePack and CBOR as bytes, JSON as
a string, ``"\\u0000"`` + base64 (autobahn's form, which crossbar sends). The
publish checks allow bytes, so an event holding them must be acknowledged,
delivered and stored by memory, SQLite and Redis alike, and a recovery must
answer it as live delivery did, in the caller's serializer; after a restart
too, for SQLite. No traceback may reach the node's log.
"""

from __future__ import annotations

import base64
import secrets
import signal
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tests.node import BACKEND_SECRET, Node
from tests.rawwamp import ERROR, PUBLISHED, RESULT, SUBSCRIBED, RawWamp
from tests.redisserver import RedisServer

pytestmark = pytest.mark.node

POSITION = "broker_position"
SERIALIZERS = ("json", "msgpack", "cbor")
#: bytes at the top of args and kwargs, and nested in lists and maps
ARGS: list[Any] = [b"\x00\xffraw", [b"in a list", b""], {"d": b"in a map", "n": 1}, "text"]
KWARGS: dict[str, Any] = {
    "blob": b"kw",
    "nested": {"list": [b"deep", {"more": b"\x01\x02"}]},
    "\x00b": "a key that looks like a stored tag",
}


def as_json(value: Any) -> Any:
    """``value`` as a JSON subscriber gets it: each bytes a string, ``"\\u0000"`` + base64."""
    if isinstance(value, bytes):
        return "\x00" + base64.b64encode(value).decode("ascii")
    if isinstance(value, list):
        return [as_json(item) for item in value]
    if isinstance(value, dict):
        return {key: as_json(item) for key, item in value.items()}
    return value


def expected(serializer: str, value: Any) -> Any:
    return as_json(value) if serializer == "json" else value


def client(node: Node, serializer: str, backend: bool = False) -> RawWamp:
    wamp = RawWamp(node.ws_url, origin=node.origin, serializer=serializer)
    welcome = wamp.hello(authid="backend", secret=BACKEND_SECRET) if backend else wamp.hello()
    assert welcome[0] == 2, welcome
    return wamp


def recover(wamp: RawWamp, topic: str, position: dict[str, Any]) -> Any:
    reply = wamp.call("broker.recover", [topic], {"epoch": position["epoch"], "after": position["cursor"]})
    assert reply[0] == RESULT, reply
    return reply[3][0]


def sqlite_store(config: dict[str, Any]) -> None:
    config["workers"][0]["components"][0]["extra"]["history"]["store"] = {
        "type": "sqlite",
        "path": "history.sqlite3",
    }


def redis_store(url: str) -> Callable[[dict[str, Any]], None]:
    def mutate(config: dict[str, Any]) -> None:
        extra = config["workers"][0]["components"][0]["extra"]
        extra["history"]["store"] = {"type": "redis", "url": url, "prefix": f"b{secrets.token_hex(6)}"}

    return mutate


def check_recovery(node: Node, topic: str, before: dict[str, Any], live: dict[str, list[Any]]) -> None:
    """A recovery by a caller of each serializer answers what its live subscriber got."""
    for serializer in SERIALIZERS:
        answer = recover(client(node, serializer), topic, before)
        assert answer["unrecoverable"] is False and answer["more"] is False, answer
        got = [(e["args"], e["kwargs"], e["position"]) for e in answer["events"]]
        want = [
            (e[4], {k: v for k, v in e[5].items() if k != POSITION}, e[5][POSITION]) for e in live[serializer]
        ]
        assert got == want, serializer


def publish_and_recover(node: Node) -> tuple[str, dict[str, Any], dict[str, list[Any]]]:
    """Publish the bytes from a MessagePack and a CBOR publisher; check delivery and recovery."""
    topic = f"public.bytes.{uuid.uuid4().hex[:8]}"
    subscribers = {serializer: client(node, serializer) for serializer in SERIALIZERS}
    for wamp in subscribers.values():
        assert wamp.subscribe(topic)[0] == SUBSCRIBED
    plain = client(node, "json", backend=True)
    assert plain.publish(topic, ["before"])[0] == PUBLISHED
    before = subscribers["json"].event()[5][POSITION]
    for wamp in subscribers.values():
        if wamp is not subscribers["json"]:
            wamp.event()
    live: dict[str, list[Any]] = {serializer: [] for serializer in SERIALIZERS}
    for serializer in ("msgpack", "cbor"):
        publisher = client(node, serializer, backend=True)
        ack = publisher.publish(topic, ARGS, KWARGS)
        assert ack is not None and ack[0] == PUBLISHED, ack
        for name, wamp in subscribers.items():
            event = wamp.event()
            assert event[4] == expected(name, ARGS), name
            assert {k: v for k, v in event[5].items() if k != POSITION} == expected(name, KWARGS), name
            live[name].append(event)
    check_recovery(node, topic, before, live)
    return topic, before, live


def assert_clean_log(node: Node) -> None:
    log = node.log()
    assert "Traceback" not in log and "history_unavailable" not in log, log[-4000:]


def test_bytes_on_the_memory_engine(make_node: Callable[..., Node]) -> None:
    node = make_node()
    publish_and_recover(node)
    assert_clean_log(node)


def test_bytes_on_the_redis_engine(make_node: Callable[..., Node], redis_server: RedisServer) -> None:
    node = make_node(redis_store(redis_server.url))
    publish_and_recover(node)
    assert_clean_log(node)


def test_bytes_on_the_sqlite_engine_survive_a_restart(make_node: Callable[..., Node]) -> None:
    node = make_node(sqlite_store)
    topic, before, live = publish_and_recover(node)
    assert_clean_log(node)
    node.stop(signal.SIGKILL)
    restarted = Node(node.workdir, mutate=sqlite_store).start()
    try:
        check_recovery(restarted, topic, before, live)
        assert_clean_log(restarted)
    finally:
        restarted.stop()


def nested(depth: int) -> Any:
    value: Any = b"\x00"
    for _ in range(depth):
        value = [value]
    return value


def test_what_the_checks_refuse_is_a_wamp_error_not_a_traceback(make_node: Callable[..., Node]) -> None:
    """A bytes map key no JSON subscriber could be sent, a payload nested deeper than a WAMP
    message may be (a MessagePack one decodes up to ~1000 levels, which neither JSON
    subscribers nor the store could be written: acknowledged, it dropped every JSON
    subscriber, or failed in the store with a traceback): refused with ERROR, session kept."""
    node = make_node(sqlite_store)
    topic = f"public.bytes.{uuid.uuid4().hex[:8]}"
    subscriber = client(node, "json")
    assert subscriber.subscribe(topic)[0] == SUBSCRIBED
    deepest = 99  # args the outermost, inside the message: 100 levels, as a JSON message may have
    deep = "nested deeper than 100 levels, the limit of a WAMP message"
    refused = {
        "msgpack": [
            ([{b"key": 1}], "a map key of type bytes: JSON subscribers cannot be sent it"),
            (nested(deepest + 1), deep),
            (nested(990), deep),  # CBOR's decoder refuses ~500 levels itself: ABORT
        ],
        "cbor": [
            ([{b"key": 1}], "a map key of type bytes: JSON subscribers cannot be sent it"),
            (nested(100), deep),
        ],
    }
    for serializer, cases in refused.items():
        publisher = client(node, serializer, backend=True)
        for args, problem in cases:
            reply = publisher.publish(topic, args)
            assert reply is not None and reply[:1] + reply[4:] == [
                ERROR,
                "broker.error.bad_request",
                [problem],
            ]
        assert publisher.publish(topic, nested(deepest))[0] == PUBLISHED  # same session
    for _ in refused:
        assert subscriber.event()[4] == as_json(nested(deepest))
    assert node.rejections()["unsendable_payload"] == sum(len(cases) for cases in refused.values())
    assert_clean_log(node)
