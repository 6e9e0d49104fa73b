"""Presence bookkeeping and its config, without a reactor: broker.core.presence, broker.config.presence,
the ``presence`` grant, and the Redis share over a blocking link to the session's real redis-server."""

from __future__ import annotations

import copy
import json
import secrets
from typing import Any

import pytest

from broker.config.check.settings import settings_errors
from broker.config.reload import plan_reload
from broker.config.settings import parse_settings
from broker.core.grants import Grant, Grants, reserved_grant
from broker.core.presence import Change, Entry, PresenceBook, PresenceSettings, answer, union
from broker.engines.redis_presence import RedisPresence
from broker.errors import ConfigError
from broker.router.component import authorize
from tests import redisserver
from tests.engines import settle
from tests.redisserver import RedisServer
from tests.test_reload import ENV, extra, running

ANON, ALICE, ALICE_2, BACKEND = 1, 2, 3, 4
ROOM, OTHER = "chat.room", "chat.other"


def book() -> PresenceBook:
    book = PresenceBook()
    book.joined(ANON, "4LHP-LPC3", "anonymous")
    book.joined(ALICE, "alice", "user")
    book.joined(ALICE_2, "alice", "user")
    book.joined(BACKEND, "backend", "backend")
    book.created(10, ROOM, "exact")
    book.created(11, "chat.", "prefix")
    book.created(12, "chat..x", "wildcard")
    book.created(13, OTHER, "exact")
    return book


def test_sessions_are_counted_once_and_token_users_by_id() -> None:
    b = book()
    assert b.subscribed(ANON, 10) == [Change(ROOM, "join", None)]
    assert b.subscribed(ANON, 10) == []  # twice: once
    assert b.subscribed(ALICE, 10) == [Change(ROOM, "join", "alice")]
    assert b.subscribed(ALICE_2, 10) == [Change(ROOM, "join", "alice")]
    assert b.subscribed(BACKEND, 10) == [Change(ROOM, "join", None)]  # not a token session: counted
    assert b.subscribed(BACKEND, 11) == b.subscribed(ANON, 12) == []  # prefix/wildcard: observers
    assert b.entry(ROOM) == Entry(2, {"alice": 2})
    assert answer(ROOM, b.entry(ROOM)) == {
        "topic": ROOM,
        "count": 4,
        "users": [{"id": "alice", "sessions": 2}],
        "anonymous": 2,
    }
    assert b.entry(OTHER) == Entry() and b.topics() == [ROOM]


def test_leaves_come_from_unsubscribing_or_leaving_and_only_once() -> None:
    b = book()
    for session in (ANON, ALICE, ALICE_2):
        b.subscribed(session, 10)
    b.subscribed(ALICE, 13)
    assert b.unsubscribed(ALICE_2, 10) == [Change(ROOM, "leave", "alice")]
    assert b.unsubscribed(ALICE_2, 10) == []
    assert b.left(ALICE) == [Change(OTHER, "leave", "alice"), Change(ROOM, "leave", "alice")]
    # crossbar may send a leaving session's on_unsubscribe after its on_leave: nothing changes
    assert b.unsubscribed(ALICE, 10) == [] and b.left(ALICE) == []
    assert b.entry(ROOM) == Entry(1, {}) and b.topics() == [ROOM]
    b.deleted(10)
    assert b.subscribed(ALICE_2, 10) == []  # a deleted subscription is no topic any more


def test_a_session_the_book_never_saw_join_is_ignored() -> None:
    b = book()
    assert b.subscribed(99, 10) == [] and b.left(99) == []
    assert b.subscribed(ANON, 999) == []  # a subscription without its on_create (a wamp. one)


def test_entries_travel_as_json_and_add_up() -> None:
    one, two = Entry(1, {"alice": 1}), Entry(0, {"alice": 1, "bob": 2})
    assert Entry.from_wire(json.loads(json.dumps(one.to_wire()))) == one
    assert union([one, two]) == Entry(1, {"alice": 2, "bob": 2})
    assert union([]).count == 0
    for malformed in (None, [], {"a": "1"}, {"u": []}, "x"):
        assert Entry.from_wire(malformed) == Entry()
    assert Entry.from_wire({"a": -3, "u": {"x": 0, "y": 2, "z": "1"}}) == Entry(0, {"y": 2})


