"""Broker's fast PUBLISH dispatch (:mod:`broker.router.crossbar.fastpublish`) against crossbar's own.

Two real nodes from the project config, both with ``event_dispatching_chunk_size`` 2 so that
chunking shows with a handful of subscribers: one with ``extra.fast_path`` on (the default), one
with it off (crossbar's ``processPublish`` for everything). A test that compares runs the same
steps against both and compares what raw WAMP clients receive, byte for byte once the ids that
differ between nodes (publication, subscription, session, the history epoch) are masked; the
others assert the exact outcome on each node. The chunk sender's edge cases (a receiver gone by
its turn, one whose message is too large) are checked on their own, without a reactor.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from autobahn.exception import PayloadExceededError
from autobahn.wamp import message
from crossbar.router import broker as crossbar_broker

from broker.config.settings import parse_settings
from broker.errors import ConfigError
from broker.router.crossbar import fastpublish
from tests.node import BACKEND_SECRET, Node
from tests.rawwamp import ERROR, EVENT, PUBLISH, PUBLISHED, SUBSCRIBED, RawWamp
from tests.test_metrics import scrape, series
from tests.test_publish_api import request

CHUNK = 2


def _configure(fast: bool) -> Callable[[dict[str, Any]], None]:
    def mutate(config: dict[str, Any]) -> None:
        config["workers"][0]["realms"][0]["options"]["event_dispatching_chunk_size"] = CHUNK
        config["workers"][0]["components"][0]["extra"]["fast_path"] = fast

    return mutate


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[bool, Node]]:
    """``{True: fast_path on, False: fast_path off}``, both with chunks of :data:`CHUNK`."""
    started: dict[bool, Node] = {}
    try:
        for fast in (True, False):
            workdir: Path = tmp_path_factory.mktemp(f"fast-{fast}")
            started[fast] = Node(workdir, mutate=_configure(fast)).start()
        yield started
    finally:
        for node in started.values():
            node.stop()


class Clients:
    """The WAMP connections a test opens on one node; closed afterwards."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.opened: list[RawWamp] = []

    def join(self, role: str = "anonymous", serializer: str = "json") -> RawWamp:
        client = RawWamp(self.node.ws_url, origin=self.node.origin, serializer=serializer)
        self.opened.append(client)
        welcome = (
            client.hello(authid="backend", secret=BACKEND_SECRET) if role == "backend" else client.hello()
        )
        assert welcome[0] == 2, welcome
        return client

    def subscriber(self, topic: str, match: str = "exact") -> RawWamp:
        client = self.join()
        assert client.subscribe(topic, match)[0] == SUBSCRIBED
        return client

    def close(self) -> None:
        for client in self.opened:
            client.close()


@pytest.fixture
def clients(nodes: dict[bool, Node]) -> Iterator[dict[bool, Clients]]:
    opened = {fast: Clients(node) for fast, node in nodes.items()}
    yield opened
    for each in opened.values():
        each.close()


def raw(client: RawWamp) -> str:
    """The next message as the router sent it (a JSON text frame)."""
    data = client.ws.recv(timeout=10)
    assert isinstance(data, str)
    return data


def masked(text: str, *ids: int) -> str:
    """``text`` with the given ids and the history epoch replaced by placeholders."""
    for i, value in enumerate(ids):
        text = re.sub(rf"\b{value}\b", f"<id{i}>", text)
    return re.sub(r"""(["']epoch["']: ?["'])[0-9a-f]+""", r"\1<epoch>", text)


def publish(
    client: RawWamp, topic: str, args: list[Any], kwargs: dict[str, Any], **options: Any
) -> list[Any]:
    """An acknowledged PUBLISH with ``options``; the answer."""
    client.send([PUBLISH, client.next_id(), {"acknowledge": True, **options}, topic, args, kwargs])
    return client.recv()


