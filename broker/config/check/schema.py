"""The keys crossbar 26.10 understands in the parts of a node config Broker uses, as data.

Why: ``crossbar check`` ignores unknown keys in realms, roles, stores and
auth principals (a ``rols`` typo is silently dropped), and where it does
complain it names no path. These tables are read off crossbar 26.10's
``common/checkconfig.py`` and the code that consumes the config
(``worker/router.py``, ``router/router.py``, ``personality.py``), so they hold
exactly what the node reads. :mod:`broker.config.check.structure` walks a config
against them. A part whose kind is not listed here is not checked key by key
(``crossbar check``, run last, still sees it).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Final


def _keys(*names: str) -> frozenset[str]:
    return frozenset(names)


#: The top level of a node config.
CONFIG: Final = _keys("$schema", "version", "controller", "workers")
#: The node controller and its options.
CONTROLLER: Final = _keys("id", "options", "manhole", "connections", "keyring")
CONTROLLER_OPTIONS: Final = _keys("title", "shutdown", "enable_parallel_worker_start")

#: Worker types crossbar's standalone personality starts.
WORKER_TYPES: Final = ("router", "container", "guest", "websocket-testee", "proxy")
#: A router worker and the ``options`` every native worker takes.
ROUTER: Final = _keys("id", "type", "options", "manhole", "realms", "transports", "components", "connections")
WORKER_OPTIONS: Final = _keys(
    "extra",
    "title",
    "python",
    "pythonpath",
    "cpu_affinity",
    "env",
    "expose_controller",
    "expose_shared",
    "disabled",
)

#: A realm, its options, its roles and their static permissions.
REALM: Final = _keys("id", "name", "roles", "options", "store", "inventory", "rlinks")
REALM_OPTIONS: Final = _keys(
    "event_dispatching_chunk_size", "uri_check", "enable_meta_api", "bridge_meta_api"
)
ROLE: Final = _keys("id", "name", "permissions", "authorizer", "allow-by-default")
PERMISSION: Final = _keys("uri", "match", "allow", "disclose", "validate", "cache")
PERMISSION_ALLOW: Final = _keys("call", "register", "publish", "subscribe")
PERMISSION_DISCLOSE: Final = _keys("caller", "publisher")
MATCH_POLICIES: Final = ("exact", "prefix", "wildcard")

#: A realm store (crossbar's event history and call queues).
STORE_TYPES: Final = ("memory",)
STORE: Final = _keys("type", "limit", "call-queue", "event-history")
STORE_ENTRY: Final = _keys("uri", "match", "limit")

#: Router components, by ``type``.
COMPONENTS: Final[Mapping[str, frozenset[str]]] = {
    "class": _keys("id", "type", "realm", "role", "references", "classname", "extra"),
    "function": _keys("id", "type", "realm", "role", "callbacks", "extra"),
}

#: Listening transports, by ``type``.
TRANSPORTS: Final[Mapping[str, frozenset[str]]] = {
    "web": _keys("id", "type", "endpoint", "paths", "options", "max_connections"),
    "websocket": _keys(
        "id",
        "type",
        "endpoint",
        "url",
        "serializers",
        "debug",
        "options",
        "auth",
        "cookie",
        "max_connections",
    ),
    "rawsocket": _keys(
        "id", "type", "endpoint", "serializers", "debug", "options", "auth", "max_connections"
    ),
}
#: The ``options`` of a web transport and of a RawSocket transport.
WEB_TRANSPORT_OPTIONS: Final = _keys(
    "access_log", "display_tracebacks", "hsts", "hsts_max_age", "client_timeout"
)
RAWSOCKET_OPTIONS: Final = _keys("max_message_size")

#: Listening endpoints, by ``type``.
ENDPOINTS: Final[Mapping[str, frozenset[str]]] = {
    "tcp": _keys(
        "type", "version", "port", "portrange", "shared", "interface", "backlog", "tls", "user_timeout"
    ),
    "unix": _keys("type", "path", "backlog"),
}
#: The ``tls`` of a listening endpoint.
ENDPOINT_TLS: Final = _keys(
    "key", "certificate", "chain_certificates", "dhparam", "ciphers", "ca_certificates"
)

#: Web transport path services, by ``type``.
WEB_SERVICES: Final[Mapping[str, frozenset[str]]] = {
    "static": _keys("id", "type", "directory", "package", "resource", "options"),
    "websocket": _keys("id", "type", "url", "serializers", "cookie", "auth", "options", "debug"),
    "websocket-reverseproxy": _keys("id", "type", "url", "options", "backend"),
    "longpoll": _keys("id", "type", "options"),
    "resource": _keys("id", "type", "classname", "extra"),
    "redirect": _keys("id", "type", "url"),
    "nodeinfo": _keys("id", "type"),
    "reverseproxy": _keys("id", "type", "host", "port", "path", "forwarded_port", "forwarded_proto"),
    "json": _keys("id", "type", "value", "options"),
    "cgi": _keys("id", "type", "directory", "processor"),
    "wsgi": _keys("id", "type", "module", "object", "minthreads", "maxthreads"),
    "path": _keys("id", "type", "paths"),
    "publisher": _keys("id", "type", "realm", "role", "options"),
    "caller": _keys("id", "type", "realm", "role", "options"),
    "webhook": _keys("id", "type", "realm", "role", "options"),
    "upload": _keys("id", "type", "realm", "role", "directory", "temp_directory", "form_fields", "options"),
}
#: The ``options`` of the path services that have a fixed set.
WEB_SERVICE_OPTIONS: Final[Mapping[str, frozenset[str]]] = {
    "static": _keys("enable_directory_listing", "mime_types", "cache_timeout", "default_file"),
    "longpoll": _keys(
        "debug",
        "debug_transport_id",
        "request_timeout",
        "session_timeout",
        "queue_limit_bytes",
        "queue_limit_messages",
    ),
    "json": _keys("prettify", "allow_cross_origin", "discourage_caching"),
    "publisher": _keys(
        "debug", "key", "secret", "require_tls", "require_ip", "post_body_limit", "timestamp_delta_limit"
    ),
    "caller": _keys(
        "debug", "key", "secret", "require_tls", "require_ip", "post_body_limit", "timestamp_delta_limit"
    ),
    "webhook": _keys(
        "debug", "post_body_limit", "topic", "success_response", "error_response", "github_secret"
    ),
    "upload": _keys("max_file_size", "file_types", "file_permissions"),
}
#: Path services that open a session on a realm under a role (the HTTP bridge).
BRIDGE_SERVICES: Final = ("publisher", "caller", "webhook", "upload")

#: The ``options`` of a WebSocket transport or path service.
WEBSOCKET_OPTIONS: Final = _keys(
    "allowed_origins",
    "allow_null_origin",
    "external_port",
    "enable_hybi10",
    "enable_rfc6455",
    "open_handshake_timeout",
    "close_handshake_timeout",
    "enable_webstatus",
    "validate_utf8",
    "mask_server_frames",
    "require_masked_client_frames",
    "apply_mask",
    "max_frame_size",
    "max_message_size",
    "auto_fragment_size",
    "fail_by_drop",
    "echo_close_codereason",
    "tcp_nodelay",
    "auto_ping_interval",
    "auto_ping_timeout",
    "auto_ping_size",
    "auto_ping_restart_on_any_traffic",
    "enable_flash_policy",
    "flash_policy",
    "compression",
    "require_websocket_subprotocol",
    "show_server_version",
)

#: Authentication methods of a WAMP transport; each maps its ``type`` to its keys.
_DYNAMIC: Final = _keys("type", "authenticator", "authenticator-realm", "authenticator-role")
_FUNCTION: Final = _keys("type", "create", "config")
AUTH_METHODS: Final[Mapping[str, Mapping[str, frozenset[str]]]] = {
    "anonymous": {"static": _keys("type", "realm", "role", "authid"), "dynamic": _DYNAMIC},
    "ticket": {"static": _keys("type", "principals"), "dynamic": _DYNAMIC, "function": _FUNCTION},
    "wampcra": {"static": _keys("type", "users"), "dynamic": _DYNAMIC, "function": _FUNCTION},
    "cryptosign": {
        "static": _keys("type", "principals", "trustroots"),
        "dynamic": _DYNAMIC,
        "function": _FUNCTION,
    },
    "scram": {"static": _keys("type", "principals"), "dynamic": _DYNAMIC, "function": _FUNCTION},
    "tls": {"static": _keys("type", "principals"), "dynamic": _DYNAMIC, "function": _FUNCTION},
    "cookie": {},
}
#: The principals of each static auth method: ``(member holding them, keys of one principal)``.
AUTH_PRINCIPALS: Final[Mapping[str, tuple[str, frozenset[str]]]] = {
    "ticket": ("principals", _keys("ticket", "role")),
    "wampcra": ("users", _keys("secret", "role", "salt", "iterations", "keylen")),
    "cryptosign": ("principals", _keys("authorized_keys", "role", "realm")),
    "scram": ("principals", _keys("kdf", "iterations", "memory", "salt", "stored-key", "server-key", "role")),
}


def suggest(key: str, known: Iterable[str]) -> str:
    """`` (did you mean 'roles'?)`` for a near miss of one of ``known``, else ``""``."""
    # '-' and '_' are confused often ('event_history'): compare with them folded
    folded = {name.replace("-", "_"): name for name in known}
    close = difflib.get_close_matches(key.replace("-", "_"), list(folded), n=1, cutoff=0.7)
    return f" (did you mean {folded[close[0]]!r}?)" if close else ""


def hint(value: object, known: Iterable[str], label: str) -> str:
    """`` (did you mean 'x'?)`` for a near miss of ``known``, else `` (label: a, b, ...)``."""
    names = list(known)
    return (
        suggest(value, names) if isinstance(value, str) else ""
    ) or f" ({label}: {', '.join(names) or 'none'})"


def unknown_key_message(key: str, known: Iterable[str], where: str) -> str:
    """The message for an unknown ``key`` in ``where``: its near miss, else every known key."""
    return f"unknown key {key!r} in {where}{hint(key, sorted(known), 'known keys')}"
