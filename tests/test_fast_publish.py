"""Broker's fast PUBLISH dispatch (:mod:`broker.router.crossbar.fastpublish`) against crossbar's own.

Two real nodes from the project config, both with ``event_dispatching_chunk_size`` 2 so that
chunking shows with a handful of subscribers: one with ``extra.fast_path`` on (the default), one
with it off (crossbar's ``processPublish`` for everything). A test that compares runs the same
steps against both and compares what raw WAMP clients receive, byte for byte once the ids that
differ between nodes (publication, subscription, session, the history epoch) are masked; the
others assert the exact outcome on each node. The chunk sender's edge cases (a receiver gone by
its turn, one whose message is too large) are checked on their own, without a reactor, in
``tests/test_fast_shortcuts.py``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.node import BACKEND_SECRET, Node
from tests.rawwamp import ERROR, EVENT, PUBLISH, PUBLISHED, SUBSCRIBE, SUBSCRIBED, RawWamp
from tests.test_metrics import scrape, series
from tests.test_publish_api import request
from tests.test_recovery import recover

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
    """``eligible``/``exclude`` by session id, authid and authrole pick the receivers."""
    on = clients[fast]
    first, second = on.subscriber("public.fp.pick"), on.subscriber("public.fp.pick")
    watcher = on.join("backend")
    assert watcher.subscribe("public.fp.pick")[0] == SUBSCRIBED
    publisher = on.join("backend")
    assert publish(publisher, "public.fp.pick", ["A"], {}, eligible=[first.session_id])[0] == PUBLISHED
    assert publish(publisher, "public.fp.pick", ["B"], {}, exclude=[first.session_id])[0] == PUBLISHED
    assert publish(publisher, "public.fp.pick", ["C"], {}, exclude_authrole=["anonymous"])[0] == PUBLISHED
    assert publish(publisher, "public.fp.pick", ["D"], {})[0] == PUBLISHED
    assert publish(publisher, "public.fp.pick", ["E"], {}, eligible_authrole=["anonymous"])[0] == PUBLISHED
    assert publish(publisher, "public.fp.pick", ["F"], {}, exclude_authid=["backend"])[0] == PUBLISHED
    assert publish(publisher, "public.fp.pick", ["G"], {}, eligible_authid=["backend"])[0] == PUBLISHED
    assert [first.event()[4][0] for _ in range(4)] == ["A", "D", "E", "F"]
    assert [second.event()[4][0] for _ in range(4)] == ["B", "D", "E", "F"]
    assert [watcher.event()[4][0] for _ in range(4)] == ["B", "C", "D", "G"]


def test_disclosed_publishers_and_forward_for_are_crossbar_s(clients: dict[bool, Clients]) -> None:
    """A ``crossbar.`` topic discloses its publisher whatever the authorizer says; with
    ``forward_for`` the first hop is the publisher and this session is appended. Same frames either way."""
    seen: dict[bool, list[str]] = {}
    hop = {"session": 4242, "authid": "origin", "authrole": "app"}
    for fast, on in clients.items():
        subscriber = on.join("backend")
        subscription = subscriber.subscribe("crossbar.fp.who")[2]
        publisher = on.join("backend")
        first = publish(publisher, "crossbar.fp.who", [1], {})
        second = publish(publisher, "crossbar.fp.who", [2], {}, forward_for=[hop])
        assert first[0] == second[0] == PUBLISHED, (first, second)
        events = [raw(subscriber), raw(subscriber)]
        details = [json.loads(e)[3] for e in events]
        assert {k: details[0][k] for k in ("publisher", "publisher_authid", "publisher_authrole")} == {
            "publisher": publisher.session_id,
            "publisher_authid": "backend",
            "publisher_authrole": "backend",
        }
        assert (details[1]["publisher"], details[1]["publisher_authid"]) == (4242, "origin")
        me = {"session": publisher.session_id, "authid": "backend", "authrole": "backend"}
        assert details[1]["forward_for"] == [hop, me]
        seen[fast] = [masked(e, first[2], second[2], subscription, publisher.session_id) for e in events]
    assert seen[True] == seen[False]


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


def test_what_the_fast_dispatch_leaves_to_crossbar_is_crossbar_s(clients: dict[bool, Clients]) -> None:
    """An end-to-end encrypted payload (passed through as it is) and ``retain`` (kept for a
    later ``get_retained`` subscriber) go to crossbar's own dispatch: the same frames either way."""
    import msgpack

    seen: dict[bool, list[str]] = {}
    for fast, on in clients.items():
        subscriber = on.join(serializer="msgpack")
        subscription = subscriber.subscribe("public.fp.sealed")[2]
        publisher = on.join("backend", serializer="msgpack")
        sealed = {"acknowledge": True, "enc_algo": "cryptobox", "enc_serializer": "json"}
        publisher.send([PUBLISH, publisher.next_id(), sealed, "public.fp.sealed", b"\x01secret"])
        published = msgpack.unpackb(publisher.ws.recv(timeout=10), raw=False)
        event = msgpack.unpackb(subscriber.ws.recv(timeout=10), raw=False)
        assert event[3:] == [{"enc_algo": "cryptobox", "enc_serializer": "json"}, b"\x01secret"]
        keeper = on.join("backend")
        assert publish(keeper, "public.fp.kept", ["kept"], {}, retain=True)[0] == PUBLISHED
        late = on.join()
        late.send([SUBSCRIBE, late.next_id(), {"get_retained": True}, "public.fp.kept"])
        kept = late.recv()
        retained = late.event()
        assert (retained[1], retained[3], retained[4]) == (kept[2], {"retained": True}, ["kept"])
        seen[fast] = [
            masked(repr(published), published[2], subscription),
            masked(repr(event), published[2], subscription),
            masked(json.dumps(retained), retained[1], retained[2]),
        ]
    assert seen[True] == seen[False]


