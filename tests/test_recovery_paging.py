"""Recovery pages bounded by bytes, and events refused when they could not be delivered.

Every bound is checked against autobahn's own serializers (JSON, MessagePack,
CBOR) on the real WAMP messages: the RESULT that carries a recovery answer and
the EVENT that carries a live event with its position.
"""

from __future__ import annotations

from typing import Any

import pytest
import txaio

txaio.use_twisted()  # autobahn's serializers keep statistics with txaio's clock

from autobahn.wamp import message  # noqa: E402
from autobahn.wamp.serializer import CBORSerializer, JsonSerializer, MsgPackSerializer  # noqa: E402

from broker.config import nodeconfig  # noqa: E402
from broker.engines.memory import MemoryStore  # noqa: E402
from broker.errors import PayloadTooLarge  # noqa: E402
from broker.history import POSITION_KEY, Retention  # noqa: E402
from broker.history.recovery import ENVELOPE_RESERVE, MAX_EVENTS, check_deliverable  # noqa: E402
from broker.history.wiresize import wire_size  # noqa: E402
from tests.engines import append, recover  # noqa: E402

LIMIT = 65536
KEEP = Retention(max_events=100000, max_age=3600.0)
SERIALIZERS = {"json": JsonSerializer(), "msgpack": MsgPackSerializer(), "cbor": CBORSerializer()}
MAX_ID = 2**53


def result_sizes(answer: dict[str, Any]) -> dict[str, int]:
    """The RESULT carrying ``answer``, as each serializer writes it, in bytes."""
    sizes = {}
    for name, serializer in SERIALIZERS.items():
        payload, _ = serializer.serialize(message.Result(MAX_ID, args=[answer]))
        sizes[name] = len(payload)
    return sizes


def event_sizes(
    topic: str, args: list[Any], kwargs: dict[str, Any], position: dict[str, Any]
) -> dict[str, int]:
    """The EVENT of a pattern subscription (the topic in its details), per serializer."""
    sizes = {}
    for name, serializer in SERIALIZERS.items():
        msg = message.Event(MAX_ID, MAX_ID, args=args, kwargs={**kwargs, POSITION_KEY: position}, topic=topic)
        payload, _ = serializer.serialize(msg)
        sizes[name] = len(payload)
    return sizes


def recover_all(store: MemoryStore, topic: str, match: str, max_bytes: int) -> list[dict[str, Any]]:
    """Page through everything after cursor 0, checking each answer's size on the wire."""
    events: list[dict[str, Any]] = []
    after, pages = 0, 0
    while True:
        answer = recover(store, topic, match, store.epoch, after, max_bytes=max_bytes)
        assert answer["unrecoverable"] is False
        assert answer["events"], "a page holds at least one event while any is pending"
        assert max(result_sizes(answer).values()) <= max_bytes - ENVELOPE_RESERVE
        events += answer["events"]
        pages += 1
        after = answer["events"][-1]["position"]["cursor"]
        if not answer["more"]:
            break
    assert pages < 10000
    return events


# -- wire_size bounds every serializer ---------------------------------------------------------

VALUES: list[Any] = [
    None,
    True,
    [True, False, None],
    *[n for n in (0, 23, 24, 99, 100, 127, 128, 255, 256, 32767, 32768, 65535, 65536, 2**31, 2**32, 2**63)],
    *[-n for n in (1, 24, 25, 32, 33, 128, 129, 32768, 32769, 2**31, 2**31 + 1, 2**63)],
    [1.0] * 1000,  # 4 bytes each in JSON, 9 in MessagePack and CBOR
    [0.1, -2.5e300, 1e-7, float("inf")],
    *["x" * n for n in (0, 23, 24, 31, 32, 255, 256, 257, 65535, 65536, 70000)],
    ["é€😀" * 100, 'a"b\\c\n\x00\x1f'],
    *[b"\x00\xff" * n for n in (0, 1, 12, 127, 128, 40000)],
    {"k": {"nested": [{"a": [1, 2, {"b": "c" * 300}]}] * 50}},
    {str(n): "v" * n for n in range(300)},
    {1: "int keys come from msgpack publishers", 2.5: [], None: {}},
    [[[[[["deep"]]]]]] * 100,
]


def encoded_sizes(value: Any) -> dict[str, int]:
    """What ``value`` takes in a WAMP message, per serializer: the message with it, less the
    message with an empty string in its place (1 byte in MessagePack and CBOR, 2 in JSON)."""
    return {
        name: len(serializer.serialize(message.Publish(1, "t", args=[value]))[0])
        - len(serializer.serialize(message.Publish(1, "t", args=[""]))[0])
        + (2 if name == "json" else 1)
        for name, serializer in SERIALIZERS.items()
    }


