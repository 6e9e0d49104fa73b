"""Broker's own settings, validated once into frozen dataclasses.

They live in the node config, as the ``extra`` of Broker's router component,
so operators edit one file. Every error is a :class:`ConfigError` that names
the JSON path of the offending value.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar, cast

from broker.config.envref import env_reference
from broker.config.presence import parse_presence
from broker.core.grants import ACTIONS, Action, Grant, Grants, reserved_grant
from broker.core.presence import PresenceSettings
from broker.core.publishers import HttpPublishSettings, PublisherKey, RateLimit
from broker.core.tokens import ALGORITHMS, DEFAULT_AUDIENCE, DEFAULT_LEEWAY, Algorithm, TokenKey
from broker.core.uris import MATCH_POLICIES, Match, check_uri
from broker.errors import ConfigError, InvalidUri
from broker.history import Retention, check_store_spec
from broker.history.policy import DEFAULT_POLICIES, HistoryPolicy

#: Where Broker's component sits in ``.crossbar/config.json``.
COMPONENT_CLASS: Final = "broker.router.component.BrokerComponent"

_GRANT_KEYS: Final = frozenset({"uri", "match", "allow"})
_SETTINGS_KEYS: Final = frozenset(
    {
        "grants",
        "hello_timeout",
        "publishers",
        "http_publish",
        "history",
        "slow_subscriber",
        "tokens",
        "metrics",
        "presence",
        "fast_path",
    }
)
_TOKENS_KEYS: Final = frozenset({"audience", "keys", "max_ttl", "leeway"})
_PEM_KEY_TYPES: Final = {"RS256": "RSAPublicKey", "EdDSA": "Ed25519PublicKey"}
_HISTORY_KEYS: Final = frozenset({"store", "policies"})
_POLICY_KEYS: Final = frozenset({"uri", "match", "max_events", "max_age"})
_PUBLISHER_KEYS: Final = frozenset({"secret", "topics", "rate_limit"})
_TOPIC_KEYS: Final = frozenset({"uri", "match"})
_RATE_KEYS: Final = frozenset({"per_second", "burst"})
_KEY_ID: Final = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


_HTTP_LIMITS: Final = {
    # key: (minimum, maximum)
    "max_body_bytes": (256, 16 * 1024 * 1024),
    "max_batch": (1, 10_000),
    "timestamp_window": (1, 3600),
    "idempotency_window": (1, 7 * 86400),
    "nonce_capacity": (100, 10_000_000),
    "idempotency_capacity": (100, 10_000_000),
}


@dataclass(frozen=True)
class HistorySettings:
    """Where positions and history live, and how much each topic keeps."""

    store: Mapping[str, Any] = field(default_factory=lambda: {"type": "memory"})
    policies: tuple[HistoryPolicy, ...] = DEFAULT_POLICIES


@dataclass(frozen=True)
class SlowSubscriberSettings:
    """When the router lets go of a peer that does not read what it is sent."""

    #: Bytes that may wait to be sent to one WebSocket peer; more closes it (1008).
    max_buffer_bytes: int = 1024 * 1024


_SLOW_SUBSCRIBER_LIMITS: Final = {"max_buffer_bytes": (64 * 1024, 256 * 1024 * 1024)}


@dataclass(frozen=True)
class MetricsSettings:
    """What ``GET /metrics`` reports (:mod:`broker.router.metrics`)."""

    #: Distinct topic namespaces labelled by name; the rest are counted as ``_other``.
    max_namespaces: int = 100


_METRICS_LIMITS: Final = {"max_namespaces": (1, 10_000)}


@dataclass(frozen=True)
class TokenSettings:
    """How the node verifies per-user tokens (WAMP ticket auth, :mod:`broker.core.tokens`)."""

    keys: tuple[TokenKey, ...]
    audience: str = DEFAULT_AUDIENCE
    #: Longest lifetime (``exp - iat``, seconds) a token may have.
    max_ttl: int = 3600
    #: Seconds of clock skew allowed between the backend that mints and the node: a token is
    #: accepted until ``exp + leeway`` (and from ``iat - leeway``), and a session it signed in
    #: is ended at ``exp + leeway``.
    leeway: int = DEFAULT_LEEWAY


@dataclass(frozen=True)
class BrokerSettings:
    """Everything Broker's router component is configured with."""

    grants: Grants
    #: Seconds a connected WAMP transport may take to send HELLO.
    hello_timeout: float = 10.0
    publishers: Mapping[str, PublisherKey] = field(default_factory=dict)
    http_publish: HttpPublishSettings = field(default_factory=HttpPublishSettings)
    history: HistorySettings = field(default_factory=HistorySettings)
    slow_subscriber: SlowSubscriberSettings = field(default_factory=SlowSubscriberSettings)
    #: ``None``: no token authentication (every ticket is refused).
    tokens: TokenSettings | None = None
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    presence: PresenceSettings = field(default_factory=PresenceSettings)
    #: Deliver through Broker's fast paths: its own PUBLISH dispatch, and an EVENT framed once
    #: per serializer for all of its WebSocket subscribers (:mod:`broker.router.crossbar.frames`);
    #: false: crossbar's and autobahn's own paths everywhere.
    fast_path: bool = True

    def publisher_grants(self) -> Grants:
        """The publisher keys' topic grants, keyed by key id."""
        return Grants({key_id: key.topics for key_id, key in self.publishers.items()})


