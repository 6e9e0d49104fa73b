"""The engine seam on a real node: one authorization per publish, and the feed-in point.

A probe resource inside the node's router worker (tests/routerprobe.py)
counts crossbar's ``Router.authorize`` calls and hands events to the node's
local delivery as a history engine's feed would (the Redis engine's job,
next): a subscriber must get such an event exactly as it gets a local one.
"""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.node import BACKEND_SECRET, Node, tests_importable
from tests.rawwamp import ERROR, PUBLISHED, SUBSCRIBED, RawWamp
from tests.test_publish_api import request

pytestmark = pytest.mark.node

UNSUBSCRIBE = 34

ROOT = Path(__file__).resolve().parent.parent


def with_probe(config: dict[str, Any]) -> None:
    paths = config["workers"][0]["transports"][0]["paths"]
    paths["probe"] = {"type": "resource", "classname": "tests.routerprobe.RouterProbe"}


@pytest.fixture(scope="module")
def probed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    """A node with the probe at /probe (its router worker imports ``tests.routerprobe``)."""
    running = Node(tmp_path_factory.mktemp("probed"), mutate=with_probe, env=tests_importable()).start()
    yield running
    running.stop()


@pytest.fixture
def joined(probed: Node) -> Iterator[Callable[..., RawWamp]]:
    opened: list[RawWamp] = []

    def open_(role: str = "anonymous") -> RawWamp:
        client = RawWamp(probed.ws_url, origin=probed.origin)
        opened.append(client)
        if role == "backend":
            welcome = client.hello(authid="backend", secret=BACKEND_SECRET)
        else:
            welcome = client.hello()
        assert welcome[0] == 2, welcome
        return client

    yield open_
    for client in opened:
        client.close()


def authorizations(node: Node, uri: str) -> dict[str, int]:
    with urllib.request.urlopen(f"{node.url}/probe/authorizations?uri={uri}", timeout=10) as response:
        return json.load(response)  # type: ignore[no-any-return]


def feed(node: Node, event: dict[str, Any]) -> str:
    """Hand ``event`` to the node's local delivery as an engine's feed would; the node's epoch."""
    req = urllib.request.Request(f"{node.url}/probe/feed", data=json.dumps(event).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=10) as response:
        return json.load(response)["epoch"]  # type: ignore[no-any-return]


def test_a_wamp_publish_is_authorized_once(probed: Node, joined: Callable[..., RawWamp]) -> None:
    topic = f"public.once.{uuid.uuid4().hex[:8]}"
    quiet = f"public.quiet.{uuid.uuid4().hex[:8]}"
    listener = joined()
    assert listener.subscribe(topic)[0] == SUBSCRIBED
    backend = joined("backend")
    for n in range(3):  # acknowledged, with a subscriber: crossbar's own handling would authorize too
        answer = backend.publish(topic, [n])
        assert answer is not None and answer[0] == PUBLISHED
        assert listener.event()[4] == [n]
    backend.publish(quiet, ["nobody listens"], acknowledge=False)
    assert backend.publish(quiet, ["acknowledged"]) is not None
    # never twice for one publish: the first asks the authorizer, the later ones get its cached
    # answer (crossbar's authorization cache, as crossbar's own Router.authorize would)
    assert authorizations(probed, topic) == {"publish": 1, "subscribe": 1}
    assert authorizations(probed, quiet) == {"publish": 1}


def test_a_refused_publish_is_authorized_once_and_answered_by_crossbar(
    probed: Node, joined: Callable[..., RawWamp]
) -> None:
    topic = f"public.refused.{uuid.uuid4().hex[:8]}"
    canary = joined()
    assert canary.subscribe(topic)[0] == SUBSCRIBED
    anonymous = joined()  # may subscribe to public., never publish
    answer = anonymous.publish(topic, ["no"])
    assert answer is not None
    assert (answer[0], answer[4]) == (ERROR, "wamp.error.not_authorized")
    assert authorizations(probed, topic) == {"publish": 1, "subscribe": 1}
    # the canary still gets what a publisher may send
    assert joined("backend").publish(topic, ["yes"]) is not None
    assert canary.event()[4] == ["yes"]


