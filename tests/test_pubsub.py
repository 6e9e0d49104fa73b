"""Exact, prefix and wildcard subscriptions with autobahn-python (Twisted) against a real node."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import pytest_twisted
from autobahn.twisted.wamp import ApplicationSession
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import ComponentConfig, PublishOptions, SubscribeOptions
from twisted.internet import defer, reactor

from tests.node import BACKEND_SECRET, Node

pytestmark = pytest.mark.node


class Client(ApplicationSession):  # type: ignore[misc]
    """A session whose join is a Deferred tests can wait on."""

    def __init__(self, config: ComponentConfig, joined: defer.Deferred[Any], authid: str | None) -> None:
        super().__init__(config)
        self.joined = joined
        self.login_as = authid

    def onConnect(self) -> None:
        if self.login_as:
            self.join(self.config.realm, authmethods=["wampcra"], authid=self.login_as)
        else:
            self.join(self.config.realm, authmethods=["anonymous"])

    def onChallenge(self, challenge: Any) -> str:
        from autobahn.wamp.auth import compute_wcs

        return compute_wcs(BACKEND_SECRET, challenge.extra["challenge"]).decode()  # type: ignore[no-any-return]

    def onJoin(self, details: Any) -> None:
        self.joined.callback(self)


async def join(node: Node, authid: str | None = None) -> Client:
    from autobahn.twisted.websocket import WampWebSocketClientFactory
    from twisted.internet.endpoints import TCP4ClientEndpoint

    joined: defer.Deferred[Any] = defer.Deferred()
    factory = WampWebSocketClientFactory(
        lambda: Client(ComponentConfig("app"), joined, authid), url=node.ws_url, origin=node.origin
    )
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", node.port)
    await endpoint.connect(factory)
    client: Client = await defer.ensureDeferred(_with_timeout(joined))
    return client


async def _with_timeout(d: defer.Deferred[Any], seconds: float = 10) -> Any:
    d.addTimeout(seconds, reactor)
    return await d


@pytest.mark.parametrize(
    ("pattern", "match", "published", "delivered"),
    [
        ("public.{id}.price", "exact", ["public.{id}.price", "public.{id}.volume"], ["public.{id}.price"]),
        (
            "public.{id}.",
            "prefix",
            ["public.{id}.a", "public.{id}.b.c", "public.other.a"],
            ["public.{id}.a", "public.{id}.b.c"],
        ),
        (
            "public.{id}..price",
            "wildcard",
            ["public.{id}.x.price", "public.{id}.x.volume", "public.{id}.price"],
            ["public.{id}.x.price"],
        ),
    ],
)
@pytest_twisted.ensureDeferred
async def test_subscriptions(
    node: Node, pattern: str, match: str, published: list[str], delivered: list[str]
) -> None:
    uid = uuid.uuid4().hex[:8]
    subscriber = await join(node)
    publisher = await join(node, authid="backend")
    received: list[tuple[str, Any]] = []
    done: defer.Deferred[None] = defer.Deferred()

    positions: list[dict[str, Any]] = []

    # Broker adds each event's position to its kwargs: autobahn handlers take **kwargs
    def on_event(data: Any, details: Any = None, broker_position: Any = None) -> None:
        received.append((details.topic, data))
        positions.append(broker_position)
        if data == "last":
            done.callback(None)

    await subscriber.subscribe(
        on_event, pattern.format(id=uid), options=SubscribeOptions(match=match, details_arg="details")
    )
    for topic in published:
        await publisher.publish(
            topic.format(id=uid), topic.format(id=uid), options=PublishOptions(acknowledge=True)
        )
    # a final event on a delivered topic marks the end: everything before it arrived in order
    await publisher.publish(delivered[0].format(id=uid), "last", options=PublishOptions(acknowledge=True))
    await _with_timeout(done)
    expected = [(t.format(id=uid), t.format(id=uid)) for t in delivered] + [
        (delivered[0].format(id=uid), "last")
    ]
    assert received == expected
    assert len({p["epoch"] for p in positions}) == 1
    assert [p["cursor"] for p in positions] == sorted(p["cursor"] for p in positions)
    subscriber.leave()
    publisher.leave()


@pytest_twisted.ensureDeferred
async def test_unauthorized_acknowledged_publish_raises(node: Node) -> None:
    anonymous = await join(node)
    with pytest.raises(ApplicationError) as info:
        await anonymous.publish("public.demo", 1, options=PublishOptions(acknowledge=True))
    assert info.value.error == "wamp.error.not_authorized"
    anonymous.leave()


@pytest_twisted.ensureDeferred
async def test_gapless_subscriber_helper_recovers_then_goes_live(node: Node) -> None:
    from broker.client.wamp import subscribe_gapless

    topic = f"public.gapless.{uuid.uuid4().hex[:8]}"
    publisher = await join(node, authid="backend")
    await publisher.publish(topic, "seen", options=PublishOptions(acknowledge=True))
    first = await join(node)
    seen: list[Any] = []
    got_first: defer.Deferred[None] = defer.Deferred()

    def on_first(t: str, data: Any, position: dict[str, Any]) -> None:
        seen.append(position)
        got_first.callback(None)

    await subscribe_gapless(first, on_first, topic)
    await publisher.publish(topic, "seen", options=PublishOptions(acknowledge=True))
    await _with_timeout(got_first)
    first.leave()
    for n in range(3):  # missed while away
        await publisher.publish(topic, n, options=PublishOptions(acknowledge=True))

    received: list[tuple[Any, int]] = []
    complete: defer.Deferred[None] = defer.Deferred()

    def on_event(t: str, data: Any, position: dict[str, Any]) -> None:
        received.append((data, position["seq"]))
        if data == "live":
            complete.callback(None)

    again = await join(node)
    await subscribe_gapless(again, on_event, topic, resume_from=(seen[0]["epoch"], seen[0]["cursor"]))
    await publisher.publish(topic, "live", options=PublishOptions(acknowledge=True))
    await _with_timeout(complete)
    assert received == [(0, 3), (1, 4), (2, 5), ("live", 6)]
    again.leave()
    publisher.leave()
