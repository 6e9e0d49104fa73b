"""Planning a live reload: what changed in the node config, what applies live, what needs a restart.

Why: crossbar reads its config once, so every change used to mean a restart
that drops every connection. What Broker owns — role grants, publisher keys
and limits, history policies, slow-subscriber limits, token keys, the
WebSocket's allowed origins — can change in the running router instead. A
reload must be all or nothing: :func:`plan_reload` validates the whole new
config first (raising :class:`ConfigError` with the JSON path, so the running
config stays), and only a plan that validated is applied, by the thin router
adapter :mod:`broker.router.reloader`. Everything else that changed is
reported as needing a restart, never silently ignored. Pure: no Twisted, no
crossbar, no I/O, so every rule here is unit tested.
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from broker.config.nodeconfig import child_path, env_references, web_transport
from broker.config.settings import (
    RUNTIME_EXTRA,
    BrokerSettings,
    find_component,
    parse_settings,
    without_runtime,
)
from broker.errors import ConfigError

#: The source config's absolute path, set by ``broker run`` for the node's processes.
ENV_CONFIG: Final = "BROKER_CONFIG"
#: Comma-separated names ``broker run`` took from the dev secrets file.
ENV_FILE_SECRETS: Final = "BROKER_FILE_SECRETS"
#: In the node directory: the source config ``broker run`` started from, rendered without
#: ``--port``/``--host``, so a reload compares the file with the file (a port edit is reported
#: as needing a restart even when ``--port`` overrides it for this run).
SNAPSHOT_FILENAME: Final = "broker-source.json"
#: The procedure ``broker reload`` calls (registered by Broker's component, operator only).
RELOAD_PROCEDURE: Final = "broker.reload"

#: Broker settings (keys of the component's ``extra``) the router takes over live.
LIVE_SETTINGS: Final = frozenset(
    {
        "grants",
        "publishers",
        "http_publish",
        "slow_subscriber",
        "tokens",
        "hello_timeout",
        "metrics",
        "presence",
        "fast_path",
    }
)
#: ``history`` members that apply live (the store itself needs a restart).
LIVE_HISTORY: Final = frozenset({"policies"})
#: WebSocket path options the running WebSocket factory takes over live.
LIVE_WEBSOCKET_OPTIONS: Final = frozenset({"allowed_origins", "allow_null_origin"})
#: What crossbar adds to every component's ``extra`` at start (not in the file).


@dataclass(frozen=True)
class OriginPolicy:
    """One WebSocket path's origin rules, as crossbar's factory options take them."""

    allowed_origins: tuple[str, ...]
    allow_null_origin: bool


@dataclass(frozen=True)
class Plan:
    """A validated reload: the new settings and what to report."""

    settings: BrokerSettings
    #: JSON paths whose change applies live.
    live: tuple[str, ...]
    #: JSON paths whose change needs a restart (reported, not applied).
    restart: tuple[str, ...]
    #: WebSocket path key (``"ws"``) -> its origin policy in the new config.
    origins: Mapping[str, OriginPolicy] = field(default_factory=dict)
    #: The running config once this plan is applied (restart-needing parts still the old ones).
    applied: Mapping[str, Any] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        """Whether anything differs from the running config."""
        return bool(self.live or self.restart)

    def report(self) -> dict[str, list[str]]:
        """The answer ``broker reload`` prints: ``{"changed": [...], "restart_needed": [...]}``."""
        return {"changed": list(self.live), "restart_needed": list(self.restart)}


def reload_env(
    environ: Mapping[str, str], file_secrets: Mapping[str, str], from_file: Collection[str]
) -> dict[str, str]:
    """The variables ``${VAR}`` references resolve to on reload.

    ``environ`` is the router's environment, into which ``broker run`` copied
    the dev secrets file's values for ``from_file`` at start. A name the
    operator set in the real environment wins over the file; a name that came
    from the file takes the file's *current* value (so a rotated secret
    applies); a name only the file has now (a key added since) comes from the file.
    """
    env = dict(environ)
    for name, value in file_secrets.items():
        if name in from_file or name not in environ:
            env[name] = value
    return env


def diff(old: object, new: object, path: str = "$") -> list[str]:
    """The JSON paths at which ``old`` and ``new`` differ, in document order.

    Objects are compared member by member and lists element by element, so a
    grant appended to a role is reported as that one element.
    """
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        found: list[str] = []
        for key in [*old, *(k for k in new if k not in old)]:
            where = child_path(path, str(key))
            if key not in new or key not in old:
                found.append(where)
            else:
                found += diff(old[key], new[key], where)
        return found
    if isinstance(old, list) and isinstance(new, list):
        found = []
        for i in range(max(len(old), len(new))):
            if i >= len(old) or i >= len(new):
                found.append(f"{path}[{i}]")
            else:
                found += diff(old[i], new[i], f"{path}[{i}]")
        return found
    if type(old) is not type(new) or old != new:
        return [path]
    return []


def _under(path: str, parent: str) -> str | None:
    """The first member name of ``path`` below ``parent``, or None if it is not below it."""
    if not path.startswith(parent + ".") and not path.startswith(parent + "["):
        return None
    rest = path[len(parent) :]
    if rest.startswith('["'):
        return rest[2 : rest.index('"]')]
    rest = rest[1:]
    for i, ch in enumerate(rest):
        if ch in ".[":
            return rest[:i]
    return rest


def _websocket_paths(config: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """``(json_path of paths, paths)`` of the node's web transport."""
    transport_path, transport = web_transport(config)
    paths = transport.get("paths")
    if not isinstance(paths, dict):
        raise ConfigError(f"{transport_path}.paths", "must be an object")
    return f"{transport_path}.paths", paths