def test_events_and_published_are_byte_for_byte_crossbar_s(clients: dict[bool, Clients]) -> None:
    """Exact, prefix and wildcard subscriptions on one session get the same frames either way:
    one EVENT each, the topic in the pattern ones' details, the position in the kwargs."""
    seen: dict[bool, list[str]] = {}
    for fast, on in clients.items():
        subscriber = on.join()
        subscriptions = [
            subscriber.subscribe(topic, match)[2]
            for topic, match in (
                ("public.fp.same", "exact"),
                ("public.fp.", "prefix"),
                ("public..same", "wildcard"),
            )
        ]
        publisher = on.join("backend")
        args = [1, "x", {"a": [1.5, None, True]}, "ünïcode"]
        request_id = publisher.next_id()
        publisher.send([PUBLISH, request_id, {"acknowledge": True}, "public.fp.same", args, {"k": "v"}])
        published = raw(publisher)
        publication = json.loads(published)[2]
        events = [raw(subscriber) for _ in subscriptions]
        assert [json.loads(e)[1] for e in events] == subscriptions, "one EVENT per subscription, in order"
        for event in events:
            assert json.loads(event)[2] == publication
            assert json.loads(event)[4] == args
        seen[fast] = [masked(text, publication, *subscriptions) for text in (published, *events)]
    assert seen[True] == seen[False]
    assert seen[True][0] == f"[{PUBLISHED},{request_id},<id0>]"
    assert seen[True][1].startswith(f'[{EVENT},<id1>,<id0>,{{}},[1,"x",{{"a":[1.5,null,true]}},"ünïcode"],')
    assert '{"topic":"public.fp.same"}' in seen[True][2] and '{"topic":"public.fp.same"}' in seen[True][3]
    assert '"broker_position":{"epoch":"<epoch>","seq":1' in seen[True][1]


def test_msgpack_events_and_published_are_crossbar_s(clients: dict[bool, Clients]) -> None:
    """On MessagePack transports (which the JSON shortcut for PUBLISHED leaves alone) the same
    messages either way, binary values included."""
    import msgpack

    seen: dict[bool, list[str]] = {}
    for fast, on in clients.items():
        subscriber = on.join(serializer="msgpack")
        subscription = subscriber.subscribe("public.fp.packed")[2]
        publisher = on.join("backend", serializer="msgpack")
        args = [b"\x00\xffbytes", 2.5, "x"]
        publisher.send([PUBLISH, publisher.next_id(), {"acknowledge": True}, "public.fp.packed", args, {}])
        published = msgpack.unpackb(publisher.ws.recv(timeout=10), raw=False)
        event = msgpack.unpackb(subscriber.ws.recv(timeout=10), raw=False)
        assert published[0] == PUBLISHED and event[0] == EVENT and event[4] == args
        seen[fast] = [masked(repr(m), published[2], subscription) for m in (published, event)]
    assert seen[True] == seen[False]


@pytest.mark.parametrize(
    ("role", "topic", "uri", "message"),
    [
        (
            "backend",
            "wamp.fp.mine",
            "wamp.error.invalid_uri",
            "publish with restricted topic URI 'wamp.fp.mine'",
        ),
        (
            "anonymous",
            "public.fp.refused",
            "wamp.error.not_authorized",
            "session not authorized to publish to topic 'public.fp.refused'",
        ),
        ("backend", "public.fp. spaced", "wamp.error.invalid_uri", None),
    ],
)
def test_refusals_are_crossbar_s(
    clients: dict[bool, Clients], role: str, topic: str, uri: str, message: str | None
) -> None:
    """The same ERROR either way, nothing delivered, and the session publishes on afterwards."""
    answers = {}
    for fast, on in clients.items():
        subscriber = on.subscriber("public.fp.after")
        publisher = on.join(role)
        answers[fast] = publish(publisher, topic, ["no"], {})
        assert answers[fast][:2] == [ERROR, PUBLISH]
        assert answers[fast][4] == uri
        if message is not None:
            assert answers[fast][5] == [message]
        well_behaved = on.join("backend")
        assert publish(well_behaved, "public.fp.after", ["yes"], {})[0] == PUBLISHED
        assert subscriber.event()[4] == ["yes"]
    assert answers[True] == answers[False]


@pytest.mark.parametrize("fast", [True, False])
def test_exclude_me(clients: dict[bool, Clients], fast: bool) -> None:
    """A publisher subscribed to its topic gets its event only with ``exclude_me`` false."""
    on = clients[fast]
    publisher = on.join("backend")
    assert publisher.subscribe("public.fp.me")[0] == SUBSCRIBED
    assert publish(publisher, "public.fp.me", ["excluded"], {})[0] == PUBLISHED
    assert publish(publisher, "public.fp.me", ["excluded"], {}, exclude_me=True)[0] == PUBLISHED
    assert publish(publisher, "public.fp.me", ["included"], {}, exclude_me=False)[0] == PUBLISHED
    assert publisher.event()[4] == ["included"]


