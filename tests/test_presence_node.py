"""``broker.presence`` and its join/leave events on one real node (the shipped config: presence on
``public.room.``, granted to ``backend`` and ``operator``).

What must hold: the answer counts sessions with an exact subscription (a session subscribing
twice once, a prefix watcher never), lists token sessions by user id with their number of
sessions, and follows leaves; each join and leave arrives on ``broker.presence.<topic>``; a
caller without the ``presence`` grant, a topic no pattern enables and a bad topic URI are each
refused with their exact error, and the well-behaved caller beside them is answered as before.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from broker.core.tokens import mint
from tests.node import TOKEN_SECRET, Node
from tests.rawwamp import ERROR, RESULT, SUBSCRIBED, RawWamp
from tests.test_recovery import anonymous, backend

pytestmark = pytest.mark.node

UNSUBSCRIBE, UNSUBSCRIBED = 34, 35


def presence(client: RawWamp, topic: object) -> Any:
    """``broker.presence(topic)``'s answer, or the ERROR message."""
    reply = client.call("broker.presence", [topic])
    if reply[0] == ERROR:
        return reply
    assert reply[0] == RESULT, reply
    return reply[3][0]


def refusal(reply: list[Any]) -> tuple[str, str]:
    """An ERROR's URI and message."""
    assert reply[0] == ERROR, reply
    return reply[4], reply[5][0]


def user(node: Node, sub: str, topic: str) -> RawWamp:
    """A token session of user ``sub`` that may subscribe to ``topic``."""
    client = RawWamp(node.ws_url, origin=node.origin)
    assert client.hello(ticket=mint(TOKEN_SECRET, sub, [{"uri": topic, "match": "exact"}]))[0] == 2
    return client


def presence_event(watcher: RawWamp) -> dict[str, Any]:
    """The next join/leave event, less the node id (checked to be there)."""
    kwargs = dict(watcher.event()[5])
    assert isinstance(kwargs.pop("node"), str)
    return kwargs


def unsubscribe(client: RawWamp, subscription: int) -> None:
    client.send([UNSUBSCRIBE, client.next_id(), subscription])
    assert client.recv()[0] == UNSUBSCRIBED


def test_presence_counts_sessions_names_users_and_follows_leaves(node: Node) -> None:
    topic = f"public.room.{uuid.uuid4().hex[:8]}"
    asker, watcher = backend(node), backend(node)
    assert watcher.subscribe(f"broker.presence.{topic}")[0] == SUBSCRIBED
    assert presence(asker, topic) == {"topic": topic, "count": 0, "users": [], "anonymous": 0}

    visitor = anonymous(node)
    first = visitor.subscribe(topic)
    assert first[0] == SUBSCRIBED
    assert visitor.subscribe(topic)[2] == first[2]  # a second SUBSCRIBE: the same subscription
    browsing = anonymous(node)
    assert browsing.subscribe("public.room.", "prefix")[0] == SUBSCRIBED  # a watcher, never counted
    alice = user(node, "alice", topic)
    assert alice.subscribe(topic)[0] == SUBSCRIBED
    alice_again = user(node, "alice", topic)
    subscribed = alice_again.subscribe(topic)
    assert subscribed[0] == SUBSCRIBED

    assert presence_event(watcher) == {"topic": topic, "presence": "join", "user": None}
    assert presence_event(watcher) == {"topic": topic, "presence": "join", "user": "alice"}
    assert presence_event(watcher) == {"topic": topic, "presence": "join", "user": "alice"}
    assert presence(asker, topic) == {
        "topic": topic,
        "count": 3,
        "users": [{"id": "alice", "sessions": 2}],
        "anonymous": 1,
    }

    unsubscribe(alice_again, subscribed[2])
    assert presence_event(watcher) == {"topic": topic, "presence": "leave", "user": "alice"}
    assert presence(asker, topic)["users"] == [{"id": "alice", "sessions": 1}]

    visitor.close()
    assert presence_event(watcher) == {"topic": topic, "presence": "leave", "user": None}
    assert presence(asker, topic) == {
        "topic": topic,
        "count": 1,
        "users": [{"id": "alice", "sessions": 1}],
        "anonymous": 0,
    }