def _unknown_keys(value: Mapping[str, Any], allowed: frozenset[str], path: str) -> None:
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise ConfigError(
            f"{path}.{unknown[0]}",
            f"unknown key {unknown[0]!r} (expected one of: {', '.join(sorted(allowed))})",
        )


def _parse_grant(raw: object, path: str, role: str | None = None) -> Grant:
    """One grant at ``path``; with ``role``, also refused if :func:`reserved_grant` refuses it."""
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
    refusal = None if role is None else reserved_grant(role, uri, cast(Match, match), allow)
    if refusal is not None:
        raise ConfigError(path, refusal)
    return Grant(uri=uri, match=cast(Match, match), actions=frozenset(cast(list[Action], allow)))


def _int(raw: object, path: str, low: int, high: int) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or not low <= raw <= high:
        raise ConfigError(path, f"must be an integer from {low} to {high}, not {raw!r}")
    return raw


def resolve_secret(raw: object, path: str, env: Mapping[str, str]) -> str:
    """A secret written as ``${NAME}``, read from ``env`` (secrets never live in the file)."""
    name = env_reference(raw)
    if name is None:
        raise ConfigError(path, "must reference an environment variable, written as ${NAME}")
    value = env.get(name)
    if value is None:
        raise ConfigError(path, f"environment variable {name} is not set")
    if not value:
        raise ConfigError(path, f"environment variable {name} is empty: an empty secret is refused")
    return value


def _parse_publisher(key_id: str, raw: object, path: str, env: Mapping[str, str]) -> PublisherKey:
    if not _KEY_ID.match(key_id):
        raise ConfigError(path, "a key id is 1-64 letters, digits, '_', '.' or '-'")
    if not isinstance(raw, Mapping):
        raise ConfigError(path, f"a publisher key must be an object, not {type(raw).__name__}")
    _unknown_keys(raw, _PUBLISHER_KEYS, path)
    secret = resolve_secret(raw.get("secret"), f"{path}.secret", env)
    topics = raw.get("topics")
    if not isinstance(topics, list) or not topics:
        raise ConfigError(f"{path}.topics", "must be a non-empty list of {uri, match} patterns")
    grants = []
    for i, topic in enumerate(topics):
        if isinstance(topic, Mapping):
            _unknown_keys(topic, _TOPIC_KEYS, f"{path}.topics[{i}]")
            topic = {**topic, "allow": ["publish"]}
        # a key is never one of the node's own roles: nothing under wamp./broker. is publishable
        grants.append(_parse_grant(topic, f"{path}.topics[{i}]", role=f"publisher key {key_id!r}"))
    rate_limit = None
    if "rate_limit" in raw:
        rate = raw["rate_limit"]
        if not isinstance(rate, Mapping):
            raise ConfigError(f"{path}.rate_limit", "must be an object {per_second, burst}")
        _unknown_keys(rate, _RATE_KEYS, f"{path}.rate_limit")
        per_second = rate.get("per_second")
        if isinstance(per_second, bool) or not isinstance(per_second, int | float) or per_second <= 0:
            raise ConfigError(
                f"{path}.rate_limit.per_second", f"must be a positive number, not {per_second!r}"
            )
        burst = _int(rate.get("burst", max(1, int(per_second))), f"{path}.rate_limit.burst", 1, 1_000_000)
        rate_limit = RateLimit(per_second=float(per_second), burst=burst)
    return PublisherKey(key_id=key_id, secret=secret, topics=tuple(grants), rate_limit=rate_limit)


_L = TypeVar("_L")