def _strict(fast: bool) -> Callable[[dict[str, Any]], None]:
    def mutate(config: dict[str, Any]) -> None:
        config["workers"][0]["realms"][0]["options"]["uri_check"] = "strict"
        config["workers"][0]["components"][0]["extra"]["fast_path"] = fast

    return mutate


@pytest.mark.parametrize("fast", [True, False])
def test_a_topic_crossbar_refuses_is_not_stored_counted_or_authorized(
    make_node: Callable[..., Node], fast: bool
) -> None:
    """Crossbar refuses a topic its realm's ``uri_check`` (here strict: ``public.Upper``) or the
    ``wamp.`` restriction forbids before it authorizes anything. Broker answers the same ERROR
    and, like crossbar, accepts nothing: no event recovery would return, no publish in
    ``broker_publishes_total``, no ``NotAuthorized`` for an anonymous ``wamp.`` publish. The
    HTTP API refuses such a topic (alone or in a batch) with 400 before it stores anything."""
    node = make_node(_strict(fast))
    on = Clients(node)
    try:
        subscriber = on.subscriber("public.", "prefix")
        publisher, anonymous = on.join("backend"), on.join()
        _, before = scrape(node)  # crossbar's own meta events (wamp.session.on_join, ...) counted
        assert publish(publisher, "public.Upper", ["refused"], {})[3:] == [
            {},
            "wamp.error.invalid_uri",
            ["publish with invalid topic URI 'public.Upper' (URI strict checking True)"],
        ]
        for who in (publisher, anonymous):
            assert publish(who, "wamp.fp.mine", ["refused"], {})[3:] == [
                {},
                "wamp.error.invalid_uri",
                ["publish with restricted topic URI 'wamp.fp.mine'"],
            ]
        upper = "publish with invalid topic URI 'public.Upper' (URI strict checking True)"
        for body in (  # over HTTP too: refused whole, before its batch is stored (400, not 502)
            {"topic": "public.Upper", "data": "refused"},
            {"events": [{"topic": "public.lower", "data": "refused"}, {"topic": "public.Upper"}]},
        ):
            status, answer, _ = request(node, body)
            assert (status, answer) == (400, {"error": "wamp.error.invalid_uri", "message": upper})
        assert publish(publisher, "public.lower", ["delivered"], {})[0] == PUBLISHED
        event = subscriber.event()
        assert event[4] == ["delivered"]
        epoch = event[5]["broker_position"]["epoch"]
        stored = recover(publisher, "public.", "prefix", epoch, 0)["events"]
        assert [(e["topic"], e["args"]) for e in stored] == [("public.lower", ["delivered"])]
        _, samples = scrape(node)
        counted = series(samples, "broker_publishes_total", "namespace")
        assert counted == {**series(before, "broker_publishes_total", "namespace"), "public": 1}
        assert node.rejections() == {"http_InvalidUri": 2}
    finally:
        on.close()