def _origin_policies(config: Mapping[str, Any]) -> dict[str, OriginPolicy]:
    """Every WebSocket path's origin policy (crossbar's defaults where unset), validated."""
    paths_path, paths = _websocket_paths(config)
    policies = {}
    for key, service in paths.items():
        if not isinstance(service, Mapping) or service.get("type") != "websocket":
            continue
        where = child_path(paths_path, key) + ".options"
        options = service.get("options", {})
        if not isinstance(options, Mapping):
            raise ConfigError(where, "must be an object")
        origins = options.get("allowed_origins", ["*"])
        if not isinstance(origins, list) or not all(isinstance(o, str) and o for o in origins):
            raise ConfigError(f"{where}.allowed_origins", "must be a list of origins (strings, * a wildcard)")
        allow_null = options.get("allow_null_origin", True)
        if not isinstance(allow_null, bool):
            raise ConfigError(f"{where}.allow_null_origin", f"must be true or false, not {allow_null!r}")
        policies[key] = OriginPolicy(tuple(origins), allow_null)
    return policies


def _is_live(path: str, extra_path: str, paths_path: str, websocket_keys: Collection[str]) -> bool:
    setting = _under(path, extra_path)
    if setting is not None:
        if setting == "history":
            return _under(path, f"{extra_path}.history") in LIVE_HISTORY
        return setting in LIVE_SETTINGS
    key = _under(path, paths_path)
    if key is None or key not in websocket_keys:
        return False
    options_path = child_path(paths_path, key) + ".options"
    return _under(path, options_path) in LIVE_WEBSOCKET_OPTIONS


def _extra(component: Mapping[str, Any]) -> dict[str, Any]:
    extra = component.get("extra") or {}
    return without_runtime(extra) if isinstance(extra, Mapping) else extra


def _secret_changes(current: BrokerSettings, new: BrokerSettings, extra_path: str) -> list[str]:
    """Paths whose ``${VAR}`` now resolves to another value (a rotated secret: same file, new value)."""
    found = [
        child_path(f"{extra_path}.publishers", key_id) + ".secret"
        for key_id, key in new.publishers.items()
        if key_id in current.publishers and current.publishers[key_id].secret != key.secret
    ]
    if current.tokens is not None and new.tokens is not None and current.tokens.keys != new.tokens.keys:
        found.append(f"{extra_path}.tokens.keys")
    return found


