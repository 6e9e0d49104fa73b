"""Frame once, deliver many (issue 16): the fast path writes exactly the normal path's bytes.

One node serves the same realm on a fast WebSocket path (``/ws``) and on paths
that must take autobahn's normal path: ``/wsplain`` (``auto_fragment_size``
set, never reached by these events, so its bytes are the normal path's),
``/wsz`` (permessage-deflate), a RawSocket transport and long-poll. A
subscriber on ``/ws`` and one on ``/wsplain`` of the same subscription get
the same EVENT object from crossbar, so their frames must be identical, byte
for byte; ``broker_fast_frames_total`` says which connections took the fast
path. A second node runs with ``fast_path`` false. The pure parts (the frame
layout, the keys, which connections qualify) are tested without a reactor.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import struct
import urllib.request
import warnings
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any
from unittest.mock import ANY

import pytest
import txaio

txaio.use_twisted()  # autobahn's serializers keep statistics with txaio's clock

from autobahn.exception import PayloadExceededError  # noqa: E402
from autobahn.wamp import message  # noqa: E402
from autobahn.wamp import serializer as wamp_serializer  # noqa: E402
from autobahn.wamp.exception import SerializationError  # noqa: E402
from autobahn.websocket.protocol import PreparedMessage, WebSocketProtocol  # noqa: E402

from broker.config.settings import parse_settings  # noqa: E402
from broker.core import signing  # noqa: E402
from broker.core.wsframe import frame, payload_length  # noqa: E402
from broker.errors import ConfigError  # noqa: E402
from broker.history import POSITION_KEY, eventtext  # noqa: E402
from broker.router.state import STATE  # noqa: E402
from tests.lpclient import LongPollSession  # noqa: E402
from tests.node import BACKEND_SECRET, PUBLISHER_SECRET, Node, free_port  # noqa: E402
from tests.rawframes import SERIALIZERS, RawSocketFrames, WsFrames, decode  # noqa: E402
from tests.test_reload_node import EXTRA, broker, edit  # noqa: E402

with warnings.catch_warnings():
    # crossbar imports web3, which imports websockets.legacy: deprecated, not ours to fix
    warnings.filterwarnings("ignore", "websockets.legacy is deprecated", DeprecationWarning)
    from broker.router.crossbar import frames


EVENT = 36

# -- pure: the frame, the key, who qualifies ------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 0xFFFF, 0x10000, 200_000])
@pytest.mark.parametrize("binary", [False, True])
def test_frame_is_autobahns_unmasked_frame(size: int, binary: bool) -> None:
    payload = bytes(i % 251 for i in range(size))
    built = frame(payload, binary)
    assert built == PreparedMessage(payload, binary, applyMask=False, doNotCompress=True).payloadHybi
    assert payload_length(built) == size


def test_keys_are_one_per_class_and_options() -> None:
    json_plain = frames.frame_key(wamp_serializer.JsonObjectSerializer())
    assert json_plain is frames.frame_key(wamp_serializer.JsonObjectSerializer())
    assert json_plain is not frames.frame_key(wamp_serializer.JsonObjectSerializer(batched=True))
    hex_key = frames.frame_key(wamp_serializer.JsonObjectSerializer(use_binary_hex_encoding=True))
    assert hex_key is not json_plain
    msgpack_key = frames.frame_key(wamp_serializer.MsgPackObjectSerializer())
    cbor_key = frames.frame_key(wamp_serializer.CBORObjectSerializer())
    assert len({id(json_plain), id(msgpack_key), id(cbor_key)}) == 3
    assert json_plain is not None and not json_plain.binary and json_plain.NAME == "json.frame"
    assert msgpack_key is not None and msgpack_key.binary
    # a class it does not know (a subclass may serialize differently) has no key
    subclass = type("Mine", (wamp_serializer.JsonObjectSerializer,), {})
    assert frames.frame_key(subclass()) is None
    assert frames.frame_key(object()) is None


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"batched": True},
        {"use_binary_hex_encoding": True},
        {"batched": True, "use_binary_hex_encoding": True},
    ],
)
def test_json_events_are_serialized_as_autobahn_does(options: dict[str, bool]) -> None:
    """The encoder made once writes what autobahn's ``JsonObjectSerializer.serialize`` writes:
    unicode unescaped, bytes in its two forms, floats, nesting, a position in the kwargs."""
    serializer = wamp_serializer.JsonObjectSerializer(**options)
    data = {"s": 'é€\u2028"x"', "b": b"\x00\xff", "f": [1.5, 1e15, -0.0, 2**63], "n": None, "t": True}
    event = message.Event(7, 8, args=[data, [1, {"k": []}]], kwargs={"position": {"seq": 3}})
    assert frames._serialize(serializer, event.marshal()) == serializer.serialize(event.marshal())
    msgpack = wamp_serializer.MsgPackObjectSerializer()
    assert frames._serialize(msgpack, event.marshal()) == msgpack.serialize(event.marshal())


def tailed(msg: message.Event) -> message.Event:
    """``msg`` with its tail written, as :func:`fastpublish.new_event` keeps it for an HTTP event."""
    text = eventtext.args_json(msg.args)
    assert text is not None
    tail = eventtext.wire_tail(msg.args, text, msg.kwargs or {})
    assert tail is not None
    msg._serialized[frames.TAIL] = tail
    return msg


@pytest.mark.parametrize(
    "options",
    [{}, {"batched": True}, {"use_binary_hex_encoding": True}],
    ids=["plain", "batched", "hex"],
)
@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"topic": "public.t.é"},
        {"publisher": 9, "publisher_authid": "me", "publisher_authrole": "backend"},
        {"transaction_hash": "h", "forward_for": [{"session": 1, "authid": "a", "authrole": "r"}]},
        {"retained": True},
        {"x_acknowledged_delivery": True},
    ],
    ids=["bare", "topic", "publisher", "hash-forward", "retained", "acked"],
)
@pytest.mark.parametrize(
    "payload",
    [
        ([{"s": 'é€\u2028"x"\x7f', "f": 1e16}], {POSITION_KEY: {"epoch": "e1", "seq": 2, "cursor": 3}}),
        ([{"n": 1}], {}),
        ([], {POSITION_KEY: {"epoch": "e1", "seq": 2, "cursor": 3}}),
        ([], {}),
    ],
    ids=["position", "args", "kwargs", "empty"],
)
def test_a_written_tail_gives_the_frame_autobahn_writes(
    options: dict[str, bool], fields: dict[str, Any], payload: tuple[list[Any], dict[str, Any]]
) -> None:
    """The type, ids and details written, then the tail an HTTP event came with: the same bytes as
    serializing the whole EVENT, for every details field ``marshal`` writes; a serializer other
    than JSON ignores the tail."""
    args, kwargs = payload
    json_serializer = wamp_serializer.JsonObjectSerializer(**options)
    for serializer in (json_serializer, wamp_serializer.MsgPackObjectSerializer()):
        whole = message.Event(1234, 2**53, args=args, kwargs=kwargs, **fields)
        spliced = tailed(message.Event(1234, 2**53, args=args, kwargs=kwargs, **fields))
        fake = SimpleNamespace(_serializer=SimpleNamespace(_serializer=serializer))
        key = frames.frame_key(serializer)
        assert key is not None
        expected = frame(serializer.serialize(whole.marshal()), key.binary)
        assert frames._build(fake, spliced, key) == expected


def test_a_written_tail_is_not_used_for_an_encrypted_payload_or_an_odd_id() -> None:
    serializer = wamp_serializer.JsonObjectSerializer()
    event = tailed(message.Event(1, 2, args=[1]))
    event._serialized[frames.TAIL] = "[666]"  # not its args: shows whether the tail was used
    assert frames._spliced(serializer, event, "[666]") == b"[36,1,2,{},[666]]"
    assert frames._spliced(wamp_serializer.CBORObjectSerializer(), event, "[666]") is None
    encrypted = message.Event(1, 2, payload=b"x", enc_algo="cryptobox")
    assert frames._spliced(serializer, encrypted, "[666]") is None
    event._subscription = True  # marshal writes true; the template would write True
    assert frames._spliced(serializer, event, "[666]") is None


def test_a_payload_that_contains_itself_is_a_serialization_error_as_autobahn_s() -> None:
    looped: list[Any] = [1]
    looped.append(looped)
    event = message.Event(7, 8, args=[looped])
    logged: list[str] = []
    fake = SimpleNamespace(
        _serializer=SimpleNamespace(_serializer=wamp_serializer.JsonObjectSerializer()),
        log=SimpleNamespace(error=logged.append),
    )
    key = frames.frame_key(fake._serializer._serializer)
    assert key is not None
    with pytest.raises(SerializationError, match="WAMP message serialization error"):
        frames._build(fake, event, key)
    assert len(logged) == 1 and key not in event._serialized
    looped.pop()  # the same list, no longer in itself: written (no marker of it left behind)
    fine = message.Event(7, 9, args=[looped])
    assert frames._build(fake, fine, key) == frame(b"[36,7,9,{},[[1]]]", False)


def protocol(**changes: Any) -> SimpleNamespace:
    """An opened server WebSocket as :func:`frames.eligible` reads it, with ``changes``."""
    fields: dict[str, Any] = dict(
        state=WebSocketProtocol.STATE_OPEN,
        _perMessageCompress=None,
        autoFragmentSize=0,
        maskServerFrames=False,
        factory=SimpleNamespace(isServer=True, debug_traffic=False),
        logFrames=False,
        logOctets=False,
        trackedTimings=None,
        _serializer=wamp_serializer.JsonSerializer(),
    )
    fields.update(changes)
    return SimpleNamespace(**fields)


def test_which_connections_qualify() -> None:
    assert frames.eligible(protocol()) is frames.frame_key(wamp_serializer.JsonObjectSerializer())
    assert frames.eligible(protocol(_serializer=wamp_serializer.CBORSerializer(batched=True))) is not None
    for change in (
        {"state": WebSocketProtocol.STATE_CLOSING},
        {"_perMessageCompress": object()},
        {"autoFragmentSize": 65536},
        {"maskServerFrames": True},
        {"factory": SimpleNamespace(isServer=True, debug_traffic=True)},
        {"logFrames": True},
        {"logOctets": True},
        {"trackedTimings": object()},
        {"_serializer": None},
    ):
        assert frames.eligible(protocol(**change)) is None, change
    # a serializer it does not handle: flatbuffers builds its bytes another way
    assert frames.eligible(protocol(_serializer=wamp_serializer.FlatBuffersSerializer())) is None
    assert frames.eligible(protocol(_serializer=wamp_serializer.UBJSONSerializer())) is not None

    class Counting(wamp_serializer.JsonSerializer):
        def serialize(self, msg: Any) -> tuple[bytes, bool]:
            return super().serialize(msg)

    assert frames.eligible(protocol(_serializer=Counting())) is None


class Sent:
    """Where a fake connection's messages go: the fast write (``written``), the transport's own
    ``send`` (``normal``: autobahn's path) or crossbar's ``Router.send`` (``crossbar``)."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.normal: list[Any] = []
        self.crossbar: list[Any] = []
        self.router = SimpleNamespace(_trace_traffic=False, _is_traced=False, _message_stats={"sent": {}})
        # the fake connections are SimpleNamespaces: that is the WebSocket class here
        self._send = frames.make_router_send(STATE, 1 << 20, self._crossbar, websocket=SimpleNamespace)

    def _crossbar(self, router: Any, session: Any, msg: Any) -> None:
        self.crossbar.append(msg)

    def __call__(self, protocol: Any, msg: Any, router: Any = None) -> None:
        """``Router.send`` of ``msg`` to the session whose transport is ``protocol``."""
        self._send(router or self.router, SimpleNamespace(_transport=protocol), msg)


def connection(sent: Sent, serializer: Any = None, **changes: Any) -> SimpleNamespace:
    """A connection :func:`frames.eligible` admitted when it opened, as ``Router.send`` reads it."""
    ser = serializer or wamp_serializer.JsonSerializer()
    fields: dict[str, Any] = dict(
        _broker_frame_key=frames.frame_key(ser._serializer),
        _broker_slow=False,
        _broker_socket=None,
        state=WebSocketProtocol.STATE_OPEN,
        _serializer=ser,
        _session=object(),
        send_queue=[],
        maxMessagePayloadSize=0,
        transport=SimpleNamespace(write=sent.written.append),
        send=sent.normal.append,
        log=SimpleNamespace(warn=lambda text: None, error=lambda text: None),
    )
    fields.update(changes)
    return SimpleNamespace(**fields)


def event(size: int = 10) -> message.Event:
    return message.Event(1234, 5678, args=["x" * size], kwargs={"n": 1}, topic="public.t")


@pytest.mark.parametrize(
    "serializer",
    [wamp_serializer.JsonSerializer, wamp_serializer.MsgPackSerializer, wamp_serializer.CBORSerializer],
)
@pytest.mark.parametrize("batched", [False, True])
def test_fast_send_writes_autobahns_bytes_and_keeps_the_serializer_statistics(
    serializer: Any, batched: bool
) -> None:
    sent, msg = Sent(), event(300)
    fast_ser, normal_ser = serializer(batched=batched), serializer(batched=batched)
    before = frames.frames_written()
    sent(connection(sent, fast_ser), msg)
    # another connection, another serializer instance: the frame cached on the message
    sent(connection(sent, serializer(batched=batched)), msg)
    payload, binary = normal_ser.serialize(msg)
    expected = PreparedMessage(payload, binary, applyMask=False, doNotCompress=True).payloadHybi
    assert sent.written == [expected, expected] and sent.normal == [] and sent.crossbar == []
    assert frames.frames_written() - before == 2
    assert fast_ser.stats(reset=False) == {**normal_ser.stats(reset=False), "timestamp": ANY, "duration": ANY}
    assert sent.router._message_stats["sent"] == {"event": 2}


class OtherTransport(SimpleNamespace):
    """A transport of another class than the WebSocket's (its attributes are never read)."""


def test_what_the_fast_send_leaves_to_the_transport() -> None:
    sent = Sent()
    autoreset = wamp_serializer.JsonSerializer()
    autoreset.set_stats_autoreset(10, None, lambda stats: None)
    cases = [
        (connection(sent, _broker_frame_key=None), event()),  # not eligible when it opened
        (connection(sent), message.Published(1, 2)),  # not an EVENT
        (connection(sent, _broker_slow=True), event()),  # let go: .backpressure discards it
        (connection(sent, state=WebSocketProtocol.STATE_CLOSING), event()),  # closing: discarded too
        (connection(sent, send_queue=[(b"queued", False)]), event()),  # autobahn would queue it
        (connection(sent, _session=None), event()),  # autobahn raises TransportLost
        (connection(sent, autoreset), event()),  # crossbar's session statistics
        (OtherTransport(send=sent.normal.append), event()),  # RawSocket, long-poll: another class
    ]
    for protocol, msg in cases:
        sent(protocol, msg)
    switched_off = event()
    frames.configure(False)
    try:
        sent(connection(sent), switched_off)
    finally:
        frames.configure(True)
    assert sent.written == [] and sent.crossbar == []
    assert [id(msg) for msg in sent.normal] == [id(msg) for _, msg in cases] + [id(switched_off)]
    assert sent.router._message_stats["sent"] == {"event": len(cases), "published": 1}  # 7 + 1


def test_crossbars_router_send_keeps_tracing_and_transportless_sessions() -> None:
    sent = Sent()
    for changed in ({"_trace_traffic": True}, {"_is_traced": True}):
        sent(connection(sent), event(), SimpleNamespace(**{**vars(sent.router), **changed}))
    sent(None, event())
    assert len(sent.crossbar) == 3 and sent.written == [] and sent.normal == []


def test_an_oversize_event_is_refused_as_sendmessage_refuses_it() -> None:
    sent = Sent()
    protocol = connection(sent, maxMessagePayloadSize=100)
    with pytest.raises(PayloadExceededError) as refused:
        sent(protocol, event(200))
    n = len(wamp_serializer.JsonSerializer().serialize(event(200))[0])
    assert str(refused.value) == (
        f"tried to send WebSocket message with size {n} exceeding payload limit of 100 octets"
    )
    assert protocol.wasMaxMessagePayloadSizeExceeded is True
    assert sent.written == [] and sent.router._message_stats["sent"] == {}  # as Router.send: not counted


def test_a_serialization_error_is_autobahns_and_drops_that_connection_only() -> None:
    sent, errors, aborted = Sent(), [], []
    log = SimpleNamespace(warn=lambda text: None, error=errors.append)
    before = STATE.rejections.get("UnsendableEvent", 0)
    unsendable = message.Event(1, 2, args=[object()])
    sent(connection(sent, log=log, abort=lambda: aborted.append(True)), unsendable)
    assert sent.written == [] and aborted == [True]
    assert len(errors) == 1 and errors[0].startswith("WAMP message serialization error")
    assert STATE.rejections["UnsendableEvent"] == before + 1
    assert "event" not in sent.router._message_stats["sent"]  # not sent, not counted


# -- against a node -------------------------------------------------------------------

RAWSOCKET_PORT: dict[str, int] = {}


def paths_and_history(fast_path: bool) -> Callable[[dict[str, Any]], None]:
    def mutate(config: dict[str, Any]) -> None:
        worker = config["workers"][0]
        extra = worker["components"][0]["extra"]
        extra["fast_path"] = fast_path
        policies = extra.setdefault("history", {}).setdefault("policies", [])
        policies.insert(0, {"uri": "public.nohist.", "match": "prefix", "max_events": 0, "max_age": 60})
        if not policies[1:]:
            policies.append({"uri": "", "match": "prefix", "max_events": 1000, "max_age": 3600})
        paths = worker["transports"][0]["paths"]
        plain = copy.deepcopy(paths["ws"])
        plain["options"]["auto_fragment_size"] = 1_000_000
        paths["wsplain"] = plain
        deflate = copy.deepcopy(paths["ws"])
        deflate["options"]["compression"] = {"deflate": {}}
        paths["wsz"] = deflate
        port = RAWSOCKET_PORT[str(fast_path)] = free_port()
        worker["transports"].append(
            {
                "type": "rawsocket",
                "endpoint": {"type": "tcp", "interface": "127.0.0.1", "port": port},
                "serializers": ["json", "msgpack", "cbor"],
                "auth": {"anonymous": {"type": "static", "role": "anonymous"}},
            }
        )

    return mutate


def start(tmp: pytest.TempPathFactory, fast_path: bool) -> Iterator[Node]:
    running = Node(tmp.mktemp("fast" if fast_path else "slow"), mutate=paths_and_history(fast_path)).start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def fast_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    yield from start(tmp_path_factory, True)


@pytest.fixture(scope="module")
def slow_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    yield from start(tmp_path_factory, False)


def fast_frames(node: Node) -> float:
    with urllib.request.urlopen(f"{node.url}/metrics", timeout=10) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("broker_fast_frames_total "):
                return float(line.split()[1])
    raise AssertionError("no broker_fast_frames_total on /metrics")


def backend(node: Node) -> WsFrames:
    client = WsFrames(node)
    client.send([1, "app", {"roles": {"publisher": {}, "subscriber": {}}, "authid": "backend",
                            "authmethods": ["wampcra"]}])  # fmt: skip
    challenge = client.message()
    assert challenge[0] == 4, challenge
    signature = hmac.new(BACKEND_SECRET.encode(), challenge[2]["challenge"].encode(), hashlib.sha256)
    client.send([5, base64.b64encode(signature.digest()).decode(), {}])
    assert client.message()[0] == 2
    return client


def publish(client: WsFrames, topic: str, args: list[Any], request: int, **options: Any) -> None:
    client.send([16, request, {"acknowledge": True, **options}, topic, args, {"n": request}])
    while (answer := client.read())[0] == EVENT:  # a publisher subscribed to its own topic
        client.backlog.append(answer)
    assert answer[:2] == [17, request], answer


def fast_and_plain(node: Node, serializer: str, subscription: str, match: str) -> tuple[WsFrames, WsFrames]:
    """Two subscribers of one subscription: on the fast path (``/ws``) and on the normal one."""
    fast, plain = WsFrames(node, serializer), WsFrames(node, serializer, path="wsplain")
    for client in (fast, plain):
        client.join()
        client.subscribe(subscription, match)
    return fast, plain


def same_frames(fast: WsFrames, plain: WsFrames, count: int) -> list[Any]:
    """The next ``count`` frames of each, byte for byte the same: the fast one's, decoded."""
    got_fast = [fast.frame() for _ in range(count)]
    assert [f.raw for f in got_fast] == [plain.frame().raw for _ in range(count)]
    return [decode(fast.serializer, f.payload) for f in got_fast]


TOPICS = [
    ("public.fast.a", "exact", "public.fast.a"),
    ("public.fast.", "prefix", "public.fast.b"),
    ("public..c", "wildcard", "public.fast.c"),
    ("public.nohist.a", "exact", "public.nohist.a"),
    ("public.nohist.", "prefix", "public.nohist.b"),
]


@pytest.mark.node
@pytest.mark.parametrize("serializer", SERIALIZERS)
@pytest.mark.parametrize(("subscription", "match", "topic"), TOPICS)
def test_fast_frames_are_the_normal_paths_bytes(
    fast_node: Node, serializer: str, subscription: str, match: str, topic: str
) -> None:
    fast, plain = fast_and_plain(fast_node, serializer, subscription, match)
    publisher = backend(fast_node)
    before = fast_frames(fast_node)
    # payload lengths in each of the header's forms: 7 bits, 16 bits (the node refuses over 64 KiB)
    for request, args in enumerate([["small"], ["x" * 300], ["z" * 40_000]], 1):
        publish(publisher, topic, args, request)
    events = same_frames(fast, plain, 3)
    assert [e[0] for e in events] == [EVENT] * 3
    assert [e[4] for e in events] == [["small"], ["x" * 300], ["z" * 40_000]]
    assert all(("topic" in e[3]) == (match != "exact") for e in events)
    positions = [e[5].get(POSITION_KEY) for e in events]
    if "nohist" in topic:
        assert positions == [None] * 3, events[0]
    else:
        assert all(positions), events[0]
    # three fast frames, all the /ws subscriber's: /wsplain took the normal path
    assert fast_frames(fast_node) - before == 3
    for client in (fast, plain, publisher):
        client.close()


def post_batch(node: Node, events: list[dict[str, Any]]) -> dict[str, Any]:
    """``POST /api/publish`` of ``events``, signed with the dev key; the 200 answer's body."""
    raw = json.dumps({"events": events}).encode()
    headers = {"Content-Type": "application/json"}
    headers.update(signing.sign_headers("dev", PUBLISHER_SECRET, "POST", "/api/publish", raw))
    request = urllib.request.Request(node.url + "/api/publish", data=raw, headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        return json.loads(response.read())  # type: ignore[no-any-return]


#: Data whose JSON every quoting rule writes differently somewhere (see tests/test_eventtext.py).
HTTP_DATA: list[Any] = [
    {"s": 'é€\u2028"\\\x7f\x01', "astral": "😀", "f": [1e16, -0.0, 0.1], "big": 2**63 - 1},
    "plain",
    None,
    [{"nested": {"": []}}],
]


#: PUBLISH shapes whose EVENT's args and kwargs ``marshal`` writes differently: none at all, args
#: only, kwargs only (args ``[]``), both, and data that quoting rules write differently.
SHAPES: list[list[Any]] = [[], [["only"]], [[], {"k": "é"}], [HTTP_DATA, {"n": 1}], [["é€\x7f😀"]]]


@pytest.mark.node
@pytest.mark.parametrize("serializer", SERIALIZERS)
@pytest.mark.parametrize(("subscription", "match", "topic"), TOPICS)
def test_wamp_publishes_of_every_shape_are_the_normal_paths_bytes(
    fast_node: Node, serializer: str, subscription: str, match: str, topic: str
) -> None:
    """A WAMP publish's args are written to JSON once too (the store's text, the frame's tail):
    with no args or kwargs (autobahn writes ``null`` args beside a position), args only, kwargs
    only, both, with and without a position."""
    fast, plain = fast_and_plain(fast_node, serializer, subscription, match)
    publisher = backend(fast_node)
    for request, shape in enumerate(SHAPES, 1):
        publisher.send([16, request, {"acknowledge": True}, topic, *shape])
        assert publisher.message()[:2] == [17, request]
    events = same_frames(fast, plain, len(SHAPES))
    assert [e[4] if len(e) > 4 else None for e in events] == [None, ["only"], [], HTTP_DATA, ["é€\x7f😀"]]
    positions = [e[5].get(POSITION_KEY) if len(e) > 5 else None for e in events]
    assert all(positions) if "nohist" not in topic else not any(positions), events
    for client in (fast, plain, publisher):
        client.close()


@pytest.mark.node
@pytest.mark.parametrize("serializer", SERIALIZERS)
@pytest.mark.parametrize(("subscription", "match", "topic"), TOPICS)
def test_http_batch_frames_are_the_normal_paths_bytes(
    fast_node: Node, serializer: str, subscription: str, match: str, topic: str
) -> None:
    """An HTTP batch's events come with their payload's JSON written once (the store's text and
    the JSON frame's tail): the fast subscriber's frames are the normal path's, byte for byte,
    on every serializer, with and without a position, with a topic in the details or not."""
    fast, plain = fast_and_plain(fast_node, serializer, subscription, match)
    before = fast_frames(fast_node)
    answer = post_batch(fast_node, [{"topic": topic, "data": data} for data in HTTP_DATA])
    events = same_frames(fast, plain, len(HTTP_DATA))
    assert [e[4] for e in events] == [[data] for data in HTTP_DATA]
    assert [e[5].get(POSITION_KEY) if len(e) > 5 else None for e in events] == [
        p["position"] for p in answer["published"]
    ]
    assert fast_frames(fast_node) - before == len(HTTP_DATA)
    for client in (fast, plain):
        client.close()


@pytest.mark.node
@pytest.mark.parametrize("serializer", SERIALIZERS)
def test_fast_path_false_sends_everything_the_normal_way(slow_node: Node, serializer: str) -> None:
    ws, plain = WsFrames(slow_node, serializer), WsFrames(slow_node, serializer, path="wsplain")
    publisher = backend(slow_node)
    for client in (ws, plain):
        client.join()
        client.subscribe("public.fast.", "prefix")
    publish(publisher, "public.fast.off", ["off"], 1)
    assert ws.frame().raw == plain.frame().raw
    assert fast_frames(slow_node) == 0
    for client in (ws, plain, publisher):
        client.close()


@pytest.mark.node
def test_deflate_rawsocket_and_longpoll_take_the_normal_path(fast_node: Node) -> None:
    fast, deflated = WsFrames(fast_node), WsFrames(fast_node, path="wsz", deflate=True)
    assert "permessage-deflate" in deflated.handshake
    raw = RawSocketFrames(RAWSOCKET_PORT["True"])
    longpoll = LongPollSession(fast_node.url)
    publisher = backend(fast_node)
    for client in (fast, deflated):
        client.join()
        client.subscribe("public.paths")
    raw.join()
    raw.subscribe("public.paths")
    assert longpoll.hello()[0] == 2
    assert longpoll.subscribe("public.paths")[0] == 33
    before = fast_frames(fast_node)
    publish(publisher, "public.paths", ["everyone"], 1)
    sent = fast.frame()
    compressed = deflated.frame()
    assert compressed.rsv1 and deflated.inflate(compressed) == sent.payload
    event = json.loads(sent.payload)
    assert raw.message() == event
    assert longpoll.recv() == event
    assert fast_frames(fast_node) - before == 1
    longpoll.close()
    for client in (fast, deflated, raw, publisher):
        client.close()


@pytest.mark.node
def test_publish_options_and_authorization_on_the_fast_path(fast_node: Node) -> None:
    publisher = backend(fast_node)
    publisher.subscribe("public.opts", request=1)  # the publisher listens too
    publisher.subscribe("secret.opts", request=2)
    first, second, outsider = WsFrames(fast_node), WsFrames(fast_node), WsFrames(fast_node)
    first_sid = first.join()
    for client in (second, outsider):
        client.join()
    for client in (first, second, outsider):
        client.subscribe("public.opts")
    # anonymous is granted public. only: its subscription to secret.opts is refused
    outsider.send([32, 2, {}, "secret.opts"])
    refused = outsider.message()
    assert refused[0] == 8 and refused[4] == "wamp.error.not_authorized", refused

    def received(client: WsFrames) -> list[Any]:
        """The first arg of every event ``client`` got before the marker that ends the round."""
        got = []
        while True:
            event = client.message()
            assert event[0] == EVENT, event
            if event[4] == ["marker"]:
                return got
            got.append(event[4][0])

    before = fast_frames(fast_node)
    publish(publisher, "public.opts", ["all"], 1)  # exclude_me defaults to true
    publish(publisher, "public.opts", ["me too"], 2, exclude_me=False)
    publish(publisher, "public.opts", ["only first"], 3, eligible=[first_sid])
    publish(publisher, "public.opts", ["not first"], 4, exclude=[first_sid])
    publish(publisher, "secret.opts", ["secret"], 5, exclude_me=False)
    publish(publisher, "public.opts", ["marker"], 6, exclude_me=False)
    assert received(first) == ["all", "me too", "only first"]
    assert received(second) == ["all", "me too", "not first"]
    assert received(outsider) == ["all", "me too", "not first"]
    assert received(publisher) == ["me too", "secret"]
    # every one of them a fast frame: 3 + 4 + 1 + 2 + 1 + 4 (the marker)
    assert fast_frames(fast_node) - before == 15
    for client in (first, second, outsider, publisher):
        client.close()


@pytest.mark.node
def test_deliveries_metric_counts_fast_frames(fast_node: Node) -> None:
    def deliveries() -> float:
        with urllib.request.urlopen(f"{fast_node.url}/metrics", timeout=10) as response:
            lines = response.read().decode().splitlines()
        return sum(
            float(line.split()[1])
            for line in lines
            if line.startswith('broker_deliveries_total{namespace="public"}')
        )

    subscribers = [WsFrames(fast_node, serializer) for serializer in SERIALIZERS]
    for client in subscribers:
        client.join()
        client.subscribe("public.count")
    publisher = backend(fast_node)
    before, fast_before = deliveries(), fast_frames(fast_node)
    for request in range(1, 5):
        publish(publisher, "public.count", [request], request)
    for client in subscribers:
        assert [client.message()[4] for _ in range(4)] == [[1], [2], [3], [4]]
    assert fast_frames(fast_node) - fast_before == 12
    assert deliveries() - before == 12
    for client in (*subscribers, publisher):
        client.close()


@pytest.mark.node
def test_slow_subscriber_bound_applies_after_fast_writes(make_node: Callable[..., Node]) -> None:
    def limit(config: dict[str, Any]) -> None:
        config["workers"][0]["components"][0]["extra"]["slow_subscriber"] = {"max_buffer_bytes": 256 * 1024}

    node = make_node(limit)
    reader = WsFrames(node)
    reader.join()
    for request, (uri, match) in enumerate(
        [("public.burst", "exact"), ("public.", "prefix"), ("public.b", "prefix"), ("public.bu", "prefix"),
         ("public.bur", "prefix")], 1):  # fmt: skip
        reader.subscribe(uri, match, request)
    publisher = backend(node)
    before = fast_frames(node)
    publish(publisher, "public.burst", ["y" * 60_000], 1)
    events = 0
    while (got := reader.frame()).opcode == 1:
        events += 1
    assert got.opcode == 8
    code, reason = struct.unpack("!H", got.payload[:2])[0], got.payload[2:].decode()
    assert code == 1008
    assert reason.startswith("slow subscriber: ") and reason.endswith(" waiting to be sent (limit 256 KiB)")
    assert events == 5
    assert fast_frames(node) - before == 5
    assert node.rejections() == {"SlowSubscriber": 1}
    reader.close()
    publisher.close()


# -- the switch: extra.fast_path ----------------------------------------------------


def test_fast_path_setting_defaults_to_true_and_errors_name_the_path() -> None:
    assert parse_settings({}).fast_path is True
    assert parse_settings({"fast_path": False}).fast_path is False
    for bad in ("false", 0, None, [True]):
        with pytest.raises(ConfigError) as caught:
            parse_settings({"fast_path": bad}, "$.extra")
        assert caught.value.path == "$.extra.fast_path"
        assert caught.value.message == f"must be true or false, not {bad!r}"


@pytest.mark.node
def test_fast_path_switches_live_on_reload(make_node: Callable[..., Node]) -> None:
    node = make_node(lambda config: None)
    subscriber = WsFrames(node)
    subscriber.join()
    subscriber.subscribe("public.switch")
    publisher = backend(node)

    def delivered(request: int) -> tuple[list[Any], float]:
        before = fast_frames(node)
        publish(publisher, "public.switch", [request], request)
        return subscriber.message()[4], fast_frames(node) - before

    assert delivered(1) == ([1], 1)
    for request, fast_path in ((2, False), (3, True)):
        edit(
            node,
            lambda config, on=fast_path: config["workers"][0]["components"][0]["extra"].update(fast_path=on),
        )
        reloaded = broker(node, "reload")
        assert reloaded.returncode == 0, reloaded.stderr
        assert reloaded.stdout.splitlines() == [f"changed: {EXTRA}.fast_path"]
        assert delivered(request) == ([request], 1 if fast_path else 0)
    subscriber.close()
    publisher.close()
