"""The common edits of the node config, as pure functions: config in, new config out.

Why: ``broker config`` must change one thing in an operator's file and
nothing else, and every edit must be checkable without a node, a file or a
clock. Each function here takes a parsed node config, returns an edited deep
copy (the input is never changed) and raises :class:`ConfigError` naming the
JSON path it could not edit. No I/O: the command (:mod:`broker.cli.config`)
reads and writes the file, validates the result and stores generated secrets.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from broker.config.envref import env_reference
from broker.config.nodeconfig import child_path
from broker.config.settings import find_component
from broker.core.grants import ACTIONS, reserved_grant
from broker.core.uris import MATCH_POLICIES, Match, check_uri, is_valid_uri
from broker.errors import ConfigError, InvalidUri


@dataclass(frozen=True)
class Edited:
    """An edited config and what the edit means outside the file."""

    config: dict[str, Any]
    #: What changed, one line for the operator.
    summary: str
    #: The ``${VAR}`` a publisher key edit concerns (to generate, or to drop), if any.
    secret_var: str | None = None


def publisher_secret_var(key_id: str) -> str:
    """The variable holding publisher key ``key_id``'s secret (``BROKER_PUBLISHER_CI_SECRET``)."""
    return f"BROKER_PUBLISHER_{re.sub(r'[^A-Z0-9]', '_', key_id.upper())}_SECRET"


def _extra(config: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Broker's settings (the component's ``extra``) in ``config``, created if absent."""
    path, component = find_component(config)
    if not isinstance(component, dict):  # pragma: no cover - json.loads makes dicts
        raise ConfigError(path, "must be an object")
    extra = component.setdefault("extra", {})
    if not isinstance(extra, dict):
        raise ConfigError(f"{path}.extra", f"must be an object, not {type(extra).__name__}")
    return f"{path}.extra", extra


def _member(parent: dict[str, Any], key: str, path: str, kind: type) -> Any:
    """``parent[key]``, created empty if absent, checked to be a ``kind`` (dict or list)."""
    value = parent.setdefault(key, kind())
    if not isinstance(value, kind):
        raise ConfigError(child_path(path, key), f"must be {'an object' if kind is dict else 'a list'}")
    return value


def _check_pattern(uri: str, match: str, path: str) -> None:
    if match not in MATCH_POLICIES:
        raise ConfigError(f"{path}.match", f"must be one of {', '.join(MATCH_POLICIES)}, not {match!r}")
    if match == "prefix" and uri == "":
        return
    try:
        check_uri(uri, match, what="pattern")
    except InvalidUri as exc:
        hint = ""
        if match == "exact" and is_valid_uri(uri, "prefix"):
            hint = f" (for every topic starting with {uri!r}, match prefix: --match prefix)"
        raise ConfigError(f"{path}.uri", f"{exc}{hint}") from None


def _check_reserved(role: str, uri: str, match: str, actions: Iterable[str], path: str) -> None:
    refusal = reserved_grant(role, uri, cast(Match, match), actions)
    if refusal is not None:
        raise ConfigError(path, refusal)


def _ordered_actions(actions: Iterable[str], path: str) -> list[str]:
    wanted = set(actions)
    unknown = sorted(wanted - set(ACTIONS))
    if unknown:
        raise ConfigError(path, f"unknown action {unknown[0]!r} (expected one of: {', '.join(ACTIONS)})")
    if not wanted:
        raise ConfigError(path, "name at least one action")
    return [a for a in ACTIONS if a in wanted]


# -- publisher keys -------------------------------------------------------------


def add_publisher(
    config: Mapping[str, Any],
    key_id: str,
    topics: Sequence[tuple[str, str]],
    rate_limit: tuple[float, int] | None = None,
) -> Edited:
    """Add publisher key ``key_id`` allowed to publish to ``topics`` (``(uri, match)`` pairs).

    Its secret is ``${BROKER_PUBLISHER_<KEY>_SECRET}``; the caller generates the value.
    """
    new = copy.deepcopy(dict(config))
    path, extra = _extra(new)
    publishers = _member(extra, "publishers", path, dict)
    where = child_path(f"{path}.publishers", key_id)
    if key_id in publishers:
        raise ConfigError(where, f"publisher key {key_id!r} exists already (rotate it instead)")
    var = publisher_secret_var(key_id)
    for other, existing in publishers.items():
        secret = existing.get("secret") if isinstance(existing, Mapping) else None
        if secret == f"${{{var}}}":
            raise ConfigError(
                child_path(f"{path}.publishers", other) + ".secret",
                f"publisher key {other!r} uses ${{{var}}} already: choose another key id",
            )
    if not topics:
        raise ConfigError(f"{where}.topics", "name at least one topic pattern")
    for i, (uri, match) in enumerate(topics):
        _check_pattern(uri, match, f"{where}.topics[{i}]")
        _check_reserved(f"publisher key {key_id!r}", uri, match, ["publish"], f"{where}.topics[{i}]")
    entry: dict[str, Any] = {
        "secret": f"${{{var}}}",
        "topics": [{"uri": uri, "match": match} for uri, match in topics],
    }
    if rate_limit is not None:
        per_second, burst = rate_limit
        # 100, not 100.0, in the file when the rate is whole
        rate: float | int = int(per_second) if float(per_second).is_integer() else per_second
        entry["rate_limit"] = {"per_second": rate, "burst": burst}
    publishers[key_id] = entry
    return Edited(new, f"added publisher key {key_id!r} ({where})", var)


def _publisher(config: dict[str, Any], key_id: str) -> tuple[str, dict[str, Any], str]:
    """``(path, publishers, secret_var)`` of an existing publisher key."""
    path, extra = _extra(config)
    publishers = extra.get("publishers")
    where = child_path(f"{path}.publishers", key_id)
    if not isinstance(publishers, dict) or key_id not in publishers:
        raise ConfigError(where, f"no publisher key {key_id!r}")
    entry = publishers[key_id]
    secret = entry.get("secret") if isinstance(entry, Mapping) else None
    var = env_reference(secret)
    if var is None:
        raise ConfigError(f"{where}.secret", "must reference an environment variable, written as ${NAME}")
    return where, publishers, var


def remove_publisher(config: Mapping[str, Any], key_id: str) -> Edited:
    """Remove publisher key ``key_id``; ``secret_var`` names the variable it used."""
    new = copy.deepcopy(dict(config))
    where, publishers, var = _publisher(new, key_id)
    del publishers[key_id]
    return Edited(new, f"removed publisher key {key_id!r} ({where})", var)


def rotate_publisher(config: Mapping[str, Any], key_id: str) -> Edited:
    """Rotating a key changes its secret's value, not the file: the config comes back unchanged."""
    new = copy.deepcopy(dict(config))
    where, _, var = _publisher(new, key_id)
    return Edited(new, f"rotated publisher key {key_id!r} ({where}: ${{{var}}})", var)