def _parse_limits(raw: object, path: str, limits: Mapping[str, tuple[int, int]], kind: type[_L]) -> _L:
    """An object of bounded integers (``limits``: key -> (min, max)) into the dataclass ``kind``."""
    if not isinstance(raw, Mapping):
        raise ConfigError(path, f"must be an object {{{', '.join(limits)}}}, not {type(raw).__name__}")
    _unknown_keys(raw, frozenset(limits), path)
    return kind(**{key: _int(value, f"{path}.{key}", *limits[key]) for key, value in raw.items()})


def _parse_history(raw: object, path: str) -> HistorySettings:
    if not isinstance(raw, Mapping):
        raise ConfigError(path, f"must be an object {{store, policies}}, not {type(raw).__name__}")
    _unknown_keys(raw, _HISTORY_KEYS, path)
    store = check_store_spec(raw.get("store", {"type": "memory"}), f"{path}.store")
    raw_policies = raw.get("policies")
    if raw_policies is None:
        return HistorySettings(store=store)
    if not isinstance(raw_policies, list):
        raise ConfigError(f"{path}.policies", "must be a list of {uri, match, max_events, max_age}")
    policies = []
    for i, policy in enumerate(raw_policies):
        where = f"{path}.policies[{i}]"
        if not isinstance(policy, Mapping):
            raise ConfigError(where, f"a policy must be an object, not {type(policy).__name__}")
        _unknown_keys(policy, _POLICY_KEYS, where)
        grant = _parse_grant(
            {"uri": policy.get("uri"), "match": policy.get("match", "prefix"), "allow": ["subscribe"]}, where
        )
        max_events = _int(policy.get("max_events", 1000), f"{where}.max_events", 0, 1_000_000)
        max_age = _int(policy.get("max_age", 3600), f"{where}.max_age", 1, 30 * 86400)
        policies.append(HistoryPolicy(grant.uri, grant.match, Retention(max_events, float(max_age))))
    return HistorySettings(store=store, policies=tuple(policies))


def _parse_public_key(raw: object, alg: str, path: str, env: Mapping[str, str]) -> str:
    """A PEM public key, inline or as ``${VAR}``, loaded once so a bad key fails at start."""
    pem = resolve_secret(raw, path, env) if isinstance(raw, str) and raw.startswith("${") else raw
    if not isinstance(pem, str) or "-----BEGIN PUBLIC KEY-----" not in pem:
        raise ConfigError(path, "must be a PEM public key (-----BEGIN PUBLIC KEY-----) or ${NAME}")
    try:
        from cryptography.hazmat.primitives.serialization import load_pem_public_key

        loaded = load_pem_public_key(pem.encode("utf-8"))
    except ImportError:  # pragma: no cover - the node extra installs cryptography
        return pem
    except ValueError as exc:
        raise ConfigError(path, f"not a valid PEM public key: {exc}") from None
    if not any(cls.__name__ == _PEM_KEY_TYPES[alg] for cls in type(loaded).__mro__):
        raise ConfigError(path, f"{alg} needs an {_PEM_KEY_TYPES[alg]}, not {type(loaded).__name__}")
    return pem


def _parse_tokens(raw: object, path: str, env: Mapping[str, str]) -> TokenSettings:
    if not isinstance(raw, Mapping):
        raise ConfigError(
            path, f"must be an object {{audience, keys, max_ttl, leeway}}, not {type(raw).__name__}"
        )
    _unknown_keys(raw, _TOKENS_KEYS, path)
    audience = raw.get("audience", DEFAULT_AUDIENCE)
    if not isinstance(audience, str) or not audience:
        raise ConfigError(f"{path}.audience", f"must be a non-empty string, not {audience!r}")
    raw_keys = raw.get("keys")
    if not isinstance(raw_keys, list) or not raw_keys:
        raise ConfigError(f"{path}.keys", "must be a non-empty list of {alg, secret} or {alg, public_key}")
    keys = []
    for i, key in enumerate(raw_keys):
        where = f"{path}.keys[{i}]"
        if not isinstance(key, Mapping):
            raise ConfigError(where, f"a key must be an object, not {type(key).__name__}")
        alg = key.get("alg")
        if alg not in ALGORITHMS:
            raise ConfigError(f"{where}.alg", f"must be one of {', '.join(ALGORITHMS)}, not {alg!r}")
        if alg == "HS256":
            _unknown_keys(key, frozenset({"alg", "secret"}), where)
            value = resolve_secret(key.get("secret"), f"{where}.secret", env)
        else:
            _unknown_keys(key, frozenset({"alg", "public_key"}), where)
            value = _parse_public_key(key.get("public_key"), alg, f"{where}.public_key", env)
        keys.append(TokenKey(alg=cast(Algorithm, alg), key=value))
    max_ttl = _int(raw.get("max_ttl", 3600), f"{path}.max_ttl", 1, 7 * 86400)
    leeway = _int(raw.get("leeway", DEFAULT_LEEWAY), f"{path}.leeway", 0, 300)
    return TokenSettings(keys=tuple(keys), audience=audience, max_ttl=max_ttl, leeway=leeway)


