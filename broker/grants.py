"""Who may do what: role grants as data, and the one function that decides.

A grant names a URI pattern (``exact``, ``prefix`` or ``wildcard``) and the
actions it allows. A request is allowed only if *every* URI it can touch is
inside one grant: subscribing to the prefix ``pub`` is not covered by a grant
on ``public.``, because it would also deliver ``pubsub.secret``. Namespaces
reserved for the router and Broker (``wamp.``, ``broker.``) are reachable only
through grants that name them, so a broad ``""`` prefix grant never leaks
meta events or Broker's own procedures. No Twisted, no Autobahn: crossbar's
dynamic authorizer (:mod:`broker.router.component`) is a thin adapter over this.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final, Literal

from broker.errors import NotAuthorized
from broker.uris import RESERVED_PREFIXES, Match, is_reserved, topic_matches

Action = Literal["publish", "subscribe", "call", "register"]

ACTIONS: Final[tuple[Action, ...]] = ("publish", "subscribe", "call", "register")

_RESERVED_NAMES: Final[frozenset[str]] = frozenset(p.rstrip(".") for p in RESERVED_PREFIXES)

#: The roles that register procedures in the reserved namespaces: Broker's own
#: component (``broker.*``) and crossbar's service session (``wamp.*``).
NODE_ROLES: Final[frozenset[str]] = frozenset({"broker", "trusted"})


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