# -- role grants -------------------------------------------------------------------


def _grants(config: dict[str, Any], role: str) -> tuple[str, list[Any]]:
    path, extra = _extra(config)
    grants = _member(extra, "grants", path, dict)
    where = child_path(f"{path}.grants", role)
    role_grants = grants.setdefault(role, [])
    if not isinstance(role_grants, list):
        raise ConfigError(where, "must be a list of grants")
    return where, role_grants


def grant(config: Mapping[str, Any], role: str, uri: str, match: str, actions: Iterable[str]) -> Edited:
    """Allow ``actions`` on ``(uri, match)`` for ``role``: merged into a grant on the same
    pattern if there is one, else appended as a new grant.

    A grant into the reserved ``wamp.``/``broker.`` namespaces that
    :func:`broker.core.grants.reserved_grant` refuses is refused here too.
    """
    new = copy.deepcopy(dict(config))
    where, role_grants = _grants(new, role)
    _check_pattern(uri, match, f"{where}[{len(role_grants)}]")
    wanted = _ordered_actions(actions, f"{where}[{len(role_grants)}].allow")
    for i, existing in enumerate(role_grants):
        if (
            isinstance(existing, dict)
            and existing.get("uri") == uri
            and existing.get("match", "exact") == match
            and isinstance(existing.get("allow"), list)
        ):
            merged = _ordered_actions([*existing["allow"], *wanted], f"{where}[{i}].allow")
            _check_reserved(role, uri, match, merged, f"{where}[{i}]")
            if merged == existing["allow"]:
                return Edited(new, f"unchanged: {where}[{i}] already allows {', '.join(wanted)}")
            existing["allow"] = merged
            return Edited(new, f"granted {', '.join(wanted)} on {uri!r} ({match}) to {role} ({where}[{i}])")
    _check_reserved(role, uri, match, wanted, f"{where}[{len(role_grants)}]")
    role_grants.append({"uri": uri, "match": match, "allow": wanted})
    n = len(role_grants) - 1
    return Edited(new, f"granted {', '.join(wanted)} on {uri!r} ({match}) to {role} ({where}[{n}])")