@pytest.mark.parametrize("fast", [True, False])
def test_eligible_and_exclude(clients: dict[bool, Clients], fast: bool) -> None:
    """``eligible``/``exclude`` (session ids) and ``exclude_authrole`` pick the receivers."""
    on = clients[fast]
    first, second = on.subscriber("public.fp.pick"), on.subscriber("public.fp.pick")
    watcher = on.join("backend")
    assert watcher.subscribe("public.fp.pick")[0] == SUBSCRIBED
    publisher = on.join("backend")
    assert publish(publisher, "public.fp.pick", ["A"], {}, eligible=[first.session_id])[0] == PUBLISHED
    assert publish(publisher, "public.fp.pick", ["B"], {}, exclude=[first.session_id])[0] == PUBLISHED
    assert publish(publisher, "public.fp.pick", ["C"], {}, exclude_authrole=["anonymous"])[0] == PUBLISHED
    assert publish(publisher, "public.fp.pick", ["D"], {})[0] == PUBLISHED
    assert [first.event()[4][0] for _ in range(2)] == ["A", "D"]
    assert [second.event()[4][0] for _ in range(2)] == ["B", "D"]
    assert [watcher.event()[4][0] for _ in range(3)] == ["B", "C", "D"]


@pytest.mark.parametrize("fast", [True, False])
def test_more_receivers_than_a_chunk_all_get_every_event_in_order_and_are_counted(
    nodes: dict[bool, Node], clients: dict[bool, Clients], fast: bool
) -> None:
    """7 subscribers, chunks of 2: every one gets the 3 events in order; /metrics counts 21
    deliveries and 3 latencies for the namespace."""
    on = clients[fast]
    subscribers = [on.subscriber("public.fp.chunks") for _ in range(7)]
    publisher = on.join("backend")
    _, before = scrape(nodes[fast])
    for n in range(3):
        assert publish(publisher, "public.fp.chunks", [n], {})[0] == PUBLISHED
    for subscriber in subscribers:
        assert [subscriber.event()[4] for _ in range(3)] == [[0], [1], [2]]
    _, after = scrape(nodes[fast])
    delivered = series(after, "broker_deliveries_total", "namespace").get("public", 0) - series(
        before, "broker_deliveries_total", "namespace"
    ).get("public", 0)
    assert delivered == 21
    latencies = after[("broker_delivery_latency_seconds_count", ())] - before.get(
        ("broker_delivery_latency_seconds_count", ()), 0
    )
    assert latencies == 3


@pytest.mark.parametrize("fast", [True, False])
def test_an_http_batch_to_more_receivers_than_a_chunk_is_counted_per_event(
    nodes: dict[bool, Node], clients: dict[bool, Clients], fast: bool
) -> None:
    """7 subscribers, chunks of 2, a batch of 3 over HTTP (one step of the metrics on the fast
    path): every subscriber gets the 3 in order; /metrics counts 3 publishes, 21 deliveries and
    3 latencies, as for 3 publishes."""
    on = clients[fast]
    subscribers = [on.subscriber("public.fp.hchunks") for _ in range(7)]
    _, before = scrape(nodes[fast])
    batch = [{"topic": "public.fp.hchunks", "data": n} for n in range(3)]
    status, body, _ = request(nodes[fast], {"events": batch})
    assert status == 200, body
    for subscriber in subscribers:
        assert [subscriber.event()[4] for _ in range(3)] == [[0], [1], [2]]
    _, after = scrape(nodes[fast])

    def grown(name: str) -> float:
        return series(after, name, "namespace").get("public", 0) - series(before, name, "namespace").get(
            "public", 0
        )

    assert (grown("broker_publishes_total"), grown("broker_deliveries_total")) == (3, 21)
    latencies = after[("broker_delivery_latency_seconds_count", ())] - before.get(
        ("broker_delivery_latency_seconds_count", ()), 0
    )
    assert latencies == 3


