"""``extra.presence``: which topics have presence, validated into :class:`PresenceSettings`.

Why a module of its own: :mod:`broker.config.settings` reads every other
section and is near its size bound; presence is one small section with its
own rules (no reserved topics, a bounded ``node_ttl``). Every error is a
:class:`ConfigError` naming the JSON path.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, cast

from broker.core.grants import Grant, may_touch_reserved
from broker.core.presence import DEFAULT_NODE_TTL, PresenceSettings
from broker.core.uris import MATCH_POLICIES, Match, check_uri
from broker.errors import ConfigError, InvalidUri

_KEYS: Final = frozenset({"topics", "node_ttl"})
_TOPIC_KEYS: Final = frozenset({"uri", "match"})
#: ``node_ttl`` bounds (s): a dead node's entries last at most this long on the other nodes.
NODE_TTL_RANGE: Final = (3, 300)


def _unknown(raw: Mapping[str, object], allowed: frozenset[str], path: str) -> None:
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ConfigError(
            f"{path}.{unknown[0]}",
            f"unknown key {unknown[0]!r} (expected one of: {', '.join(sorted(allowed))})",
        )


def _topic(raw: object, path: str) -> Grant:
    if not isinstance(raw, Mapping):
        raise ConfigError(
            path, f"a presence topic must be an object {{uri, match}}, not {type(raw).__name__}"
        )
    _unknown(raw, _TOPIC_KEYS, path)
    match = raw.get("match", "exact")
    if match not in MATCH_POLICIES:
        raise ConfigError(f"{path}.match", f"must be one of {', '.join(MATCH_POLICIES)}, not {match!r}")
    if "uri" not in raw:
        raise ConfigError(f"{path}.uri", "missing (the topic or pattern that has presence)")
    uri = raw["uri"]
    if not (match == "prefix" and uri == ""):
        try:
            check_uri(uri, match, what="presence topic")
        except InvalidUri as exc:
            raise ConfigError(f"{path}.uri", str(exc)) from None
    if may_touch_reserved(uri, cast(Match, match)):
        raise ConfigError(
            f"{path}.uri",
            f"{uri!r} ({match}) reaches into wamp./broker.: only application topics have presence",
        )
    return Grant(uri=uri, match=cast(Match, match), actions=frozenset({"presence"}))


def parse_presence(raw: object, path: str) -> PresenceSettings:
    """``extra.presence`` (``{"topics": [{uri, match}], "node_ttl": seconds}``) at ``path``."""
    if not isinstance(raw, Mapping):
        raise ConfigError(path, f"must be an object {{topics, node_ttl}}, not {type(raw).__name__}")
    _unknown(raw, _KEYS, path)
    topics = raw.get("topics", [])
    if not isinstance(topics, list):
        raise ConfigError(f"{path}.topics", "must be a list of {uri, match} patterns")
    node_ttl = raw.get("node_ttl", DEFAULT_NODE_TTL)
    low, high = NODE_TTL_RANGE
    if isinstance(node_ttl, bool) or not isinstance(node_ttl, int) or not low <= node_ttl <= high:
        raise ConfigError(f"{path}.node_ttl", f"must be an integer from {low} to {high}, not {node_ttl!r}")
    return PresenceSettings(
        topics=tuple(_topic(topic, f"{path}.topics[{i}]") for i, topic in enumerate(topics)),
        node_ttl=node_ttl,
    )
