"""Broker's own settings, validated once into frozen dataclasses.

They live in the node config, as the ``extra`` of Broker's router component,
so operators edit one file. Every error is a :class:`ConfigError` that names
the JSON path of the offending value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, cast

from broker.errors import ConfigError, InvalidUri
from broker.grants import ACTIONS, Action, Grant, Grants
from broker.uris import MATCH_POLICIES, Match, check_uri

#: Where Broker's component sits in ``.crossbar/config.json``.
COMPONENT_CLASS: Final = "broker.router.component.BrokerComponent"

_GRANT_KEYS: Final = frozenset({"uri", "match", "allow"})
_SETTINGS_KEYS: Final = frozenset({"grants", "hello_timeout"})


@dataclass(frozen=True)
class BrokerSettings:
    """Everything Broker's router component is configured with."""

    grants: Grants
    #: Seconds a connected WAMP transport may take to send HELLO.
    hello_timeout: float = 10.0


def _unknown_keys(value: Mapping[str, Any], allowed: frozenset[str], path: str) -> None:
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise ConfigError(
            f"{path}.{unknown[0]}",
            f"unknown key {unknown[0]!r} (expected one of: {', '.join(sorted(allowed))})",
        )


def _parse_grant(raw: object, path: str) -> Grant:
    if not isinstance(raw, Mapping):
        raise ConfigError(path, f"a grant must be an object, not {type(raw).__name__}")
    _unknown_keys(raw, _GRANT_KEYS, path)
    match = raw.get("match", "exact")
    if match not in MATCH_POLICIES:
        raise ConfigError(f"{path}.match", f"must be one of {', '.join(MATCH_POLICIES)}, not {match!r}")
    if "uri" not in raw:
        raise ConfigError(f"{path}.uri", "missing (the URI or pattern this grant covers)")
    uri = raw["uri"]
    if not (match == "prefix" and uri == ""):
        try:
            check_uri(uri, match, what="grant URI")
        except InvalidUri as exc:
            raise ConfigError(f"{path}.uri", str(exc)) from None
    allow = raw.get("allow")
    if not isinstance(allow, list) or not allow:
        raise ConfigError(f"{path}.allow", f"must be a non-empty list of actions ({', '.join(ACTIONS)})")
    for i, action in enumerate(allow):
        if action not in ACTIONS:
            raise ConfigError(
                f"{path}.allow[{i}]", f"unknown action {action!r} (expected one of: {', '.join(ACTIONS)})"
            )
    return Grant(uri=uri, match=cast(Match, match), actions=frozenset(cast(list[Action], allow)))


def parse_settings(raw: object, path: str = "$") -> BrokerSettings:
    """Validate ``raw`` (the component's ``extra``) into :class:`BrokerSettings`."""
    if not isinstance(raw, Mapping):
        raise ConfigError(path, f"Broker settings must be an object, not {type(raw).__name__}")
    _unknown_keys(raw, _SETTINGS_KEYS, path)
    raw_grants = raw.get("grants", {})
    if not isinstance(raw_grants, Mapping):
        raise ConfigError(f"{path}.grants", "must be an object mapping role names to lists of grants")
    roles: dict[str, tuple[Grant, ...]] = {}
    for role, grants in raw_grants.items():
        if not isinstance(grants, list):
            raise ConfigError(f"{path}.grants.{role}", "must be a list of grants")
        roles[role] = tuple(_parse_grant(g, f"{path}.grants.{role}[{i}]") for i, g in enumerate(grants))
    hello_timeout = raw.get("hello_timeout", 10)
    if (
        isinstance(hello_timeout, bool)
        or not isinstance(hello_timeout, int | float)
        or not 0 < hello_timeout <= 300
    ):
        raise ConfigError(
            f"{path}.hello_timeout", f"must be a number of seconds in (0, 300], not {hello_timeout!r}"
        )
    return BrokerSettings(grants=Grants(roles), hello_timeout=float(hello_timeout))


def find_component(config: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]]:
    """Locate Broker's component in a node config: ``(json_path, component)``."""
    for w, worker in enumerate(config.get("workers", [])):
        for c, component in enumerate(worker.get("components", []) if isinstance(worker, Mapping) else []):
            if isinstance(component, Mapping) and component.get("classname") == COMPONENT_CLASS:
                return f"$.workers[{w}].components[{c}]", component
    raise ConfigError("$.workers", f"no router component with classname {COMPONENT_CLASS!r}")