def test_a_caller_without_the_presence_grant_is_refused(node: Node) -> None:
    topic = f"public.room.{uuid.uuid4().hex[:8]}"
    member = anonymous(node)
    assert member.subscribe(topic)[0] == SUBSCRIBED
    stranger, asker = anonymous(node), backend(node)
    # the shipped anonymous role may not even call it: crossbar refuses the call
    uri, message = refusal(presence(stranger, topic))
    assert uri == "wamp.error.not_authorized"
    assert 'authrole="anonymous") is not authorized to call procedure "broker.presence"' in message
    token = user(node, "bob", topic)
    assert refusal(presence(token, topic)) == (
        "wamp.error.not_authorized",
        f"user 'bob' may not see who is on {topic!r} (no presence grant)",
    )
    # nor its joins and leaves
    assert refusal_of_subscribe(stranger, f"broker.presence.{topic}") == "wamp.error.not_authorized"
    assert (
        refusal_of_subscribe(stranger, "broker.presence.public.room.", "prefix")
        == "wamp.error.not_authorized"
    )
    # backend's grant is on public.room. only: not on another application topic
    assert refusal(presence(asker, "public.x")) == (
        "wamp.error.not_authorized",
        "role 'backend' may not see who is on 'public.x' (no presence grant)",
    )
    assert refusal(presence(asker, "orders.1")) == (
        "wamp.error.not_authorized",
        "role 'backend' may not see who is on 'orders.1' (no presence grant)",
    )
    assert presence(asker, topic) == {"topic": topic, "count": 1, "users": [], "anonymous": 1}
    assert asker.subscribe("broker.presence.public.room.", "prefix")[0] == SUBSCRIBED


def refusal_of_subscribe(client: RawWamp, uri: str, match: str = "exact") -> str:
    reply = client.subscribe(uri, match)
    assert reply[0] == ERROR, reply
    return str(reply[4])


def test_a_bad_topic_uri_is_refused(node: Node) -> None:
    asker = backend(node)
    assert refusal(presence(asker, "public..x")) == (
        "wamp.error.invalid_uri",
        "invalid topic 'public..x': URI components must be non-empty and contain no whitespace, '.' or '#'",
    )
    assert refusal(presence(asker, 42)) == (
        "wamp.error.invalid_uri",
        "invalid topic 42: a URI must be a string, not int",
    )
    assert presence(asker, "public.room.fine")["count"] == 0


def with_grant_outside_presence(config: dict[str, Any]) -> None:
    extra = config["workers"][0]["components"][0]["extra"]
    extra["grants"]["backend"].append({"uri": "orders.", "match": "prefix", "allow": ["presence"]})


def test_a_topic_presence_is_not_enabled_for_is_refused(make_node: Callable[..., Node]) -> None:
    node = make_node(with_grant_outside_presence)
    asker = backend(node)
    assert refusal(presence(asker, "orders.1")) == (
        "broker.error.presence_not_enabled",
        "'orders.1' has no presence: no extra.presence.topics pattern enables it",
    )
    assert presence(asker, "public.room.x") == {
        "topic": "public.room.x",
        "count": 0,
        "users": [],
        "anonymous": 0,
    }


def without_subscription_meta_events(config: dict[str, Any]) -> None:
    """A node config from before presence: the ``broker`` role may not subscribe to them."""
    [realm] = config["workers"][0]["realms"]
    broker = next(role for role in realm["roles"] if role["name"] == "broker")
    broker["permissions"] = [
        p for p in broker["permissions"] if not p["uri"].startswith("wamp.subscription.")
    ]


def test_a_node_whose_role_cannot_see_subscriptions_says_so(make_node: Callable[..., Node]) -> None:
    node = make_node(without_subscription_meta_events)
    asker = backend(node)
    assert refusal(presence(asker, "public.room.x")) == (
        "broker.error.presence_unavailable",
        "this node cannot see who is on 'public.room.x': role 'broker' may not subscribe to "
        "wamp.subscription.on_delete (wamp.error.not_authorized)",
    )
    assert (
        "presence unavailable: role 'broker' may not subscribe to wamp.subscription.on_create" in node.log()
    )
    # everything else works: a subscriber still gets its events
    member = anonymous(node)
    assert member.subscribe("public.x")[0] == SUBSCRIBED
    assert asker.publish("public.x", ["still here"])[0] == 17
    assert member.event()[4] == ["still here"]
