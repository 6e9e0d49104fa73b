"""Grant decisions: a request is allowed only if every URI it can touch is granted."""

import pytest

from broker.core.grants import Grant, Grants, may_touch_reserved, reserved_grant, reserved_registration

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


RESERVED = "the wamp. and broker. namespaces are reserved for the node"
NOT_YOURS = (
    "(role 'operator' may be granted exact URIs there; every role may call broker.presence, broker.recover)"
)


def covering(match: str, uri: str) -> str:
    return f"a {match} grant on {uri!r} would cover every name under it: {RESERVED}; grant exact URIs"


@pytest.mark.parametrize(
    ("role", "uri", "match", "actions", "refusal"),
    [
        # the shipped config's grants stay valid
        ("anonymous", "broker.recover", "exact", ["call"], None),
        ("user", "broker.recover", "exact", ["call"], None),
        ("backend", "", "prefix", ["publish", "subscribe"], None),  # covers, never reaches (allows)
        ("operator", "wamp.session.list", "exact", ["call"], None),
        ("operator", "wamp.session.on_join", "exact", ["subscribe"], None),
        ("operator", "broker.reload", "exact", ["call"], None),
        (
            "operator",
            "wamp..on_join",
            "wildcard",
            ["subscribe"],
            covering("wildcard", "wamp..on_join"),
        ),
        ("anonymous", "public.", "prefix", ["subscribe"], None),
        ("anonymous", "wam", "prefix", ["subscribe"], None),  # not a namespace: reaches nothing there
        ("anonymous", ".session.on_join", "wildcard", ["subscribe"], None),  # idem (allows)
        ("anonymous", "wamp", "exact", ["subscribe"], None),  # a plain topic, outside wamp.
        # the case and its neighbours
        (
            "anonymous",
            "wamp.session.",
            "prefix",
            ["subscribe"],
            covering("prefix", "wamp.session."),
        ),
        (
            "operator",
            "wamp.",
            "prefix",
            ["call"],
            covering("prefix", "wamp."),
        ),
        (
            "backend",
            "broker",
            "prefix",
            ["call"],
            covering("prefix", "broker"),
        ),
        (
            "anonymous",
            "wamp.session.on_join",
            "exact",
            ["subscribe"],
            (f"role 'anonymous' may not be granted 'wamp.session.on_join': {RESERVED} {NOT_YOURS}"),
        ),
        (
            "user",
            "wamp.session.on_leave",
            "wildcard",
            ["subscribe"],
            (f"role 'user' may not be granted 'wamp.session.on_leave': {RESERVED} {NOT_YOURS}"),
        ),
        (
            "backend",
            "broker.reload",
            "exact",
            ["call"],
            (f"role 'backend' may not be granted 'broker.reload': {RESERVED} {NOT_YOURS}"),
        ),
        (
            "anonymous",
            "broker.recover",
            "exact",
            ["call", "subscribe"],
            (f"role 'anonymous' may not be granted 'broker.recover': {RESERVED} {NOT_YOURS}"),
        ),
        (
            "operator",
            "broker.recover",
            "exact",
            ["register"],
            f"register on 'broker.recover' is not grantable: {RESERVED}",
        ),
        (
            "operator",
            "wamp.session.on_join",
            "exact",
            ["publish", "subscribe"],
            (f"publish on 'wamp.session.on_join' is not grantable: {RESERVED}"),
        ),
        # the node's own roles are not in the grant table's rule
        ("broker", "broker.", "prefix", ["register"], None),
        ("trusted", "wamp.", "prefix", ["register"], None),
    ],
)
def test_reserved_grant(role: str, uri: str, match: str, actions: list[str], refusal: str | None) -> None:
    assert reserved_grant(role, uri, match, actions) == refusal  # type: ignore[arg-type]


def test_a_broad_grant_the_rule_lets_through_reaches_nothing_reserved() -> None:
    """What :func:`reserved_grant` lets through as merely covering the namespaces grants nothing there."""
    grants = Grants(
        {
            "r": (
                Grant("", "prefix", frozenset({"subscribe", "call"})),
                Grant("wam", "prefix", frozenset({"subscribe"})),
                Grant(".session.on_join", "wildcard", frozenset({"subscribe"})),
            )
        }
    )
    for uri in ("wamp.session.on_join", "wamp.session.list", "broker.reload", "broker.recover"):
        for action in ("subscribe", "call"):
            assert not grants.allows("r", action, uri), (action, uri)  # type: ignore[arg-type]
    assert grants.allows("r", "subscribe", "orders.new")
