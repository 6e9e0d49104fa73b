"""Unknown keys, unknown types and misplaced values in the crossbar parts of a node config.

Why: crossbar 26.10 silently ignores a misspelt key in a realm, role, store
or auth principal (``rols``, ``event_history``), so the operator's intent is
lost without a word. Every object Broker's node uses is checked here against
the tables in :mod:`broker.config.check.schema`, and each unknown key comes
with its near miss. Values are checked only as far as the walk needs them
(objects where objects go, a known ``type``); ``crossbar check`` still checks
the rest.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from broker.config.check import schema, walk
from broker.config.check.walk import Part
from broker.config.nodeconfig import child_path
from broker.errors import ConfigError


class _Checker:
    def __init__(self) -> None:
        self.errors: list[ConfigError] = []

    def error(self, path: str, message: str) -> None:
        self.errors.append(ConfigError(path, message))

    def keys(self, part: Part, known: Collection[str], where: str) -> None:
        path, value = part
        for key in value:
            if key not in known:
                self.error(child_path(path, str(key)), schema.unknown_key_message(str(key), known, where))

    def object(self, part: Part, key: str, known: Collection[str], where: str) -> Part | None:
        """Check the member ``key`` of ``part`` is an object with ``known`` keys, if present."""
        path, value = part
        if key not in value:
            return None
        found = walk.member(part, key)
        if found is None:
            self.error(child_path(path, key), f"{where} must be an object, not {type(value[key]).__name__}")
            return None
        self.keys(found, known, where)
        return found

    def objects(self, part: Part, key: str) -> list[Part]:
        """The objects in the list at ``key`` of ``part``; anything else there is an error."""
        path, value = part
        if key not in value:
            return []
        items = value[key]
        where = child_path(path, key)
        if not isinstance(items, list):
            self.error(where, f"must be a list of {key}, not {type(items).__name__}")
            return []
        for i, item in enumerate(items):
            if not isinstance(item, Mapping):
                self.error(f"{where}[{i}]", f"each of the {key} must be an object, not {type(item).__name__}")
        return list(walk.objects(items, where))

    def typed(self, part: Part, kinds: Collection[str], what: str) -> str | None:
        """``part``'s ``type`` if it is one of ``kinds``; else an error and ``None``."""
        path, value = part
        kind = value.get("type")
        if kind is None:
            self.error(child_path(path, "type"), f"missing: the {what} type ({', '.join(kinds)})")
            return None
        if not isinstance(kind, str) or kind not in kinds:
            self.error(
                child_path(path, "type"),
                f"unknown {what} type {kind!r}{schema.hint(kind, kinds, 'expected one of')}",
            )
            return None
        return kind

    def named(self, part: Part, what: str) -> None:
        path, value = part
        name = value.get("name")
        if not isinstance(name, str) or not name:
            self.error(child_path(path, "name"), f"every {what} needs a name (a non-empty string)")

    # -- the parts --------------------------------------------------------------------

    def config(self, config: Mapping[str, Any]) -> None:
        root: Part = ("$", config)
        self.keys(root, schema.CONFIG, "the node config")
        controller = self.object(root, "controller", schema.CONTROLLER, "the controller")
        if controller is not None:
            self.object(controller, "options", schema.CONTROLLER_OPTIONS, "the controller's options")
        for worker in self.objects(root, "workers"):
            if self.typed(worker, schema.WORKER_TYPES, "worker") == "router":
                self.router(worker)

    def router(self, router: Part) -> None:
        self.keys(router, schema.ROUTER, "a router worker")
        self.object(router, "options", schema.WORKER_OPTIONS, "a worker's options")
        for realm in self.objects(router, "realms"):
            self.realm(realm)
        for component in self.objects(router, "components"):
            kind = self.typed(component, tuple(schema.COMPONENTS), "component")
            if kind is not None:
                self.keys(component, schema.COMPONENTS[kind], f"a {kind} component")
        for transport in self.objects(router, "transports"):
            self.transport(transport)

    def realm(self, realm: Part) -> None:
        self.keys(realm, schema.REALM, "a realm")
        self.named(realm, "realm")
        self.object(realm, "options", schema.REALM_OPTIONS, "a realm's options")
        for role in self.objects(realm, "roles"):
            self.keys(role, schema.ROLE, "a role")
            self.named(role, "role")
            for permission in self.objects(role, "permissions"):
                self.permission(permission)
        store = self.object(realm, "store", schema.STORE, "a realm store")
        if store is not None:
            self.typed(store, schema.STORE_TYPES, "realm store")
            for key in ("event-history", "call-queue"):
                for entry in self.objects(store, key):
                    self.keys(entry, schema.STORE_ENTRY, f"a store's {key} entry")

    def permission(self, permission: Part) -> None:
        path, value = permission
        self.keys(permission, schema.PERMISSION, "a permission")
        match = value.get("match", "exact")
        if match not in schema.MATCH_POLICIES:
            self.error(
                f"{path}.match",
                f"unknown match policy {match!r}{schema.hint(match, schema.MATCH_POLICIES, 'expected')}",
            )
        self.object(permission, "allow", schema.PERMISSION_ALLOW, "a permission's allow")
        self.object(permission, "disclose", schema.PERMISSION_DISCLOSE, "a permission's disclose")

    def transport(self, transport: Part) -> None:
        kind = str(transport[1].get("type"))
        if kind not in schema.TRANSPORTS:
            return  # universal, mqtt, ...: crossbar check's business
        self.keys(transport, schema.TRANSPORTS[kind], f"a {kind} transport")
        endpoint = walk.member(transport, "endpoint")
        if endpoint is not None:
            endpoint_kind = str(endpoint[1].get("type"))
            if endpoint_kind in schema.ENDPOINTS:
                self.keys(endpoint, schema.ENDPOINTS[endpoint_kind], f"a {endpoint_kind} endpoint")
                self.object(endpoint, "tls", schema.ENDPOINT_TLS, "an endpoint's tls")
        if kind == "web":
            self.object(transport, "options", schema.WEB_TRANSPORT_OPTIONS, "a web transport's options")
            paths = transport[1].get("paths")
            if paths is not None and not isinstance(paths, Mapping):
                self.error(
                    f"{transport[0]}.paths", f"must be an object of path services, not {type(paths).__name__}"
                )
            for service in walk.web_services(transport):
                self.web_service(service)
        elif kind == "websocket":
            self.object(transport, "options", schema.WEBSOCKET_OPTIONS, "WebSocket options")
            self.auth(transport)
        else:
            self.object(transport, "options", schema.RAWSOCKET_OPTIONS, "RawSocket options")
            self.auth(transport)

    def web_service(self, service: Part) -> None:
        kind = self.typed(service, tuple(schema.WEB_SERVICES), "web path service")
        if kind is None:
            return
        self.keys(service, schema.WEB_SERVICES[kind], f"a {kind} path service")
        if kind == "websocket":
            self.object(service, "options", schema.WEBSOCKET_OPTIONS, "WebSocket options")
            self.auth(service)
        elif kind in schema.WEB_SERVICE_OPTIONS:
            self.object(
                service, "options", schema.WEB_SERVICE_OPTIONS[kind], f"a {kind} path service's options"
            )

    def auth(self, endpoint: Part) -> None:
        path, value = endpoint
        if "auth" in value and not isinstance(value["auth"], Mapping):
            self.error(
                f"{path}.auth", f"must be an object of auth methods, not {type(value['auth']).__name__}"
            )
        for key in value["auth"] if isinstance(value.get("auth"), Mapping) else ():
            if key not in schema.AUTH_METHODS:
                self.error(
                    child_path(f"{path}.auth", str(key)),
                    schema.unknown_key_message(str(key), schema.AUTH_METHODS, "auth methods"),
                )
        for method, method_path, config in walk.auth_methods(endpoint):
            types = schema.AUTH_METHODS.get(method)
            if not types:
                continue  # unknown (reported above) or cookie (no keys of its own)
            kind = self.typed((method_path, config), tuple(types), f"{method} auth")
            if kind is None:
                continue
            self.keys((method_path, config), types[kind], f"{kind} {method} auth")
            if kind == "static" and method in schema.AUTH_PRINCIPALS:
                holder, known = schema.AUTH_PRINCIPALS[method]
                for authid, principal_path, principal in walk.members(
                    config.get(holder), f"{method_path}.{holder}"
                ):
                    self.keys((principal_path, principal), known, f"{method} principal {authid!r}")


def structure_errors(config: Mapping[str, Any]) -> list[ConfigError]:
    """Every unknown key or type, and every misplaced value, in the crossbar parts of ``config``."""
    checker = _Checker()
    checker.config(config)
    return checker.errors
