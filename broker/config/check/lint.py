"""The hardened defaults Broker's node relies on, checked in any config.

Why: crossbar 26.10's defaults are unsafe for a broker on the internet (any
web page may open a WebSocket, no handshake or idle timeouts, unlimited
message sizes and HTTP bridge bodies, no auto-ping, 50,000 connections per
port, a web status page that redirects anywhere), and its event history (a
realm ``store``) drops live events. Broker's own config sets each of these;
an edit that loses one would pass ``crossbar check`` and start fine.

Each finding is an error (safe by default: a weaker setting is a decision to
write down elsewhere, not a warning to scroll past) and says what is unsafe
and the safe value: the project's ``.crossbar/config.json``'s (the HTTP
bridge's body limit is Broker's own ``/api/publish`` default). The one warning
is a long-poll queue limit left out: its default is bounded (crossbar ignores
the option, Broker's hardening enforces it, default included) but invisible.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any, Final

from broker.config.check import walk
from broker.config.check.report import ConfigWarning
from broker.config.check.walk import Part
from broker.errors import ConfigError

#: Largest WebSocket message or frame the lint accepts (crossbar allows 64 MiB).
MAX_SIZE: Final = 1024 * 1024
#: The safe values the messages recommend: the project config's.
SAFE: Final[Mapping[str, int]] = {
    "open_handshake_timeout": 5000,
    "close_handshake_timeout": 2000,
    "max_message_size": 65536,
    "max_frame_size": 65536,
    "auto_ping_interval": 10000,
    "auto_ping_timeout": 5000,
    "client_timeout": 10,
    "queue_limit_bytes": 131072,
    "queue_limit_messages": 100,
    "max_connections": 10000,
    "post_body_limit": 65536,
}
#: Listening transports that accept connections (and so take ``max_connections``).
_LISTENING: Final = ("web", "websocket", "rawsocket", "universal", "mqtt")


def _options(part: Part) -> tuple[str, Mapping[str, Any]]:
    options = part[1].get("options")
    return f"{part[0]}.options", options if isinstance(options, Mapping) else {}


def _number(options: Mapping[str, Any], key: str) -> int | float | None:
    """``options[key]`` if it is a number; ``0`` if absent or ``null`` (crossbar's 'unset')."""
    value = options.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None  # a wrong type: crossbar check reports it
    return value


def _unset(options: Mapping[str, Any], key: str) -> bool:
    return _number(options, key) == 0


def _was(options: Mapping[str, Any], key: str) -> str:
    """How a message starts: ``missing``, or the value as written (``true``, ``0``, ``null``)."""
    return json.dumps(options[key]) if key in options else "missing"


#: The port a browser leaves out of its Origin header, by scheme.
_PORTS: Final = {"https": "443", "http": "80"}


def _websocket(endpoint: Part) -> Iterator[ConfigError]:
    path, options = _options(endpoint)
    origins = options.get("allowed_origins")
    if origins is None:
        yield ConfigError(
            f"{path}.allowed_origins",
            "missing: crossbar then accepts a WebSocket from any web page (allowed_origins '*'); "
            'list the origins your pages are served from, e.g. ["https://app.example.com:443"]',
        )
    elif isinstance(origins, list):
        for i, origin in enumerate(origins):
            if not isinstance(origin, str):
                continue
            authority = origin.split("://", 1)[-1]
            if authority.split(":", 1)[0] in ("*", ""):
                yield ConfigError(
                    f"{path}.allowed_origins[{i}]",
                    f"{origin!r} lets any web page open a WebSocket with its visitors' credentials; "
                    'list the origins your pages are served from, e.g. "https://app.example.com:443"',
                )
            elif "://" in origin and ":" not in authority and not origin.endswith("*"):
                fixed = f"{origin}:{_PORTS.get(origin.split('://', 1)[0], 'PORT')}"
                yield ConfigError(
                    f"{path}.allowed_origins[{i}]",
                    f"{origin!r} never matches: autobahn compares each pattern with scheme://host:port, "
                    f"port included even when the browser omits it; write {fixed!r}",
                )
    if options.get("allow_null_origin", True) is not False:
        yield ConfigError(
            f"{path}.allow_null_origin",
            f"{_was(options, 'allow_null_origin')}: pages with a null Origin "
            "(sandboxed iframes, file: URLs) may connect (crossbar's default is true); set false",
        )
    if options.get("enable_webstatus", True) is not False:
        yield ConfigError(
            f"{path}.enable_webstatus",
            f"{_was(options, 'enable_webstatus')}: crossbar then serves a status page "
            "on this URL whose ?redirect= redirects anywhere (crossbar's default is true); set false",
        )
    for key, what in (("open_handshake_timeout", "opening"), ("close_handshake_timeout", "closing")):
        if _unset(options, key):
            yield ConfigError(
                f"{path}.{key}",
                f"{_was(options, key)}: a peer that stalls the {what} handshake holds its "
                f"connection forever; set {SAFE[key]} (milliseconds)",
            )
    for key in ("max_message_size", "max_frame_size"):
        size = _number(options, key)
        if size == 0:
            yield ConfigError(
                f"{path}.{key}",
                f"{_was(options, key)}: WebSocket messages of any size are accepted "
                f"(crossbar's default is unlimited); set {SAFE[key]} (bytes), at most {MAX_SIZE}",
            )
        elif size is not None and size > MAX_SIZE:
            yield ConfigError(
                f"{path}.{key}",
                f"{size} bytes is too large: one peer can make the router buffer that much per message; "
                f"set {SAFE[key]}, at most {MAX_SIZE}",
            )
    if _unset(options, "auto_ping_interval") or _unset(options, "auto_ping_timeout"):
        key = "auto_ping_interval" if _unset(options, "auto_ping_interval") else "auto_ping_timeout"
        yield ConfigError(
            f"{path}.{key}",
            f"{_was(options, key)}: auto-ping is off, so a dead or stalled peer stays "
            "connected and is buffered for without limit; set auto_ping_interval "
            f"{SAFE['auto_ping_interval']} and auto_ping_timeout {SAFE['auto_ping_timeout']} (milliseconds)",
        )


def _web_transport(transport: Part) -> Iterator[ConfigError]:
    path, options = _options(transport)
    if _unset(options, "client_timeout"):
        yield ConfigError(
            f"{path}.client_timeout",
            f"{_was(options, 'client_timeout')}: idle connections and half-sent HTTP "
            f"requests stay open forever; set {SAFE['client_timeout']} (seconds)",
        )
    for service in walk.web_services(transport):
        kind = service[1].get("type")
        if kind in ("publisher", "caller", "webhook"):
            service_path, service_options = _options(service)
            if _unset(service_options, "post_body_limit"):
                yield ConfigError(
                    f"{service_path}.post_body_limit",
                    f"{_was(service_options, 'post_body_limit')}: this HTTP bridge accepts request bodies "
                    f"of any size (crossbar's default is unlimited); set {SAFE['post_body_limit']} (bytes)",
                )
        if kind == "longpoll":
            service_path, service_options = _options(service)
            for key in ("queue_limit_bytes", "queue_limit_messages"):
                where = f"{service_path}.{key}"
                if key not in service_options:
                    # crossbar ignores the option; Broker's hardening enforces it, default included
                    yield ConfigWarning(
                        where,
                        f"missing: the limit on what waits for a long-poll client is implicit "
                        f"(crossbar's default, which only Broker enforces); write it down: {SAFE[key]}",
                    )
                elif _unset(service_options, key):
                    yield ConfigError(
                        where,
                        f"{_was(service_options, key)}: every long-poll session is closed as soon as one "
                        f"message waits for it; set {SAFE[key]}",
                    )


def lint_errors(config: Mapping[str, Any]) -> list[ConfigError]:
    """Every setting in ``config`` weaker than Broker's hardened defaults."""
    errors: list[ConfigError] = []
    for router in walk.routers(config):
        for path, realm in walk.realms(router):
            if "store" in realm:
                errors.append(
                    ConfigError(
                        f"{path}.store",
                        "crossbar's realm store (event history) is broken in 26.10: it drops live events "
                        "with 2 or more subscribers; remove it and use Broker's history "
                        "(the Broker component's extra.history)",
                    )
                )
        for endpoint in walk.wamp_endpoints(router):
            if endpoint[1].get("type") == "websocket":
                errors += _websocket(endpoint)
        for path, transport in walk.transports(router):
            if transport.get("type") in _LISTENING and "max_connections" not in transport:
                errors.append(
                    ConfigError(
                        f"{path}.max_connections",
                        "missing: crossbar's default lets 50,000 connections in on this port; "
                        f"set {SAFE['max_connections']}",
                    )
                )
            if transport.get("type") == "web":
                errors += _web_transport((path, transport))
    return errors
