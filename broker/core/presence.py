"""Presence: who is on a topic, as pure bookkeeping (no Twisted, no I/O).

Why: a chat room or a shared document wants to show who else is there;
crossbar has only the operator's meta API, which lists sessions to anyone it
is granted to and knows nothing of other nodes. Broker answers
``broker.presence(topic)`` for the topics ``extra.presence.topics`` enables,
to callers holding a ``presence`` grant on the topic.

What counts: a session is *on* topic ``T`` while it holds an **exact**
subscription to ``T``. Prefix and wildcard subscriptions (a dashboard that
watches ``chat.``, ``broker tail``) are observers, not members, and are never
counted: a room's members are the sessions that subscribed to the room.
Sessions are counted, not subscriptions: a session subscribing twice counts
once. A token session (role ``user``) is listed by its user id (authid) with
the number of its sessions; every other session (anonymous, backend, ...) is
only counted.

:class:`PresenceBook` is fed crossbar's subscription meta events by the router
and reports each *join* (a session's first exact subscription to a topic) and
*leave* (its last one ending, or the session leaving) as a :class:`Change`.
:class:`Entry` is one node's presence on one topic; a cluster's answer is the
:func:`union` of every live node's entry (:mod:`broker.engines.redis_presence`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol

from broker.core.grants import Grant
from broker.core.tokens import USER_ROLE

#: The procedure every role may be granted to call (it checks the ``presence`` grant itself).
PRESENCE_PROCEDURE: Final = "broker.presence"
#: Join and leave events of topic ``T`` are published on ``broker.presence.T``; subscribing to
#: them takes a ``presence`` grant on ``T`` (with the same match policy).
EVENTS_PREFIX: Final = "broker.presence."
#: Seconds a node's presence outlives its last heartbeat in the shared engine.
DEFAULT_NODE_TTL: Final = 15
#: How many heartbeats fit in one ``node_ttl``: a node refreshes its entries every ``node_ttl / 3`` s.
BEATS_PER_TTL: Final = 3

Kind = Literal["join", "leave"]


@dataclass(frozen=True)
class PresenceSettings:
    """Which topics have presence (``extra.presence``), and how long a dead node's entries last."""

    topics: tuple[Grant, ...] = ()
    node_ttl: int = DEFAULT_NODE_TTL

    def enabled(self, topic: str) -> bool:
        """Whether ``topic`` (an exact URI) has presence."""
        return any(grant.covers(topic, "exact") for grant in self.topics)

    @property
    def heartbeat(self) -> float:
        """Seconds between two refreshes of this node's entries in the shared engine."""
        return self.node_ttl / BEATS_PER_TTL


def events_topic(topic: str) -> str:
    """The topic ``topic``'s joins and leaves are published on."""
    return EVENTS_PREFIX + topic


def watched_topic(uri: str) -> str | None:
    """The topic (or pattern) whose joins and leaves ``uri`` carries, or None if it is no events topic."""
    return uri[len(EVENTS_PREFIX) :] if uri.startswith(EVENTS_PREFIX) else None


@dataclass(frozen=True)
class Entry:
    """Presence on one topic: sessions without a user id, and each user id's sessions."""

    anonymous: int = 0
    users: Mapping[str, int] = field(default_factory=dict)

    @property
    def count(self) -> int:
        """Sessions on the topic."""
        return self.anonymous + sum(self.users.values())

    def to_wire(self) -> dict[str, Any]:
        """The JSON object a node stores for the others."""
        return {"a": self.anonymous, "u": dict(self.users)}

    @classmethod
    def from_wire(cls, raw: object) -> Entry:
        """An entry another node stored (anything malformed counts as nobody)."""
        if not isinstance(raw, Mapping):
            return cls()
        anonymous, users = raw.get("a", 0), raw.get("u", {})
        if not isinstance(anonymous, int) or not isinstance(users, Mapping):
            return cls()
        return cls(max(0, anonymous), {str(u): n for u, n in users.items() if isinstance(n, int) and n > 0})


def union(entries: Iterable[Entry]) -> Entry:
    """The presence of several nodes as one: counts add up, a user's sessions too."""
    anonymous, users = 0, dict[str, int]()
    for entry in entries:
        anonymous += entry.anonymous
        for user, sessions in entry.users.items():
            users[user] = users.get(user, 0) + sessions
    return Entry(anonymous, users)


def answer(topic: str, entry: Entry) -> dict[str, Any]:
    """``broker.presence``'s answer: ``count`` sessions, ``users`` by id (sorted), ``anonymous``."""
    return {
        "topic": topic,
        "count": entry.count,
        "users": [{"id": user, "sessions": entry.users[user]} for user in sorted(entry.users)],
        "anonymous": entry.anonymous,
    }


