"""Who may do what: role grants as data, and the one function that decides.

A grant names a URI pattern (``exact``, ``prefix`` or ``wildcard``) and the
actions it allows. A request is allowed only if *every* URI it can touch is
inside one grant: subscribing to the prefix ``pub`` is not covered by a grant
on ``public.``, because it would also deliver ``pubsub.secret``. Namespaces
reserved for the router and Broker (``wamp.``, ``broker.``) are reachable only
through grants that name them, so a broad ``""`` prefix grant never leaks
meta events or Broker's own procedures. Which grants may name them at all is
:func:`reserved_grant`, applied wherever a grant table is read (the config
parser at start, reload and ``broker check``; ``broker config grant``). No
Twisted, no Autobahn: crossbar's dynamic authorizer
(:mod:`broker.router.component`) is a thin adapter over this.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final, Literal

from broker.core.uris import RESERVED_PREFIXES, Match, is_reserved, topic_matches
from broker.errors import NotAuthorized

Action = Literal["publish", "subscribe", "call", "register", "presence"]

#: ``presence`` is Broker's own: who is on a topic (``broker.presence``) and its join/leave
#: events (:mod:`broker.core.presence`); crossbar never asks the authorizer for it.
ACTIONS: Final[tuple[Action, ...]] = ("publish", "subscribe", "call", "register", "presence")

_RESERVED_NAMES: Final[frozenset[str]] = frozenset(p.rstrip(".") for p in RESERVED_PREFIXES)

#: The roles that register procedures in the reserved namespaces: Broker's own
#: component (``broker.*``) and crossbar's service session (``wamp.*``).
NODE_ROLES: Final[frozenset[str]] = frozenset({"broker", "trusted"})

#: The procedures Broker registers for every client (history recovery, presence): any role may
#: be granted to call them (``broker.presence`` checks a ``presence`` grant on the topic too).
CLIENT_PROCEDURES: Final[frozenset[str]] = frozenset({"broker.recover", "broker.presence"})

#: The one configured role that may be granted other reserved URIs (the router's meta
#: API, ``broker.reload``), each by its exact name. It authenticates with a secret.
OPERATOR_ROLE: Final = "operator"


def _fixed_prefix(uri: str, match: Match) -> str:
    """The literal text every URI matched by ``(uri, match)`` starts with."""
    if match != "wildcard":
        return uri
    parts = uri.split(".")
    if "" not in parts:
        return uri
    return "".join(part + "." for part in parts[: parts.index("")])


def _is_exact(uri: str, match: Match) -> bool:
    return match == "exact" or (match == "wildcard" and "" not in uri.split("."))


def names_reserved(uri: str, match: Match) -> bool:
    """Whether the grant pattern ``(uri, match)`` names a reserved namespace
    (``wamp.session.``, ``broker.x``, the ``wamp`` prefix), as opposed to merely
    covering it (the ``""`` or ``w`` prefix, which reach no reserved URI in
    :meth:`Grants.allows`). The exact topic ``wamp`` is outside ``wamp.``."""
    return is_reserved(uri) or (not _is_exact(uri, match) and uri in _RESERVED_NAMES)


def may_touch_reserved(uri: str, match: Match) -> bool:
    """Whether ``(uri, match)`` can match any URI in a reserved namespace."""
    if _is_exact(uri, match):
        return is_reserved(uri)
    if match == "prefix":
        return any(r.startswith(uri) or uri.startswith(r) for r in RESERVED_PREFIXES)
    parts = uri.split(".")
    return parts[0] in _RESERVED_NAMES or parts[0] == ""


@dataclass(frozen=True)
class Grant:
    """Allows ``actions`` on every URI matched by ``(uri, match)``."""

    uri: str
    match: Match
    actions: frozenset[Action]

    def covers(self, uri: str, match: Match) -> bool:
        """Whether every URI matched by ``(uri, match)`` is matched by this grant."""
        if self.match == "exact":
            return _is_exact(uri, match) and uri == self.uri
        if self.match == "prefix":
            return _fixed_prefix(uri, match).startswith(self.uri)
        # wildcard grant
        if _is_exact(uri, match):
            return topic_matches(uri, self.uri, "wildcard")
        if match == "prefix":
            return False
        mine, theirs = self.uri.split("."), uri.split(".")
        return len(mine) == len(theirs) and all(m == "" or m == t for m, t in zip(mine, theirs, strict=True))


@dataclass(frozen=True)
class Grants:
    """The grant table of every role, decided by :meth:`allows`."""

    roles: Mapping[str, tuple[Grant, ...]]

    def allows(self, role: str, action: Action, uri: str, match: Match = "exact") -> bool:
        """Whether ``role`` may perform ``action`` on ``(uri, match)``.

        Unknown roles and unknown actions are denied.
        """
        reserved = may_touch_reserved(uri, match)
        return any(
            action in grant.actions and grant.covers(uri, match) and (not reserved or is_reserved(grant.uri))
            for grant in self.roles.get(role, ())
        )

    def role_names(self) -> Iterable[str]:
        """The roles that have a grant table."""
        return self.roles.keys()


def reserved_registration(role: str | None, uri: str, match: Match = "exact") -> NotAuthorized | None:
    """The refusal of a registration ``(uri, match)`` by ``role`` that could take a name in
    ``wamp.``/``broker.``, or ``None`` if it does not (or ``role`` is the node's own).

    The answer depends on the request only, never on which procedures exist: a
    ``procedure_already_exists`` for ``broker.reload`` next to ``not_authorized``
    for ``broker.nonexistent`` would tell any client which reserved names are taken.
    """
    if role in NODE_ROLES or not may_touch_reserved(uri, match):
        return None
    return NotAuthorized(
        f"role {role!r} may not register {uri!r} ({match}): the wamp. and broker. namespaces "
        "are reserved for the node"
    )


def reserved_grant(role: str, uri: str, match: Match, actions: Iterable[str]) -> str | None:
    """Why a configured grant of ``actions`` on ``(uri, match)`` to ``role`` is refused
    because it reaches into ``wamp.``/``broker.``, or ``None`` if it is fine.

    A pattern that only *covers* the reserved namespaces (the ``""`` prefix) grants
    nothing there (:meth:`Grants.allows`), so it is fine. A grant that *names* them
    must, unless ``role`` is the node's own:

    - name one exact URI: a ``wamp.session.`` prefix would hand out every meta
      event and procedure, including those added by a later crossbar;
    - allow only ``call`` and ``subscribe``: the node alone registers and
      publishes there;
    - be a call of a :data:`CLIENT_PROCEDURES` procedure (``broker.recover``),
      or be granted to :data:`OPERATOR_ROLE`: meta events carry every session's
      authid and peer address, so no anonymous, token or backend role gets them.
    """
    if role in NODE_ROLES or not names_reserved(uri, match):
        return None
    where = "the wamp. and broker. namespaces are reserved for the node"
    if not _is_exact(uri, match):
        return f"a {match} grant on {uri!r} would cover every name under it: {where}; grant exact URIs"
    wanted = set(actions)
    forbidden = sorted(wanted & {"publish", "register", "presence"})
    if forbidden:
        return f"{forbidden[0]} on {uri!r} is not grantable: {where}"
    if uri in CLIENT_PROCEDURES and wanted <= {"call"}:
        return None
    if role == OPERATOR_ROLE:
        return None
    return (
        f"role {role!r} may not be granted {uri!r}: {where} (role {OPERATOR_ROLE!r} may be granted "
        f"exact URIs there; every role may call {', '.join(sorted(CLIENT_PROCEDURES))})"
    )
