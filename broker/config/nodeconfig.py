"""The crossbar node config (``.crossbar/config.json``): load, inspect, render.

Why: ``broker run`` does not start crossbar on the source tree's ``.crossbar``
but on a runtime directory (``.crossbar/run``) holding a rendered copy, so the
files crossbar writes there (node key, pid file) stay out of the source tree
and ``--port``/``--host`` (and ``BROKER_REDIS_URL``) apply without editing the config. Crossbar resolves
relative paths against its node directory, so rendering makes them absolute
against the config's own directory first. Secrets stay ``${VAR}`` references:
crossbar substitutes them from its environment at start, so the rendered copy
holds none. No crossbar import: ``broker check`` and the tests need no node.
"""

from __future__ import annotations

import copy
import json
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from broker.config.clusterenv import join_cluster
from broker.config.envref import env_reference
from broker.errors import ConfigError

#: The name crossbar looks for in its node directory.
CONFIG_FILENAME: Final = "config.json"

_IDENTIFIER: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: Listening on every interface; clients connect to the loopback address instead.
_ANY_INTERFACE: Final = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}  # noqa: S104


def load(path: Path) -> dict[str, Any]:
    """Read the node config at ``path``; every failure is a :class:`ConfigError` at ``$``."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError("$", f"cannot read {path}: {exc.strerror}") from None
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            "$", f"{path}, line {exc.lineno}, column {exc.colno}: invalid JSON: {exc.msg}"
        ) from None
    if not isinstance(config, dict):
        kind = type(config).__name__
        raise ConfigError("$", f"{path}: a node config is a JSON object, not {kind}")
    return config


def child_path(parent: str, key: str) -> str:
    """The JSON path of member ``key`` of the object at ``parent``."""
    return f"{parent}.{key}" if _IDENTIFIER.match(key) else f"{parent}[{json.dumps(key)}]"


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _absolute(base: Path, path: str) -> str:
    # the same resolution crossbar applies against its node directory
    return os.path.abspath(os.path.join(base, path))


def _absolute_directories(paths: object, base: Path) -> None:
    """Make each web path service's ``directory`` absolute, nested ``paths`` included."""
    if not isinstance(paths, dict):
        return
    for service in paths.values():
        if isinstance(service, dict):
            if isinstance(service.get("directory"), str):
                service["directory"] = _absolute(base, service["directory"])
            _absolute_directories(service.get("paths"), base)