def parse_settings(raw: object, path: str = "$", env: Mapping[str, str] | None = None) -> BrokerSettings:
    """Validate ``raw`` (the component's ``extra``) into :class:`BrokerSettings`.

    ``env`` supplies the ``${NAME}`` secrets (default: the process environment).
    """
    env = os.environ if env is None else env
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
        roles[role] = tuple(_parse_grant(g, f"{path}.grants.{role}[{i}]", role) for i, g in enumerate(grants))
    hello_timeout = raw.get("hello_timeout", 10)
    if (
        isinstance(hello_timeout, bool)
        or not isinstance(hello_timeout, int | float)
        or not 0 < hello_timeout <= 300
    ):
        raise ConfigError(
            f"{path}.hello_timeout", f"must be a number of seconds in (0, 300], not {hello_timeout!r}"
        )
    raw_publishers = raw.get("publishers", {})
    if not isinstance(raw_publishers, Mapping):
        raise ConfigError(f"{path}.publishers", "must be an object mapping key ids to publisher keys")
    publishers = {
        key_id: _parse_publisher(key_id, key, f"{path}.publishers.{key_id}", env)
        for key_id, key in raw_publishers.items()
    }
    http_publish = _parse_limits(
        raw.get("http_publish", {}), f"{path}.http_publish", _HTTP_LIMITS, HttpPublishSettings
    )
    history = _parse_history(raw.get("history", {}), f"{path}.history")
    slow_subscriber = _parse_limits(
        raw.get("slow_subscriber", {}),
        f"{path}.slow_subscriber",
        _SLOW_SUBSCRIBER_LIMITS,
        SlowSubscriberSettings,
    )
    tokens = _parse_tokens(raw["tokens"], f"{path}.tokens", env) if "tokens" in raw else None
    metrics = _parse_limits(raw.get("metrics", {}), f"{path}.metrics", _METRICS_LIMITS, MetricsSettings)
    fast_path = raw.get("fast_path", True)
    if not isinstance(fast_path, bool):
        raise ConfigError(f"{path}.fast_path", f"must be true or false, not {fast_path!r}")
    return BrokerSettings(
        grants=Grants(roles),
        hello_timeout=float(hello_timeout),
        publishers=publishers,
        http_publish=http_publish,
        history=history,
        slow_subscriber=slow_subscriber,
        tokens=tokens,
        metrics=metrics,
        presence=parse_presence(raw.get("presence", {}), f"{path}.presence"),
        fast_path=fast_path,
    )


#: Keys crossbar adds to every component's ``extra`` at start (the node directory): not settings.
RUNTIME_EXTRA: Final = frozenset({"cbdir"})


def without_runtime(extra: Mapping[str, Any]) -> dict[str, Any]:
    """A component's ``extra`` less what crossbar adds at start (:data:`RUNTIME_EXTRA`)."""
    return {key: value for key, value in extra.items() if key not in RUNTIME_EXTRA}


def component_settings(
    config: Mapping[str, Any], env: Mapping[str, str] | None = None
) -> tuple[Mapping[str, Any], BrokerSettings]:
    """Broker's component in a node config, and its settings parsed as the node parses them.

    The component's ``extra`` less :data:`RUNTIME_EXTRA`; ``env`` resolves the
    ``${NAME}`` secrets (:func:`parse_settings`).
    """
    path, component = find_component(config)
    extra = component.get("extra") or {}
    if isinstance(extra, Mapping):
        extra = without_runtime(extra)
    return component, parse_settings(extra, f"{path}.extra", env=env)


def find_component(config: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]]:
    """Locate Broker's component in a node config: ``(json_path, component)``."""
    for w, worker in enumerate(config.get("workers", [])):
        for c, component in enumerate(worker.get("components", []) if isinstance(worker, Mapping) else []):
            if isinstance(component, Mapping) and component.get("classname") == COMPONENT_CLASS:
                return f"$.workers[{w}].components[{c}]", component
    raise ConfigError("$.workers", f"no router component with classname {COMPONENT_CLASS!r}")
