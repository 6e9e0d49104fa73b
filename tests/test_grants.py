"""Grant decisions: a request is allowed only if every URI it can touch is granted."""

import pytest

from broker.grants import Grant, Grants, may_touch_reserved, reserved_registration

GRANTS = Grants(
    {
        "anonymous": (Grant("public.", "prefix", frozenset({"subscribe"})),),
        "backend": (Grant("", "prefix", frozenset({"publish", "subscribe"})),),
        "operator": (
            Grant("wamp.session.list", "exact", frozenset({"call"})),
            Grant("wamp.session.on_join", "exact", frozenset({"subscribe"})),
        ),
        "board": (
            Grant("board..status", "wildcard", frozenset({"subscribe"})),
            Grant("news.today", "exact", frozenset({"subscribe"})),
        ),
    }
)


@pytest.mark.parametrize(
    ("role", "action", "uri", "match", "allowed"),
    [
        # anonymous: subscribe under public. only
        ("anonymous", "subscribe", "public.demo", "exact", True),
        ("anonymous", "subscribe", "public.", "prefix", True),
        ("anonymous", "subscribe", "public.a.", "prefix", True),
        ("anonymous", "subscribe", "public..x", "wildcard", True),
        ("anonymous", "subscribe", "pub", "prefix", False),  # would deliver pubsub.*
        ("anonymous", "subscribe", "public", "exact", False),
        ("anonymous", "subscribe", ".x", "wildcard", False),
        ("anonymous", "subscribe", "secret.x", "exact", False),
        ("anonymous", "publish", "public.demo", "exact", False),
        ("anonymous", "call", "wamp.session.list", "exact", False),
        # backend: everything outside the reserved namespaces
        ("backend", "publish", "orders.1", "exact", True),
        ("backend", "subscribe", "orders.", "prefix", True),
        ("backend", "subscribe", "orders..created", "wildcard", True),
        ("backend", "subscribe", "", "prefix", False),  # includes wamp.* meta events
        ("backend", "subscribe", "wa", "prefix", False),
        ("backend", "subscribe", ".on_join", "wildcard", False),
        ("backend", "subscribe", "wamp.session.on_join", "exact", False),
        ("backend", "publish", "broker.authorize", "exact", False),
        ("backend", "call", "wamp.session.list", "exact", False),
        ("backend", "register", "orders.get", "exact", False),
        # operator: named meta procedures only
        ("operator", "call", "wamp.session.list", "exact", True),
        ("operator", "call", "wamp.session.kill", "exact", False),
        ("operator", "subscribe", "wamp.session.on_join", "exact", True),
        ("operator", "subscribe", "wamp.session.", "prefix", False),
        ("operator", "publish", "public.demo", "exact", False),
        # wildcard and exact grants
        ("board", "subscribe", "board.7.status", "exact", True),
        ("board", "subscribe", "board..status", "wildcard", True),
        ("board", "subscribe", "board.7.status", "wildcard", True),
        ("board", "subscribe", "board.", "prefix", False),
        ("board", "subscribe", "board...", "wildcard", False),
        ("board", "subscribe", "news.today", "exact", True),
        ("board", "subscribe", "news.today", "prefix", False),  # would deliver news.todayx
        # unknown role or action
        ("nobody", "subscribe", "public.demo", "exact", False),
        ("anonymous", "delete", "public.demo", "exact", False),
    ],
)
def test_role_matrix(role: str, action: str, uri: str, match: str, allowed: bool) -> None:
    assert GRANTS.allows(role, action, uri, match) is allowed  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("uri", "match", "reserved"),
    [
        ("wamp.x", "exact", True),
        ("wampx", "exact", False),
        ("", "prefix", True),
        ("w", "prefix", True),
        ("wamp.s", "prefix", True),
        ("orders.", "prefix", False),
        (".x", "wildcard", True),
        ("broker..x", "wildcard", True),
        ("orders..x", "wildcard", False),
    ],
)
def test_may_touch_reserved(uri: str, match: str, reserved: bool) -> None:
    assert may_touch_reserved(uri, match) is reserved  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("role", "uri", "match", "refused"),
    [
        ("backend", "broker.reload", "exact", True),
        ("backend", "broker.nonexistent", "exact", True),
        ("anonymous", "wamp.session.count", "exact", True),
        ("user", "bro", "prefix", True),  # would take broker.* calls nobody else answers
        ("backend", ".reload", "wildcard", True),
        ("backend", "orders.get", "exact", False),  # for the grant table to decide
        ("backend", "orders.", "prefix", False),
        ("broker", "broker.reload", "exact", False),  # Broker's own component
        ("trusted", "wamp.session.count", "exact", False),  # crossbar's service session
        (None, "broker.x", "exact", True),
    ],
)
def test_reserved_registration(role: str | None, uri: str, match: str, refused: bool) -> None:
    refusal = reserved_registration(role, uri, match)  # type: ignore[arg-type]
    if not refused:
        assert refusal is None
        return
    assert refusal is not None
    assert refusal.wamp_uri == "wamp.error.not_authorized"
    assert str(refusal) == (
        f"role {role!r} may not register {uri!r} ({match}): the wamp. and broker. namespaces "
        "are reserved for the node"
    )