def web_transport(config: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The node's single web transport: ``(json_path, transport)``."""
    found = [
        (f"$.workers[{w}].transports[{t}]", transport)
        for w, worker in enumerate(_list(config.get("workers")))
        if isinstance(worker, Mapping)
        for t, transport in enumerate(_list(worker.get("transports")))
        if isinstance(transport, dict) and transport.get("type") == "web"
    ]
    if len(found) != 1:
        raise ConfigError("$.workers", f"expected exactly one web transport, found {len(found)}")
    return found[0]


#: The ``max_message_size`` crossbar 26.10 gives a WebSocket or RawSocket transport that sets none.
CROSSBAR_DEFAULT_MESSAGE_SIZE: Final = 2**24


def _websocket_paths(paths: object) -> list[Mapping[str, Any]]:
    """The WebSocket services among a web transport's ``paths``, nested ``paths`` included."""
    found: list[Mapping[str, Any]] = []
    if isinstance(paths, Mapping):
        for service in paths.values():
            if isinstance(service, Mapping):
                if service.get("type") == "websocket":
                    found.append(service)
                found.extend(_websocket_paths(service.get("paths")))
    return found


def message_limit(config: Mapping[str, Any]) -> int | None:
    """The smallest message size every WAMP transport of the node accepts, in bytes.

    The smallest ``options.max_message_size`` of the router workers'
    WebSocket paths (web and universal transports), WebSocket and RawSocket
    transports; crossbar's default (16 MiB) where one sets none, and ``0``
    (crossbar's "unlimited") counts as no limit. None when no transport
    limits messages. Long-poll has no limit of its own in crossbar and is
    held to this one. What fits here can be sent to any subscriber.
    """
    options: list[Mapping[str, Any]] = []
    for worker in _list(config.get("workers")):
        if not isinstance(worker, Mapping) or worker.get("type") != "router":
            continue
        for transport in _list(worker.get("transports")):
            if not isinstance(transport, Mapping):
                continue
            kind = transport.get("type")
            services: list[Mapping[str, Any]] = []
            if kind in ("websocket", "rawsocket"):
                services.append(transport)
            elif kind in ("web", "universal"):
                web = transport.get("web", transport) if kind == "universal" else transport
                if isinstance(web, Mapping):
                    services.extend(_websocket_paths(web.get("paths")))
                if kind == "universal":  # {"websocket": {path: service}, "rawsocket": service}
                    websocket, rawsocket = transport.get("websocket"), transport.get("rawsocket")
                    if isinstance(websocket, Mapping):
                        services.extend(s for s in websocket.values() if isinstance(s, Mapping))
                    if isinstance(rawsocket, Mapping):
                        services.append(rawsocket)
            for service in services:
                service_options = service.get("options")
                options.append(service_options if isinstance(service_options, Mapping) else {})
    limits = []
    for service_options in options:
        size = service_options.get("max_message_size", CROSSBAR_DEFAULT_MESSAGE_SIZE)
        if isinstance(size, int) and not isinstance(size, bool) and size > 0:
            limits.append(size)
    return min(limits) if limits else None


def _endpoint(config: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    path, transport = web_transport(config)
    endpoint = transport.get("endpoint")
    if not isinstance(endpoint, dict):
        raise ConfigError(f"{path}.endpoint", "must be an object")
    return f"{path}.endpoint", endpoint


def render(
    config: Mapping[str, Any],
    config_dir: Path,
    port: int | None = None,
    host: str | None = None,
    redis_url: str | None = None,
) -> dict[str, Any]:
    """A copy of ``config`` that crossbar can run from any node directory.

    Web path services' ``directory`` and workers' ``options.pythonpath``
    become absolute (relative ones are relative to ``config_dir``, the
    directory the config is in); ``port`` and ``host`` replace the web
    transport's listening port and interface; ``redis_url`` (checked
    ``BROKER_REDIS_URL``, :mod:`broker.config.clusterenv`) makes the history a
    Redis store there.
    """
    rendered = join_cluster(config, redis_url) if redis_url else copy.deepcopy(dict(config))
    base = config_dir.resolve()
    for worker in _list(rendered.get("workers")):
        if not isinstance(worker, dict):
            continue
        options = worker.get("options")
        if isinstance(options, dict) and isinstance(options.get("pythonpath"), list):
            options["pythonpath"] = [_absolute(base, p) for p in options["pythonpath"]]
        for transport in _list(worker.get("transports")):
            if isinstance(transport, dict):
                _absolute_directories(transport.get("paths"), base)
    if port is not None or host is not None:
        _, endpoint = _endpoint(rendered)
        if port is not None:
            endpoint["port"] = port
        if host is not None:
            endpoint["interface"] = host
    return rendered


def write(cbdir: Path, config: Mapping[str, Any]) -> Path:
    """Write ``config`` as ``cbdir/config.json``, atomically; returns its path.

    The file is private to its owner (0600), as a config may hold literal secrets.
    """
    cbdir.mkdir(parents=True, exist_ok=True)
    target = cbdir / CONFIG_FILENAME
    fd, tmp = tempfile.mkstemp(dir=cbdir, prefix=".config.", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(config, f, indent=4)
            f.write("\n")
        os.replace(tmp, target)
    except BaseException:
        os.unlink(tmp)
        raise
    return target


def web_endpoint(config: Mapping[str, Any]) -> tuple[str, int]:
    """Where a client on this machine reaches the web transport: ``(host, port)``."""
    path, endpoint = _endpoint(config)
    port = endpoint.get("port")
    if isinstance(port, bool) or not isinstance(port, int):
        raise ConfigError(f"{path}.port", f"must be a port number, not {port!r}")
    interface = endpoint.get("interface", "")
    if not isinstance(interface, str):
        raise ConfigError(f"{path}.interface", f"must be a string, not {interface!r}")
    return _ANY_INTERFACE.get(interface, interface), port


def _base_url(config: Mapping[str, Any], scheme: str) -> str:
    host, port = web_endpoint(config)
    _, endpoint = _endpoint(config)
    secure = "s" if "tls" in endpoint else ""
    netloc = f"[{host}]" if ":" in host else host
    return f"{scheme}{secure}://{netloc}:{port}/"


def http_url(config: Mapping[str, Any]) -> str:
    """The root URL of the node's web transport (``http://127.0.0.1:8080/``)."""
    return _base_url(config, "http")


def websocket_url(config: Mapping[str, Any]) -> str:
    """The URL of the web transport's WAMP WebSocket (``ws://127.0.0.1:8080/ws``)."""
    path, transport = web_transport(config)
    paths = transport.get("paths")
    for key, service in paths.items() if isinstance(paths, dict) else []:
        if isinstance(service, Mapping) and service.get("type") == "websocket":
            return _base_url(config, "ws") + ("" if key == "/" else key)
    raise ConfigError(f"{path}.paths", "no path service of type 'websocket'")


def env_references(config: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Every ``${VAR}`` value in ``config``, as ``(json_path, VAR)`` in document order."""
    found: list[tuple[str, str]] = []

    def walk(value: object, path: str) -> None:
        if isinstance(value, str):
            var = env_reference(value)
            if var is not None:
                found.append((path, var))
        elif isinstance(value, Mapping):
            for key, item in value.items():
                walk(item, child_path(path, str(key)))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                walk(item, f"{path}[{i}]")

    walk(config, "$")
    return found


def assume_set(config: Mapping[str, Any]) -> dict[str, str]:
    """Every variable ``config`` references, with a placeholder value.

    Settings parsed under it fail only for what is wrong in the file, whatever
    the secrets hold; an unset variable is reported elsewhere, once, at its path.
    """
    return {var: "set" for _, var in env_references(config)}


def listen_problem(interface: str, port: int, error: OSError) -> str:
    """The one line that says the node cannot listen on ``interface:port``, and the way out.

    It keeps the OS's words ("Address already in use"): the test harness and
    supervisors' scripts look for them.
    """
    where = f"[{interface}]:{port}" if ":" in interface else f"{interface or '*'}:{port}"
    return (
        f"cannot listen on {where}: [Errno {error.errno}] {error.strerror}: "
        "choose another port with --port N or BROKER_PORT=N"
    )