def plan_reload(
    running: Mapping[str, Any],
    new: Mapping[str, Any],
    env: Mapping[str, str],
    current: BrokerSettings | None = None,
    start_env: Mapping[str, str] | None = None,
) -> Plan:
    """Validate ``new`` completely and sort its differences from ``running`` into live and restart.

    Both are source configs rendered the same way (:func:`broker.config.nodeconfig.render`,
    without ``--port``/``--host``). ``current``, the settings in force, makes a
    rotated secret a change although the file did not change; ``start_env``,
    the environment the node started with, does the same for secrets outside
    Broker's settings (WAMP-CRA users), which need a restart. Raises
    :class:`ConfigError` for the first invalid value; nothing is applied then.
    """
    component_path, component = find_component(new)
    extra_path = f"{component_path}.extra"
    settings = parse_settings(_extra(component), extra_path, env=env)
    paths_path, _ = _websocket_paths(new)
    origins = _origin_policies(new)
    running_component_path, _ = find_component(running)
    running_paths_path, running_paths = _websocket_paths(running)
    running_ws = {
        k for k, s in running_paths.items() if isinstance(s, Mapping) and s.get("type") == "websocket"
    }
    old_view = copy.deepcopy(dict(running))
    # compare without what crossbar adds at run time
    _, old_component = find_component(old_view)
    if isinstance(old_component, dict) and isinstance(old_component.get("extra"), dict):
        old_component["extra"] = _extra(old_component)
    live: list[str] = []
    restart: list[str] = []
    same_place = running_component_path == component_path and running_paths_path == paths_path
    for path in diff(old_view, new):
        websocket_keys = running_ws & set(origins)
        if same_place and _is_live(path, extra_path, paths_path, websocket_keys):
            live.append(path)
        else:
            restart.append(path)
    if current is not None and same_place:
        live += [path for path in _secret_changes(current, settings, extra_path) if path not in live]
    if start_env is not None:
        restart += [
            path
            for path, var in env_references(new)
            if _under(path, extra_path) is None and start_env.get(var) != env.get(var) and path not in restart
        ]
    applied = _applied(running, new, live)
    return Plan(settings, tuple(live), tuple(restart), origins, applied)


def _applied(running: Mapping[str, Any], new: Mapping[str, Any], live: Collection[str]) -> dict[str, Any]:
    """``running`` with the live parts of ``new`` in place: the baseline of the next reload."""
    applied = copy.deepcopy(dict(running))
    if not live:
        return applied
    _, component = find_component(applied)
    _, new_component = find_component(new)
    if isinstance(component, dict):
        raw_extra = component.get("extra")
        old_extra: dict[str, Any] = raw_extra if isinstance(raw_extra, dict) else {}
        extra = copy.deepcopy(_extra(new_component))
        runtime = {k: v for k, v in old_extra.items() if k in RUNTIME_EXTRA}
        old_history = old_extra.get("history")
        new_history = extra.get("history")
        # the store needs a restart: keep the running one (or its absence)
        if isinstance(new_history, dict):
            new_history.pop("store", None)
            if isinstance(old_history, Mapping) and "store" in old_history:
                extra["history"] = {"store": copy.deepcopy(old_history["store"]), **new_history}
        elif isinstance(old_history, Mapping) and "store" in old_history:
            extra["history"] = {"store": copy.deepcopy(old_history["store"])}
        for key in set(extra) - LIVE_SETTINGS - {"history"}:
            if key in old_extra:
                extra[key] = copy.deepcopy(old_extra[key])
            else:
                del extra[key]
        for key in set(old_extra) - LIVE_SETTINGS - {"history"} - set(extra):
            extra[key] = copy.deepcopy(old_extra[key])
        component["extra"] = {**extra, **runtime}
    _, paths = _websocket_paths(applied)
    _, new_paths = _websocket_paths(new)
    for key, service in paths.items():
        new_service = new_paths.get(key)
        if (
            not isinstance(service, dict)
            or service.get("type") != "websocket"
            or not isinstance(new_service, dict)
        ):
            continue
        options = service.setdefault("options", {})
        new_options = new_service.get("options", {})
        for option in LIVE_WEBSOCKET_OPTIONS:
            if option in new_options:
                options[option] = copy.deepcopy(new_options[option])
            else:
                options.pop(option, None)
    return applied
