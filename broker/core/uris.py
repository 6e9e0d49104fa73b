"""WAMP URI rules, as tables of compiled patterns (no I/O, no Twisted).

Broker uses the WAMP spec's *loose* URI rules, which crossbar applies with
``"uri_check": "loose"``: a URI is dot-separated components, none empty and
none containing whitespace, ``.`` or ``#``. Subscription patterns relax this:
a ``prefix`` pattern may end in an empty component (``user.42.``) and a
``wildcard`` pattern may have empty components anywhere (``orders..created``).
Names starting with ``wamp.`` are reserved for the router (spec §4.5).

``*`` is a legal character in a loose URI, so ``public.*`` is a valid exact
topic, and as a ``prefix`` or ``wildcard`` pattern it would match only topics
with a literal ``*``: a subscription that receives nothing, which is never
what its author meant. Patterns therefore refuse ``*`` (and a lone ``+``
component, MQTT's wildcard) with the hint that WAMP wildcards are empty
components (``public..x``). Exact topics keep ``*``, as the spec allows.
"""

from __future__ import annotations

import re
from typing import Final, Literal, cast

from broker.errors import InvalidUri

Match = Literal["exact", "prefix", "wildcard"]

MATCH_POLICIES: Final[tuple[Match, ...]] = ("exact", "prefix", "wildcard")

_COMPONENT = r"[^\s.#]+"

#: How a URI must look, by the match policy it is used with.
URI_PATTERNS: Final[dict[Match, re.Pattern[str]]] = {
    "exact": re.compile(rf"^(?:{_COMPONENT}\.)*{_COMPONENT}$"),
    "prefix": re.compile(rf"^(?:{_COMPONENT}\.)*(?:{_COMPONENT})?$"),
    "wildcard": re.compile(rf"^(?:(?:{_COMPONENT})?\.)*(?:{_COMPONENT})?$"),
}

#: The wildcard hint every refused pattern carries.
WILDCARD_HINT: Final = "WAMP wildcards are empty components: public..x"


def _glob_problem(uri: str, match: Match) -> str | None:
    """Why a ``prefix``/``wildcard`` pattern uses a wildcard WAMP does not know, or None."""
    components = uri.split(".")
    if "*" not in uri and "+" not in components:
        return None
    used = "'*'" if "*" in uri else "'+'"
    emptied = ".".join("" if c in ("*", "**", "+") else c for c in components)
    suggestion = ""
    if "*" not in emptied and "+" not in emptied.split(".") and URI_PATTERNS[match].match(emptied):
        suggestion = f" (here: {emptied!r})"
    return (
        f"{used} matches only itself; {WILDCARD_HINT}, "
        f"and a prefix pattern ends in a dot: public.{suggestion}"
    )


#: Namespaces no client may publish to or subscribe under unless a grant names them.
RESERVED_PREFIXES: Final[tuple[str, ...]] = ("wamp.", "broker.")


def check_uri(uri: object, match: str = "exact", what: str = "topic") -> str:
    """Return ``uri`` if it is valid for ``match``, else raise :class:`InvalidUri`.

    A ``prefix`` or ``wildcard`` pattern with ``*`` or a lone ``+`` component
    is refused too, with :data:`WILDCARD_HINT` (see the module docstring).

    ``what`` names the URI in the error message ("topic", "procedure", ...).
    """
    if match not in URI_PATTERNS:
        raise InvalidUri(f"invalid match policy {match!r} (expected one of {', '.join(MATCH_POLICIES)})")
    if not isinstance(uri, str):
        raise InvalidUri(f"invalid {what} {uri!r}: a URI must be a string, not {type(uri).__name__}")
    if not URI_PATTERNS[match].match(uri):
        raise InvalidUri(
            f"invalid {what} {uri!r}: URI components must be non-empty and contain no "
            "whitespace, '.' or '#'"
            + ("" if match == "exact" else f" (empty components allowed for {match} patterns)")
        )
    problem = None if match == "exact" else _glob_problem(uri, cast(Match, match))
    if problem is not None:
        raise InvalidUri(f"invalid {what} {uri!r} ({match}): {problem}")
    return uri


def is_valid_uri(uri: object, match: str = "exact") -> bool:
    """Whether ``uri`` is valid for ``match`` (see :func:`check_uri`)."""
    try:
        check_uri(uri, match)
    except InvalidUri:
        return False
    return True


def is_reserved(uri: str) -> bool:
    """Whether ``uri`` lies in a namespace reserved for the router or Broker itself."""
    return uri.startswith(RESERVED_PREFIXES)


def topic_matches(topic: str, pattern: str, match: str) -> bool:
    """Whether the concrete ``topic`` is delivered to a subscription ``(pattern, match)``."""
    if match == "exact":
        return topic == pattern
    if match == "prefix":
        return topic.startswith(pattern)
    if match == "wildcard":
        t, p = topic.split("."), pattern.split(".")
        return len(t) == len(p) and all(pc == "" or pc == tc for pc, tc in zip(p, t, strict=True))
    raise InvalidUri(f"invalid match policy {match!r}")