@pytest.mark.parametrize("value", VALUES, ids=lambda v: repr(v)[:40])
def test_wire_size_bounds_json_msgpack_and_cbor(value: Any) -> None:
    sizes = encoded_sizes(value)
    assert wire_size(value) >= max(sizes.values()), sizes


def test_wire_size_is_close_to_json_for_text_events() -> None:
    lines = [{"sku": f"A-{n}", "note": "text " * 20} for n in range(50)]
    event = {"order": 7, "status": "shipped", "lines": lines}
    json_size = encoded_sizes(event)["json"]
    assert json_size <= wire_size(event) <= json_size * 1.02


def test_wire_size_walks_deep_nesting_without_recursion() -> None:
    value: Any = "x"
    for _ in range(100000):
        value = [value]
    assert wire_size(value) >= 200000


# -- pages bounded by bytes ----------------------------------------------------------------------


def test_many_small_events_page_under_the_limit_each_once_in_order() -> None:
    store = MemoryStore()
    for n in range(600):
        append(store, "public.small", [{"n": n, "pad": "p" * 80}], {}, KEEP)
    first = recover(store, "public.small", "exact", store.epoch, 0, max_bytes=LIMIT)
    assert first["more"] is True and len(first["events"]) < 600  # 600 of ~170 bytes: over 64 KiB
    sizes = result_sizes(first)
    assert max(sizes.values()) <= LIMIT - ENVELOPE_RESERVE
    assert sizes["json"] > LIMIT - ENVELOPE_RESERVE - 1000  # full: JSON, the largest form here
    events = recover_all(store, "public.small", "exact", LIMIT)
    assert [e["args"][0]["n"] for e in events] == list(range(600))


def test_large_events_page_a_few_at_a_time() -> None:
    store = MemoryStore()
    for n in range(20):
        append(store, f"public.big.{n % 3}", [{"n": n, "blob": "b" * 10000}], {"k": n}, KEEP)
    events = recover_all(store, "public.big.", "prefix", LIMIT)
    assert [e["args"][0]["n"] for e in events] == list(range(20))
    assert [e["kwargs"] for e in events] == [{"k": n} for n in range(20)]


def test_float_heavy_events_are_paged_by_their_msgpack_size() -> None:
    store = MemoryStore()
    for _ in range(20):
        append(store, "public.floats", [[1.0] * 2000], {}, KEEP)  # 8 KB of JSON, 18 KB of msgpack
    events = recover_all(store, "public.floats", "exact", LIMIT)
    assert len(events) == 20


def test_one_event_larger_than_a_page_still_comes_alone() -> None:
    """An event stored before the limit was lowered: the page holds it, and `more` the rest."""
    store = MemoryStore()
    append(store, "public.t", ["small"], {}, KEEP)
    append(store, "public.t", ["x" * 100000], {}, KEEP)
    append(store, "public.t", ["small"], {}, KEEP)
    first = recover(store, "public.t", "exact", store.epoch, 0, max_bytes=LIMIT)
    assert [e["args"][0] for e in first["events"]] == ["small"] and first["more"] is True
    second = recover(store, "public.t", "exact", store.epoch, 1, max_bytes=LIMIT)
    assert [len(e["args"][0]) for e in second["events"]] == [100000] and second["more"] is True
    third = recover(store, "public.t", "exact", store.epoch, 2, max_bytes=LIMIT)
    assert [e["args"][0] for e in third["events"]] == ["small"] and third["more"] is False


def test_without_a_size_limit_pages_by_count() -> None:
    store = MemoryStore()
    for _ in range(MAX_EVENTS + 5):
        append(store, "public.t", ["x" * 100], {}, KEEP)
    answer = recover(store, "public.t", "exact", store.epoch, 0)
    assert len(answer["events"]) == MAX_EVENTS and answer["more"] is True


def test_page_boundary_is_exact() -> None:
    """The second event joins the page when it fits to the byte, and not one byte later."""
    store = MemoryStore()
    append(store, "public.t", ["a" * 1000], {}, KEEP)
    append(store, "public.t", ["b" * 1000], {}, KEEP)
    both = next(
        limit
        for limit in range(1000, 8000)
        if len(recover(store, "public.t", "exact", store.epoch, 0, max_bytes=limit)["events"]) == 2
    )
    assert len(recover(store, "public.t", "exact", store.epoch, 0, max_bytes=both - 1)["events"]) == 1
    answer = recover(store, "public.t", "exact", store.epoch, 0, max_bytes=both)
    assert answer["more"] is False
    assert max(result_sizes(answer).values()) <= both - ENVELOPE_RESERVE