def test_settings_enable_topics_by_pattern() -> None:
    settings = PresenceSettings((Grant("chat.", "prefix", frozenset({"presence"})),), node_ttl=6)
    assert settings.enabled(ROOM) and not settings.enabled("public.x")
    assert settings.heartbeat == 2
    assert not PresenceSettings().enabled(ROOM)


def settings_extra(presence: Any) -> dict[str, Any]:
    return {"grants": {}, "presence": presence}


@pytest.mark.parametrize(
    ("presence", "path", "message"),
    [
        ([], "$.extra.presence", "must be an object {topics, node_ttl}, not list"),
        ({"topic": []}, "$.extra.presence.topic", "unknown key 'topic' (expected one of: node_ttl, topics)"),
        ({"topics": {}}, "$.extra.presence.topics", "must be a list of {uri, match} patterns"),
        (
            {"topics": ["chat."]},
            "$.extra.presence.topics[0]",
            "a presence topic must be an object {uri, match}, not str",
        ),
        (
            {"topics": [{"uri": "chat.", "match": "prefix", "allow": []}]},
            "$.extra.presence.topics[0].allow",
            "unknown key 'allow' (expected one of: match, uri)",
        ),
        (
            {"topics": [{"match": "prefix"}]},
            "$.extra.presence.topics[0].uri",
            "missing (the topic or pattern that has presence)",
        ),
        (
            {"topics": [{"uri": "chat", "match": "glob"}]},
            "$.extra.presence.topics[0].match",
            "must be one of exact, prefix, wildcard, not 'glob'",
        ),
        (
            {"topics": [{"uri": "a", "match": "prefix"}, {"uri": "chat..", "match": "exact"}]},
            "$.extra.presence.topics[1].uri",
            "invalid presence topic 'chat..': URI components must be non-empty and contain no "
            "whitespace, '.' or '#'",
        ),
        (
            {"topics": [{"uri": "broker.", "match": "prefix"}]},
            "$.extra.presence.topics[0].uri",
            "'broker.' (prefix) reaches into wamp./broker.: only application topics have presence",
        ),
        (
            {"topics": [{"uri": "", "match": "prefix"}]},
            "$.extra.presence.topics[0].uri",
            "'' (prefix) reaches into wamp./broker.: only application topics have presence",
        ),
        ({"node_ttl": 2}, "$.extra.presence.node_ttl", "must be an integer from 3 to 300, not 2"),
        ({"node_ttl": True}, "$.extra.presence.node_ttl", "must be an integer from 3 to 300, not True"),
        ({"node_ttl": 5.0}, "$.extra.presence.node_ttl", "must be an integer from 3 to 300, not 5.0"),
    ],
)
def test_a_bad_presence_section_names_its_path(presence: Any, path: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_settings(settings_extra(presence), "$.extra", env={})
    assert (raised.value.path, raised.value.message) == (path, message)


def test_the_presence_section_parses_and_defaults_to_none() -> None:
    parsed = parse_settings(settings_extra({"topics": [{"uri": "chat.", "match": "prefix"}]}), env={})
    assert parsed.presence == PresenceSettings((Grant("chat.", "prefix", frozenset({"presence"})),), 15)
    assert parse_settings({"grants": {}}, env={}).presence == PresenceSettings()


def test_broker_check_reports_a_bad_presence_section_with_its_path() -> None:
    config = running()
    extra(config)["presence"]["node_ttl"] = 0
    [error] = settings_errors(config)
    assert (error.path, error.message) == (
        "$.workers[0].components[0].extra.presence.node_ttl",
        "must be an integer from 3 to 300, not 0",
    )


def test_presence_reloads_live() -> None:
    new = copy.deepcopy(running())
    extra(new)["presence"]["topics"].append({"uri": "chat.", "match": "prefix"})
    plan = plan_reload(running(), new, ENV)
    assert plan.restart == ()
    assert plan.live == ("$.workers[0].components[0].extra.presence.topics[1]",)
    assert plan.settings.presence.enabled(ROOM)


def test_the_presence_grant_is_for_application_topics_only() -> None:
    assert reserved_grant("operator", "broker.presence", "exact", ["presence"]) == (
        "presence on 'broker.presence' is not grantable: the wamp. and broker. namespaces are reserved "
        "for the node"
    )
    assert reserved_grant("backend", "broker.presence", "exact", ["call"]) is None
    assert reserved_grant("backend", "chat.", "prefix", ["presence"]) is None


def test_the_events_topic_is_subscribable_with_a_presence_grant_on_the_topic() -> None:
    grants = Grants({"backend": (Grant("chat.", "prefix", frozenset({"presence"})),)})

    def subscribe(role: str, uri: str, match: str = "exact") -> bool:
        return authorize(grants, {"authrole": role}, uri, "subscribe", {"match": match})["allow"]

    assert subscribe("backend", "broker.presence.chat.room")
    assert subscribe("backend", "broker.presence.chat.", "prefix")
    assert not subscribe("backend", "broker.presence.", "prefix")  # every topic: not covered
    assert not subscribe("backend", "broker.presence.public.x")
    assert not subscribe("anonymous", "broker.presence.chat.room")
    assert not subscribe("backend", "chat.room")  # presence is no subscribe grant


def share(
    prefix: str, node: str, b: PresenceBook, ttl: int = 15
) -> tuple[RedisPresence, redisserver.SocketLink]:
    link = redisserver.store_link()
    settings = PresenceSettings((Grant("chat.", "prefix", frozenset({"presence"})),), node_ttl=ttl)
    return RedisPresence(link, b, lambda: settings, node_id=node, prefix=prefix), link


def test_redis_share_answers_the_other_live_nodes_and_forgets_expired_ones(redis_server: RedisServer) -> None:
    prefix = f"p{secrets.token_hex(6)}"
    book_a, book_b = book(), book()
    a, link_a = share(prefix, "node-a", book_a)
    b, _ = share(prefix, "node-b", book_b)
    a.start()  # the first heartbeat: a full write
    b.start()
    book_a.subscribed(ALICE, 10)
    a.changed([ROOM])
    book_b.subscribed(ANON, 10)
    book_b.subscribed(ANON, 13)
    b.changed([ROOM, OTHER])
    assert settle(b.others(ROOM)) == [Entry(0, {"alice": 1})]  # its own entry is not among them
    assert settle(a.others(ROOM)) == [Entry(1, {})]
    key = f"{{{prefix}}}:presence:node:node-a"
    assert 0 < int(link_a.command("PTTL", key)) <= 15_000
    book_a.left(ALICE)
    a.changed([ROOM])
    assert settle(b.others(ROOM)) == []
    # node A's hash expires (its heartbeats stopped): B forgets A and drops it from the node list
    book_a.subscribed(ALICE_2, 10)
    a.changed([ROOM])
    link_a.command("DEL", key)
    assert settle(b.others(ROOM)) == []
    assert link_a.command("ZRANGE", f"{{{prefix}}}:presence:nodes", "0", "-1") == ["node-b"]
    # a partial write to an expired hash writes everything again (every topic, not just this one)
    book_a.subscribed(ALICE_2, 13)
    a.changed([OTHER])
    assert settle(b.others(ROOM)) == [Entry(0, {"alice": 1})]
    assert settle(b.others(OTHER)) == [Entry(0, {"alice": 1})]
    a.close()
    b.close()


def test_redis_share_writes_only_enabled_topics(redis_server: RedisServer) -> None:
    prefix = f"p{secrets.token_hex(6)}"
    b = book()
    b.created(20, "public.x", "exact")
    b.subscribed(ANON, 20)
    a, _ = share(prefix, "node-a", b)
    other, _ = share(prefix, "node-b", PresenceBook())
    a.start()
    a.changed(["public.x"])
    assert settle(other.others("public.x")) == []
    a.close()
    other.close()
