"""The whole role matrix against a real node: every role x topic x action.

Broker's own clients publish with acknowledgement, so a refused publish is an
ERROR the publisher sees, never a silent drop.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from broker.core.tokens import mint
from tests.node import TOKEN_SECRET
from tests.rawwamp import CALL, ERROR, PUBLISHED, RESULT, SUBSCRIBED, WELCOME, RawWamp

pytestmark = pytest.mark.node

ROLES = ("anonymous", "backend", "operator")
REGISTER = 64

#: topic -> roles that may (publish, subscribe) there.
TOPICS = {
    "public.news": ({"backend"}, {"anonymous", "backend"}),
    "orders.created": ({"backend"}, {"backend"}),
    "user.42.inbox": ({"backend"}, {"backend"}),
    "broker.internal": (set(), set()),
    "wamp.session.on_join": (set(), {"operator"}),
}

#: procedure -> roles that may call it.
PROCEDURES = {
    "wamp.session.count": {"operator"},
    "wamp.session.list": {"operator"},
    "wamp.subscription.list": {"operator"},
    "wamp.session.kill": set(),  # a wamp.session. prefix grant would allow this; Broker grants by name
    "wamp.session.kill_by_authid": set(),
    "wamp.registration.list": set(),
    "broker.authorize": set(),
}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("topic", list(TOPICS))
def test_publish(connect: Callable[..., RawWamp], role: str, topic: str) -> None:
    client = connect(role)
    reply = client.publish(topic, [1])
    assert reply is not None
    if role in TOPICS[topic][0]:
        assert reply[0] == PUBLISHED
    elif topic.startswith("wamp."):
        # the router itself refuses client publications in its reserved namespace
        assert reply[:5] == [ERROR, 16, 1, {}, "wamp.error.invalid_uri"]
    else:
        assert reply[:5] == [ERROR, 16, 1, {}, "wamp.error.not_authorized"]
    assert client.call("wamp.session.count")[0] in (RESULT, ERROR)  # the session is still alive


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("topic", list(TOPICS))
def test_subscribe(connect: Callable[..., RawWamp], role: str, topic: str) -> None:
    client = connect(role)
    reply = client.subscribe(topic)
    if role in TOPICS[topic][1]:
        assert reply[0] == SUBSCRIBED
    else:
        assert reply[:5] == [ERROR, 32, 1, {}, "wamp.error.not_authorized"]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("procedure", list(PROCEDURES))
def test_call(connect: Callable[..., RawWamp], role: str, procedure: str) -> None:
    client = connect(role)
    reply = client.call(procedure, [0] if procedure.endswith("kill_by_authid") else [])
    if role in PROCEDURES[procedure]:
        assert reply[0] == RESULT
    else:
        assert reply[0] == ERROR
        assert reply[4] == "wamp.error.not_authorized"


@pytest.mark.parametrize(
    ("role", "pattern", "match", "allowed"),
    [
        ("anonymous", "public.", "prefix", True),
        ("anonymous", "public..price", "wildcard", True),
        ("anonymous", "pub", "prefix", False),  # would also deliver pubsub.*
        ("anonymous", ".news", "wildcard", False),
        ("backend", "orders.", "prefix", True),
        ("backend", "", "prefix", False),  # would deliver wamp.* meta events
        ("backend", ".on_join", "wildcard", False),
        ("operator", "wamp.session.", "prefix", False),
    ],
)
def test_pattern_subscriptions(
    connect: Callable[..., RawWamp], role: str, pattern: str, match: str, allowed: bool
) -> None:
    reply = connect(role).subscribe(pattern, match)
    if allowed:
        assert reply[0] == SUBSCRIBED
    else:
        assert reply[:5] == [ERROR, 32, 1, {}, "wamp.error.not_authorized"]


def test_grant_never_leaks_between_sessions(connect: Callable[..., RawWamp]) -> None:
    """A backend's grant is not cached onto anonymous sessions (authorizer cache is per role)."""
    topic = f"orders.{uuid.uuid4().hex[:8]}"
    assert connect("backend").subscribe(topic)[0] == SUBSCRIBED
    assert connect("anonymous").subscribe(topic)[:5] == [ERROR, 32, 1, {}, "wamp.error.not_authorized"]


def test_wrong_backend_secret_is_refused(connect: Callable[..., RawWamp]) -> None:
    client = connect("none")
    reply = client.hello(authid="backend", secret="wrong")
    assert reply[0] == 3  # ABORT
    assert reply[2] == "wamp.error.not_authorized"


def connect_as(connect: Callable[..., RawWamp], role: str) -> RawWamp:
    """A joined session of ``role``; ``user`` signs in with a token for user 42."""
    if role != "user":
        return connect(role)
    client = connect("none")
    token = mint(TOKEN_SECRET, "42", [{"uri": "user.42.", "match": "prefix"}])
    assert client.hello(ticket=token)[0] == WELCOME
    return client


#: Reserved registrations: taken by Broker or crossbar, free, and patterns that could take one.
RESERVED_REGISTRATIONS = [
    ("broker.reload", "exact"),
    ("broker.recover", "exact"),
    ("broker.nonexistent", "exact"),
    ("wamp.session.count", "exact"),
    ("wamp.nonexistent", "exact"),
    ("broker.", "prefix"),
    ("", "prefix"),
    (".reload", "wildcard"),
]


@pytest.mark.parametrize("role", [*ROLES, "user"])
@pytest.mark.parametrize(("procedure", "match"), RESERVED_REGISTRATIONS)
def test_reserved_registration_is_refused_alike_whatever_exists(
    connect: Callable[..., RawWamp], role: str, procedure: str, match: str
) -> None:
    """One answer for the reserved namespaces, so REGISTER cannot map which procedures exist
    (crossbar: ``procedure_already_exists`` for broker.reload, ``invalid_uri`` for wamp.*)."""
    client = connect_as(connect, role)
    client.send([REGISTER, 7, {} if match == "exact" else {"match": match}, procedure])
    assert client.recv() == [
        ERROR,
        REGISTER,
        7,
        {},
        "wamp.error.not_authorized",
        [
            f"role {role!r} may not register {procedure!r} ({match}): the wamp. and broker. "
            "namespaces are reserved for the node"
        ],
    ]
    assert client.call("wamp.session.count")[0] in (RESULT, ERROR)  # the session goes on


@pytest.mark.parametrize("role", ["anonymous", "backend", "user"])
def test_reserved_call_is_refused_alike_whatever_exists(connect: Callable[..., RawWamp], role: str) -> None:
    """Crossbar authorizes a CALL before it looks the procedure up: an existing procedure the
    role may not call and a missing one get the same answer, but for the URI it names."""
    client = connect_as(connect, role)
    answers = [client.call(procedure) for procedure in ("broker.reload", "broker.nonexistent")]
    assert [answer[:5] for answer in answers] == [
        [ERROR, CALL, 1, {}, "wamp.error.not_authorized"],
        [ERROR, CALL, 2, {}, "wamp.error.not_authorized"],
    ]
    reload, missing = answers[0][5][0], answers[1][5][0]
    assert reload.replace("broker.reload", "X") == missing.replace("broker.nonexistent", "X")