# -- events refused when they could not be delivered ---------------------------------------------


def largest_accepted(store: MemoryStore, topic: str, filler: Any) -> int:
    """The largest n for which ``filler(n)`` is accepted (binary search)."""
    low, high = 0, LIMIT
    while low < high:
        mid = (low + high + 1) // 2
        try:
            check_deliverable(topic, [filler(mid)], {}, store.epoch, LIMIT)
            low = mid
        except PayloadTooLarge:
            high = mid - 1
    return low


@pytest.mark.parametrize(
    ("name", "filler"),
    [("text", lambda n: "x" * n), ("binary", lambda n: b"\x01" * n), ("floats", lambda n: [0.5] * (n // 4))],
)
def test_an_event_at_the_limit_is_deliverable_and_recoverable_and_one_byte_more_is_refused(
    name: str, filler: Any
) -> None:
    store = MemoryStore()
    topic = "public.boundary"
    n = largest_accepted(store, topic, filler)
    assert n > 0
    with pytest.raises(PayloadTooLarge, match="over this node's message limit of 65536 bytes"):
        check_deliverable(topic, [filler(n + (4 if name == "floats" else 1))], {}, store.epoch, LIMIT)
    # accepted: stored with a real (largest possible) position, it fits live and recovered
    for _ in range(3):
        append(store, topic, [filler(n)], {}, KEEP)
    position = {"epoch": store.epoch, "seq": 2**63 - 1, "cursor": 2**63 - 1}
    assert max(event_sizes(topic, [filler(n)], {}, position).values()) <= LIMIT - ENVELOPE_RESERVE
    events = recover_all(store, topic, "exact", LIMIT)
    assert len(events) == 3


def test_an_event_without_history_is_measured_without_a_position() -> None:
    topic = "broker.internal"
    small_enough = "x" * (LIMIT - ENVELOPE_RESERVE - 100)
    check_deliverable(topic, [small_enough], {}, None, LIMIT)
    with pytest.raises(PayloadTooLarge):
        check_deliverable(topic, [small_enough], {}, "0123456789abcdef", LIMIT)


def test_publisher_details_count_toward_the_event() -> None:
    store = MemoryStore()
    n = largest_accepted(store, "public.t", lambda n: "x" * n)
    check_deliverable("public.t", ["x" * n], {}, store.epoch, LIMIT)
    with pytest.raises(PayloadTooLarge):
        check_deliverable("public.t", ["x" * n], {}, store.epoch, LIMIT, {"transaction_hash": "h" * 200})


def test_no_limit_accepts_anything() -> None:
    check_deliverable("public.t", ["x" * 10**6], {}, "e", None)


# -- the node's message limit ---------------------------------------------------------------------


def web(paths: dict[str, Any]) -> dict[str, Any]:
    return {"workers": [{"type": "router", "transports": [{"type": "web", "paths": paths}]}]}


def test_message_limit_of_the_shipped_config() -> None:
    from pathlib import Path

    config = nodeconfig.load(Path(__file__).parent.parent / ".crossbar" / "config.json")
    assert nodeconfig.message_limit(config) == 65536


@pytest.mark.parametrize(
    ("paths", "limit"),
    [
        (
            {"ws": {"type": "websocket", "options": {"max_message_size": 65536}}, "lp": {"type": "longpoll"}},
            65536,
        ),
        (
            {
                "a": {"type": "websocket", "options": {"max_message_size": 100000}},
                "b": {"type": "websocket", "options": {"max_message_size": 70000}},
            },
            70000,
        ),
        ({"ws": {"type": "websocket"}}, nodeconfig.CROSSBAR_DEFAULT_MESSAGE_SIZE),
        ({"ws": {"type": "websocket", "options": {"max_message_size": 0}}}, None),
        ({"static": {"type": "static"}}, None),
    ],
)
def test_message_limit_is_the_smallest_websocket_limit(paths: dict[str, Any], limit: int | None) -> None:
    assert nodeconfig.message_limit(web(paths)) == limit


def test_message_limit_counts_rawsocket_and_universal_transports() -> None:
    config = web({"ws": {"type": "websocket", "options": {"max_message_size": 65536}}})
    transports = config["workers"][0]["transports"]
    transports.append({"type": "rawsocket", "options": {"max_message_size": 4096}})
    assert nodeconfig.message_limit(config) == 4096
    transports[-1] = {"type": "universal", "websocket": {"ws": {"options": {"max_message_size": 2048}}}}
    assert nodeconfig.message_limit(config) == 2048
    config["workers"].append({"type": "container", "transports": [{"type": "rawsocket"}]})
    assert nodeconfig.message_limit(config) == 2048  # only router workers' transports