@dataclass(frozen=True)
class Change:
    """A session joined or left ``topic``; ``user`` is its user id (None: not a token session)."""

    topic: str
    kind: Kind
    user: str | None

    def event(self, node_id: str) -> dict[str, Any]:
        """The keyword arguments of the event on :func:`events_topic`."""
        return {"topic": self.topic, "presence": self.kind, "user": self.user, "node": node_id}


class PresenceBook:
    """One node's sessions on each topic, kept from crossbar's session and subscription meta events.

    Crossbar publishes ``on_create`` (a subscription's URI and match) before the
    first ``on_subscribe`` to it, and a session's ``on_join`` before any of its
    subscriptions; it may publish a leaving session's ``on_unsubscribe`` after its
    ``on_leave``, which then changes nothing.
    """

    def __init__(self) -> None:
        self._users: dict[int, str | None] = {}
        self._topic_of: dict[int, str] = {}  # exact subscriptions only
        self._on: dict[int, dict[str, set[int]]] = {}  # session -> topic -> its subscription ids
        self._members: dict[str, set[int]] = {}

    def joined(self, session: int, authid: str | None, role: str) -> None:
        """Session ``session`` joined; ``authid`` is listed only for role ``user``."""
        self._users[session] = authid if role == USER_ROLE and authid else None

    def created(self, subscription: int, uri: str, match: str) -> None:
        """Subscription ``subscription`` to ``(uri, match)`` was created (only exact ones count)."""
        if match == "exact":
            self._topic_of[subscription] = uri

    def deleted(self, subscription: int) -> None:
        """Subscription ``subscription`` has no subscriber left."""
        self._topic_of.pop(subscription, None)

    def subscribed(self, session: int, subscription: int) -> list[Change]:
        """``session`` subscribed to ``subscription``: a join if it is its first on that topic."""
        topic = self._topic_of.get(subscription)
        if topic is None or session not in self._users:
            return []
        mine = self._on.setdefault(session, {}).setdefault(topic, set())
        first = not mine
        mine.add(subscription)
        if not first:
            return []
        self._members.setdefault(topic, set()).add(session)
        return [Change(topic, "join", self._users[session])]

    def unsubscribed(self, session: int, subscription: int) -> list[Change]:
        """``session`` unsubscribed from ``subscription``: a leave if it was its last on that topic."""
        topic = self._topic_of.get(subscription)
        mine = self._on.get(session, {}).get(topic or "")
        if topic is None or not mine or subscription not in mine:
            return []
        mine.discard(subscription)
        return [] if mine else self._leave(session, topic)

    def left(self, session: int) -> list[Change]:
        """``session`` left: a leave for every topic it was on."""
        changes = [
            change for topic in sorted(self._on.get(session, {})) for change in self._leave(session, topic)
        ]
        self._on.pop(session, None)
        self._users.pop(session, None)
        return changes

    def _leave(self, session: int, topic: str) -> list[Change]:
        self._on.get(session, {}).pop(topic, None)
        members = self._members.get(topic, set())
        members.discard(session)
        if not members:
            self._members.pop(topic, None)
        return [Change(topic, "leave", self._users.get(session))]

    def entry(self, topic: str) -> Entry:
        """This node's presence on ``topic``."""
        anonymous, users = 0, dict[str, int]()
        for session in self._members.get(topic, ()):
            user = self._users.get(session)
            if user is None:
                anonymous += 1
            else:
                users[user] = users.get(user, 0) + 1
        return Entry(anonymous, users)

    def topics(self) -> list[str]:
        """The topics with at least one session on them here."""
        return sorted(self._members)


class PresenceShare(Protocol):
    """Where a node's presence meets the other nodes' (memory: nowhere; Redis: a shared hash)."""

    def changed(self, topics: Sequence[str]) -> None:
        """This node's entries on ``topics`` changed: pass them on (soon, in the background)."""
        ...

    async def others(self, topic: str) -> list[Entry]:
        """The other live nodes' entries on ``topic``."""
        ...

    def close(self) -> None:
        """Stop sharing (this node's entries expire from the shared engine on their own)."""
        ...


class SingleNode:
    """The :class:`PresenceShare` of a node that shares nothing: there are no other nodes."""

    def changed(self, topics: Sequence[str]) -> None:
        """Nothing to pass on."""

    async def others(self, topic: str) -> list[Entry]:
        """No other node."""
        return []

    def close(self) -> None:
        """Nothing to stop."""