def test_http_published_events_are_byte_for_byte_crossbar_s(
    nodes: dict[bool, Node], clients: dict[bool, Clients]
) -> None:
    """A batch of the HTTP API reaches WAMP subscribers with the same frames either way, and the
    ids it answers are the events' publication ids."""
    seen: dict[bool, list[str]] = {}
    for fast, on in clients.items():
        exact, prefix = on.subscriber("public.fp.http"), on.subscriber("public.fp.", "prefix")
        batch = [{"topic": "public.fp.http", "data": {"n": n}} for n in range(3)]
        status, body, _ = request(nodes[fast], {"events": batch})
        assert status == 200, body
        ids = [p["id"] for p in body["published"]]
        texts = [raw(exact) for _ in ids] + [raw(prefix) for _ in ids]
        assert [json.loads(t)[2] for t in texts] == ids + ids
        first, second = json.loads(texts[0])[1], json.loads(texts[-1])[1]
        seen[fast] = [masked(t, *ids, first, second) for t in texts]
    assert seen[True] == seen[False]


@pytest.mark.parametrize(
    "fields",
    [
        (5, 6, [{"n": 1}], {"position": {"seq": 1}}, None, None, None, None, None, None),
        (
            5,
            6,
            None,
            None,
            7,
            "alice",
            "backend",
            "public.x",
            "h",
            [{"session": 1, "authid": None, "authrole": "r"}],
        ),
        (5, 6, (1, 2), {}, None, None, None, "public.y", None, None),
    ],
)
def test_events_are_built_as_autobahn_s_constructor_builds_them(fields: tuple[Any, ...]) -> None:
    """Every slot of the EVENT the dispatch builds is what ``message.Event(...)`` sets, and the
    installed autobahn has exactly the slots it sets (else it would use the constructor)."""
    names = ("args", "kwargs", "publisher", "publisher_authid", "publisher_authrole", "topic")
    names += ("transaction_hash", "forward_for")
    built = fastpublish.new_event(*fields)
    made = message.Event(fields[0], fields[1], **dict(zip(names, fields[2:], strict=True)))
    assert fastpublish._SLOTS_KNOWN
    for slot in fastpublish.EVENT_SLOTS:
        assert getattr(built, slot) == getattr(made, slot), slot
    assert built == made and built.marshal() == made.marshal()
    assert built._serialized is not made._serialized


def test_fast_path_setting() -> None:
    assert parse_settings({}).fast_path is True
    assert parse_settings({"fast_path": False}).fast_path is False
    with pytest.raises(ConfigError, match=r"^\$\.fast_path: must be true or false, not 'no'$"):
        parse_settings({"fast_path": "no"})


class _Transport:
    def __init__(self, sent: list[Any], name: str, too_large: bool = False) -> None:
        self.sent, self.name, self.too_large = sent, name, too_large

    def send(self, msg: Any) -> None:
        if self.too_large:
            raise PayloadExceededError("too large for this receiver")
        self.sent.append((self.name, msg))


class _Receiver:
    def __init__(self, sent: list[Any], name: str, too_large: bool = False) -> None:
        self._session_id: int | None = len(sent) + 1
        self._transport: _Transport | None = _Transport(sent, name, too_large)


class _Router:
    """``Router.send`` as far as the chunk sender relies on it: to the transport, counted."""

    def __init__(self) -> None:
        self._message_stats: dict[str, dict[str, int]] = {"sent": {}}

    def send(self, receiver: _Receiver, msg: Any) -> None:
        assert receiver._transport is not None
        receiver._transport.send(msg)
        sent = self._message_stats["sent"]
        sent["event"] = sent.get("event", 0) + 1


class _Later:
    """Stands in for the ``txaio`` crossbar's broker sees: keeps the calls for the test to run."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, Any, tuple[Any, ...]]] = []

    def call_later(self, delay: float, fn: Any, *args: Any) -> None:
        self.calls.append((delay, fn, args))


def test_chunks_skip_vanished_and_too_large_receivers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of 2 in later turns; a receiver gone by its turn and one whose transport refuses
    the size get nothing and stop nobody; the router counts the EVENTs actually handed over."""
    later = _Later()
    monkeypatch.setattr(crossbar_broker, "txaio", later)
    sent: list[Any] = []
    receivers = []
    for name in "abcdef":
        receivers.append(_Receiver(sent, name, too_large=name == "b"))
    router, msg = _Router(), SimpleNamespace(publication=9)
    fastpublish._send_chunk(router, msg, receivers, 2, 7)
    assert sent == [("a", msg)]
    receivers[2]._transport = None  # c leaves before its chunk's turn
    receivers[4]._session_id = None  # so does e
    while later.calls:
        delay, fn, args = later.calls.pop(0)
        assert delay == 0
        fn(*args)
    assert sent == [("a", msg), ("d", msg), ("f", msg)]
    assert router._message_stats["sent"] == {"event": 3}