def test_http_publishes_ask_no_router_authorizer(probed: Node, joined: Callable[..., RawWamp]) -> None:
    topic = f"public.http.{uuid.uuid4().hex[:8]}"
    listener = joined()
    assert listener.subscribe(topic)[0] == SUBSCRIBED
    status, body, _ = request(probed, {"events": [{"topic": topic, "data": n} for n in range(3)]})
    assert status == 200, body
    assert [listener.event()[4] for _ in range(3)] == [[0], [1], [2]]
    assert authorizations(probed, topic) == {"subscribe": 1}  # the gate's key grants decided


def test_a_fed_event_reaches_subscribers_as_a_local_one(probed: Node, joined: Callable[..., RawWamp]) -> None:
    topic = f"public.fed.{uuid.uuid4().hex[:8]}"
    exact, prefix, bystander = joined(), joined(), joined()
    assert exact.subscribe(topic)[0] == SUBSCRIBED
    assert prefix.subscribe(topic.rpartition(".")[0] + ".", "prefix")[0] == SUBSCRIBED
    other = f"public.other.{uuid.uuid4().hex[:8]}"
    assert bystander.subscribe(other)[0] == SUBSCRIBED
    payload: dict[str, Any] = {"order": {"id": 7, "items": ["a", "b"]}}

    # the local path: a backend publishes over WAMP
    backend = joined("backend")
    assert backend.publish(topic, ["local"], payload) is not None
    local_exact, local_prefix = exact.event(), prefix.event()
    local_position = local_exact[5]["broker_position"]

    # the feed-in point: an event another process appended, its position already set
    position = {"seq": local_position["seq"] + 1, "cursor": local_position["cursor"] + 1000}
    epoch = feed(probed, {"topic": topic, **position, "args": ["fed"], "kwargs": payload})
    fed_exact, fed_prefix = exact.event(), prefix.event()

    for local, fed in [(local_exact, fed_exact), (local_prefix, fed_prefix)]:
        assert len(fed) == len(local) == 6
        assert fed[1] == local[1]  # the same subscription
        assert isinstance(fed[2], int) and fed[2] != local[2]  # a publication id of its own
        assert fed[3] == local[3]  # the same details: the topic for the prefix subscriber, no publisher
        assert (local[4], fed[4]) == (["local"], ["fed"])
        assert fed[5] == {**payload, "broker_position": {"epoch": epoch, **position}}
        assert set(fed[5]) == set(local[5])
    assert local_prefix[3] == {"topic": topic}
    assert local_position["epoch"] == epoch
    # the bystander's first event is the sentinel on its own topic: nothing fed reached it
    assert backend.publish(other, ["sentinel"]) is not None
    assert bystander.event()[4] == ["sentinel"]


def test_an_authorization_crossbar_did_not_take_answers_no_other_publish(
    probed: Node, joined: Callable[..., RawWamp]
) -> None:
    """Crossbar skips authorizing an unacknowledged publish nobody listens to, so the backend's
    "allowed" handed in for it is never taken: it must not answer the next publish, an anonymous
    client's, which its own grants refuse."""
    topic = f"public.after.{uuid.uuid4().hex[:8]}"
    listener = joined()
    assert listener.subscribe(topic)[0] == SUBSCRIBED
    backend, anonymous = joined("backend"), joined()
    backend.publish(f"public.nobody.{uuid.uuid4().hex[:8]}", ["unheard"], acknowledge=False)
    backend.send([UNSUBSCRIBE, backend.next_id(), 1])  # a round trip that authorizes nothing:
    assert backend.recv()[0] == ERROR  # the router has handled the publish before it
    answer = anonymous.publish(topic, ["sneaked"])
    assert answer is not None
    assert (answer[0], answer[4]) == (ERROR, "wamp.error.not_authorized")
    assert backend.publish(topic, ["sentinel"]) is not None
    assert listener.event()[4] == ["sentinel"]  # nothing came before it
    assert authorizations(probed, topic) == {"publish": 2, "subscribe": 1}
