"""The SDK against a real node: events published over HTTP reach a WAMP subscriber.

The node is started by ``tests.node.Node`` with the ``broker`` executable of the
crossbar venv (``BROKER_NODE_BIN``, set by ``make test``), since this venv has
no crossbar. Its config holds the publisher key ``dev`` with secret
``tests.node.PUBLISHER_SECRET``.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import tests.node
from broker.client import AsyncPublisher, BadRequest, Forbidden, Published, Publisher, Unauthenticated
from tests.node import PUBLISHER_SECRET, Node
from tests.rawwamp import SUBSCRIBED, RawWamp

pytestmark = pytest.mark.node

KEY_ID = "dev"


@pytest.fixture(scope="module")
def sdk_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    """One node for this module, started with the crossbar venv's ``broker``."""
    with pytest.MonkeyPatch.context() as patch:
        if "BROKER_NODE_BIN" in os.environ:
            patch.setattr(tests.node, "BROKER", Path(os.environ["BROKER_NODE_BIN"]))
        running = Node(tmp_path_factory.mktemp("sdk-node")).start()
    yield running
    running.stop()


@pytest.fixture
def subscribe(sdk_node: Node) -> Iterator[Any]:
    """Subscribe anonymously to a topic on the node; connections closed afterwards."""
    opened: list[RawWamp] = []

    def open_(topic: str) -> RawWamp:
        client = RawWamp(sdk_node.ws_url, origin=sdk_node.origin)
        opened.append(client)
        assert client.hello()[0] == 2
        assert client.subscribe(topic)[0] == SUBSCRIBED
        return client

    yield open_
    for client in opened:
        client.close()


@pytest.fixture
def publisher(sdk_node: Node) -> Publisher:
    return Publisher(sdk_node.url, KEY_ID, PUBLISHER_SECRET)


def test_a_published_event_reaches_a_subscriber(subscribe: Any, publisher: Publisher) -> None:
    subscriber = subscribe("public.x")
    data = {"n": 1, "s": "é", "list": [1, None, True]}
    published = publisher.publish("public.x", data)
    assert published.topic == "public.x"
    event = subscriber.event()
    assert event[2] == published.id
    assert event[4] == [data]


def test_a_batch_arrives_in_order(subscribe: Any, publisher: Publisher) -> None:
    subscriber = subscribe("public.x")
    published = publisher.publish_many([("public.x", n) for n in range(5)])
    assert [p.topic for p in published] == ["public.x"] * 5
    events = [subscriber.event() for _ in range(5)]
    assert [e[4] for e in events] == [[n] for n in range(5)]
    assert [e[2] for e in events] == [p.id for p in published]


def test_an_idempotent_repeat_publishes_once(subscribe: Any, publisher: Publisher) -> None:
    subscriber = subscribe("public.x")
    key = uuid.uuid4().hex
    first = publisher.publish("public.x", "once", idempotency_key=key)
    again = publisher.publish("public.x", "once", idempotency_key=key)
    assert again == first
    marker = publisher.publish("public.x", "marker")
    assert [subscriber.event()[4] for _ in range(2)] == [["once"], ["marker"]]  # no second "once"
    assert marker.id != first.id


def test_a_reserved_topic_is_forbidden(publisher: Publisher) -> None:
    with pytest.raises(Forbidden) as caught:
        publisher.publish("broker.internal", 1)
    assert (caught.value.status, caught.value.error) == (403, "wamp.error.not_authorized")


def test_an_invalid_topic_is_a_bad_request(publisher: Publisher) -> None:
    with pytest.raises(BadRequest) as caught:
        publisher.publish("public.a b", 1)
    assert (caught.value.status, caught.value.error) == (400, "wamp.error.invalid_uri")


def test_a_wrong_secret_is_unauthenticated(sdk_node: Node) -> None:
    with pytest.raises(Unauthenticated) as caught:
        Publisher(sdk_node.url, KEY_ID, "not-the-secret").publish("public.x", 1)
    assert (caught.value.status, caught.value.error) == (401, "broker.error.unauthenticated")


def test_the_async_publisher(subscribe: Any, sdk_node: Node) -> None:
    subscriber = subscribe("public.x")
    publisher = AsyncPublisher(sdk_node.url, KEY_ID, PUBLISHER_SECRET)

    async def main() -> tuple[Published, list[Published]]:
        return await publisher.publish("public.x", {"a": 1}), await publisher.publish_many(
            [("public.x", 2), {"topic": "public.x", "data": 3}]
        )

    one, many = asyncio.run(main())
    events = [subscriber.event() for _ in range(3)]
    assert [e[4] for e in events] == [[{"a": 1}], [2], [3]]
    assert [e[2] for e in events] == [one.id] + [p.id for p in many]
    with pytest.raises(Forbidden):
        asyncio.run(publisher.publish("broker.internal", 1))


def test_published_carries_the_position_subscribers_see(subscribe: Any, publisher: Publisher) -> None:
    """The 200 answer reports each event's position (docs/positions.md)."""
    subscriber = subscribe("public.positioned")
    published = publisher.publish("public.positioned", "x")
    assert published.position is not None
    assert subscriber.event()[5]["broker_position"] == published.position