@pytest.mark.parametrize("length", [0, 1, 3, 4, 5, 150, 4096])
def test_small_frames_unmask_as_autobahn_does(length: int) -> None:
    """Whole and in pieces (a frame can arrive over several reads), the same bytes and pointer."""
    from autobahn.websocket import xormasker

    from broker.router.crossbar.unmask import SmallMasker

    data, mask = os.urandom(length), os.urandom(4)
    for pieces in ([data], [data[:1], data[1:7], data[7:]]):
        theirs, ours = xormasker.create_xor_masker(mask, length), SmallMasker(mask)
        assert [ours.process(p) for p in pieces] == [theirs.process(p) for p in pieces]
        assert ours.pointer() == theirs.pointer() == length


ODD_VALUES: list[Any] = [
    None,
    True,
    0,
    -24,
    2**64,
    -(2**70),
    1.5,
    1e300,
    float("nan"),
    "",
    "é",
    "\x00\x01\x1f",
    '"\\',
    [],
    {},
    [[[]]],
    {"a": None},
    {1: 2},
    {True: None},
    b"",
    b"\x00",
    ["x" * 300, [0] * 1000, {str(i): i for i in range(300)}],
]


@pytest.mark.parametrize("value", ODD_VALUES, ids=lambda v: repr(v)[:20])
def test_the_size_shortcut_bounds_every_serializer(value: Any) -> None:
    """``check_deliverable`` skips measuring an event when 18 times the size of a message holding
    it fits: that must bound :func:`wire_size` for every serializer the message may have used."""
    import cbor2
    import msgpack

    from broker.history.recovery import _JSON_FACTOR
    from broker.history.wiresize import wire_size

    encoders: list[Callable[[Any], bytes]] = [cbor2.dumps, lambda v: json.dumps(v).encode()]
    if not isinstance(value, int) or abs(value) < 2**63:  # MessagePack has no bigger integers
        encoders.append(lambda v: msgpack.packb(v, use_bin_type=True))
    if isinstance(value, bytes):
        encoders.pop(1)  # JSON has no bytes (autobahn writes them base64, longer)
    for encode in encoders:
        assert wire_size(value) <= _JSON_FACTOR * len(encode(value))


def test_fast_path_applies_live_on_reload() -> None:
    """Turning ``fast_path`` off is a live change (the reloader calls ``enable_fast_path``)."""
    from broker.config.reload import plan_reload
    from tests.test_reload import ENV, EXTRA, extra, running

    new = running()
    extra(new)["fast_path"] = False
    plan = plan_reload(running(), new, ENV)
    assert plan.live == (f"{EXTRA}.fast_path",) and plan.restart == ()
    assert plan.settings.fast_path is False


class _Channel:
    """What autobahn's ``onMessageEnd`` reads of a WebSocket protocol."""

    def __init__(self, listeners: dict[str, list[Any]] | None) -> None:
        self._listeners = listeners
        self.failedByMe = False
        self.trackedTimings = None
        self.message_data: list[bytes] | None = [b"[16,", b"1]"]
        self.message_is_binary = False
        self.got: list[tuple[bytes, bool]] = []
        self.fired: list[Any] = []

    def _onMessage(self, payload: bytes, is_binary: bool) -> None:
        self.got.append((payload, is_binary))


@pytest.mark.parametrize("listeners", [None, {"message": [print]}])
def test_message_end_fires_only_for_listeners(listeners: dict[str, list[Any]] | None) -> None:
    """With no listener the message is handed on and nothing is fired; with one, autobahn's own
    ``onMessageEnd`` runs (which fires the ``message`` event)."""
    from broker.router.crossbar.protocol import _make_on_message_end

    channel = _Channel(listeners)
    on_message_end = _make_on_message_end(lambda self: self.fired.append("autobahn's"))
    on_message_end(channel)
    if listeners is None:
        assert channel.got == [(b"[16,1]", False)] and channel.fired == []
        assert channel.message_data is None
    else:
        assert channel.got == [] and channel.fired == ["autobahn's"]