def revoke(
    config: Mapping[str, Any], role: str, uri: str, match: str, actions: Iterable[str] | None = None
) -> Edited:
    """Take ``actions`` (default: all) on exactly ``(uri, match)`` away from ``role``; a grant
    left with no action is removed."""
    new = copy.deepcopy(dict(config))
    where, role_grants = _grants(new, role)
    for i, existing in enumerate(role_grants):
        if (
            isinstance(existing, dict)
            and existing.get("uri") == uri
            and existing.get("match", "exact") == match
        ):
            allow = existing.get("allow")
            allow = allow if isinstance(allow, list) else []
            drop = set(allow) if actions is None else set(_ordered_actions(actions, f"{where}[{i}].allow"))
            kept = [a for a in allow if a not in drop]
            if kept:
                existing["allow"] = kept
            else:
                del role_grants[i]
            return Edited(
                new, f"revoked {', '.join(sorted(drop))} on {uri!r} ({match}) from {role} ({where}[{i}])"
            )
    raise ConfigError(where, f"role {role!r} has no grant on {uri!r} ({match})")


# -- history policies ----------------------------------------------------------------


def _covers(uri: str, match: str, topic: str) -> bool:
    """Whether a policy on ``(uri, match)`` would match the literal ``topic``."""
    if match == "exact":
        return uri == topic
    if match == "prefix":
        return topic.startswith(uri)
    parts, topic_parts = uri.split("."), topic.split(".")
    return len(parts) == len(topic_parts) and all(
        p in ("", t) for p, t in zip(parts, topic_parts, strict=True)
    )


def set_history_policy(
    config: Mapping[str, Any], uri: str, match: str, max_events: int, max_age: int
) -> Edited:
    """Keep ``max_events`` events for ``max_age`` seconds on topics matching ``(uri, match)``.

    A policy on the same pattern is replaced in place. A new one goes before
    the first policy that would otherwise match its topics (the first matching
    policy wins), so ``orders.`` lands before a catch-all ``""`` prefix.
    """
    new = copy.deepcopy(dict(config))
    path, extra = _extra(new)
    history = _member(extra, "history", path, dict)
    policies = _member(history, "policies", f"{path}.history", list)
    where = f"{path}.history.policies"
    _check_pattern(uri, match, f"{where}[{len(policies)}]")
    policy = {"uri": uri, "match": match, "max_events": max_events, "max_age": max_age}
    for i, existing in enumerate(policies):
        if (
            isinstance(existing, dict)
            and existing.get("uri") == uri
            and existing.get("match", "prefix") == match
        ):
            policies[i] = policy
            return Edited(new, f"set history policy {where}[{i}]")
    literal = uri if match != "wildcard" else uri.split("..")[0]
    index = next(
        (
            i
            for i, p in enumerate(policies)
            if isinstance(p, dict) and _covers(str(p.get("uri", "")), str(p.get("match", "prefix")), literal)
        ),
        len(policies),
    )
    policies.insert(index, policy)
    return Edited(new, f"set history policy {where}[{index}]")


def remove_history_policy(config: Mapping[str, Any], uri: str, match: str) -> Edited:
    """Remove the history policy on exactly ``(uri, match)``."""
    new = copy.deepcopy(dict(config))
    path, extra = _extra(new)
    history = extra.get("history")
    policies = history.get("policies") if isinstance(history, dict) else None
    where = f"{path}.history.policies"
    if not isinstance(policies, list):
        policies = []
    for i, existing in enumerate(policies):
        if (
            isinstance(existing, dict)
            and existing.get("uri") == uri
            and existing.get("match", "prefix") == match
        ):
            del policies[i]
            return Edited(new, f"removed history policy {where}[{i}]")
    raise ConfigError(where, f"no history policy on {uri!r} ({match})")
