"""Every name in a node config that refers to something else must find it.

Why: crossbar 26.10's ``check`` follows no reference. A component or HTTP
bridge on an unknown realm fails at start with ``KeyError: 'nosuchrealm'``; a
principal mapped to a missing role passes start and fails each login with
``wamp.error.no_such_role``; an authorizer name nobody registers refuses
every action; a ``classname`` that does not exist is a traceback at start.
Checked here: realms and roles (components, auth principals, HTTP bridge
services, Broker's grants), the authorizer and authenticator procedures Broker
registers, component and web resource classes, HTTP bridge keys and secrets.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from broker.config.check import schema, walk
from broker.config.check.walk import Part
from broker.config.nodeconfig import child_path
from broker.config.settings import COMPONENT_CLASS
from broker.errors import ConfigError

#: What Broker's component registers (``broker.router.component``, which loads Twisted).
AUTHORIZE_PROCEDURE: Final = "broker.authorize"
AUTHENTICATE_PROCEDURE: Final = "broker.authenticate"

#: ``find_class(classname, pythonpath)``: why the class cannot be loaded, or ``None``.
ClassFinder = Callable[[str, Sequence[Path]], str | None]


def _names(parts: Iterator[Part], what: str, errors: list[ConfigError]) -> dict[str, Part]:
    """The parts by ``name``; a name used twice is an error (crossbar keeps the last silently)."""
    found: dict[str, Part] = {}
    for path, value in parts:
        name = value.get("name")
        if not isinstance(name, str):
            continue
        if name in found:
            errors.append(
                ConfigError(f"{path}.name", f"{what} {name!r} is defined twice (also at {found[name][0]})")
            )
        found[name] = (path, value)
    return found


class _Router:
    """One router worker's realms and roles, and the errors found against them."""

    def __init__(
        self, router: Part, config_dir: Path, find_class: ClassFinder, errors: list[ConfigError]
    ) -> None:
        self.errors = errors
        self.find_class = find_class
        self.realms = _names(walk.realms(router), "realm", errors)
        self.roles = {
            name: _names(walk.roles(realm), f"in realm {name!r}, role", errors)
            for name, realm in self.realms.items()
        }
        options = router[1].get("options")
        pythonpath = options.get("pythonpath") if isinstance(options, Mapping) else None
        self.pythonpath = [config_dir / p for p in pythonpath or [] if isinstance(p, str)]

    def error(self, path: str, message: str) -> None:
        self.errors.append(ConfigError(path, message))

    def realm(self, part: Part, key: str = "realm", required: bool = True) -> str | None:
        """The realm ``part`` names at ``key``, if it is defined; else an error and ``None``."""
        path, value = part
        name = value.get(key)
        if name is None and not required:
            return None
        if not isinstance(name, str) or name not in self.realms:
            known = schema.hint(name, sorted(self.realms), "this router's realms")
            what = f"no realm {name!r}" if name is not None else "missing: the realm to join"
            self.error(child_path(path, key), f"{what}{known}")
            return None
        return name

    def role(self, path: str, role: object, realm: str | None) -> None:
        """``role`` must be defined in ``realm``, or (no realm) in one of this router's realms."""
        realms = [realm] if realm is not None else sorted(self.roles)
        if isinstance(role, str) and any(role in self.roles.get(r, {}) for r in realms):
            return
        known = sorted({name for r in realms for name in self.roles.get(r, {})})
        where = f"realm {realm!r}" if realm is not None else "any realm of this router"
        self.error(path, f"role {role!r} is not defined in {where}{schema.hint(role, known, 'roles')}")

    def classname(self, part: Part, what: str) -> None:
        path, value = part
        classname = value.get("classname")
        if isinstance(classname, str):
            reason = self.find_class(classname, self.pythonpath)
            if reason is not None:
                self.error(f"{path}.classname", f"{what} class {classname!r} cannot be loaded: {reason}")


def _procedure(path: str, name: object, expected: str, what: str, errors: list[ConfigError]) -> None:
    """``name`` must be the procedure ``expected`` (which Broker's component registers)."""
    if name is None:
        errors.append(ConfigError(path, f"missing: the {what} procedure; use {expected!r}"))
    elif name != expected:
        errors.append(
            ConfigError(path, f"{what} {name!r} is not a procedure Broker registers: use {expected!r}")
        )


def _broker_realms(router: Part) -> set[str]:
    return {
        str(component.get("realm"))
        for _, component in walk.components(router)
        if component.get("classname") == COMPONENT_CLASS
    }


def _check_auth(router: _Router, endpoint: Part, broker_realms: set[str]) -> None:
    for method, path, config in walk.auth_methods(endpoint):
        if config.get("type") == "dynamic":
            _procedure(
                f"{path}.authenticator",
                config.get("authenticator"),
                AUTHENTICATE_PROCEDURE,
                "authenticator",
                router.errors,
            )
            realm = router.realm((path, config), "authenticator-realm", required=False)
            if realm is not None and realm not in broker_realms:
                router.error(
                    child_path(path, "authenticator-realm"),
                    f"Broker's component does not join realm {realm!r}",
                )
        elif config.get("type") == "static":
            realm = router.realm((path, config), required=False)
            if "role" in config:
                router.role(f"{path}.role", config["role"], realm)
            holder = schema.AUTH_PRINCIPALS.get(method, ("", frozenset()))[0]
            for _, principal_path, principal in walk.members(config.get(holder), f"{path}.{holder}"):
                principal_realm = router.realm((principal_path, principal), required=False) or realm
                if "role" in principal:
                    router.role(f"{principal_path}.role", principal["role"], principal_realm)


def _check_web(router: _Router, transport: Part) -> None:
    for service in walk.web_services(transport):
        path, value = service
        kind = value.get("type")
        if kind == "resource":
            router.classname(service, "web resource")
        elif kind in schema.BRIDGE_SERVICES:
            realm = router.realm(service)
            if realm is not None and "role" in value:
                router.role(f"{path}.role", value["role"], realm)
            options = value.get("options")
            if isinstance(options, Mapping) and ("key" in options) != ("secret" in options):
                if "key" in options:
                    router.error(
                        f"{path}.options.key",
                        f"a {kind} key needs its secret: without one crossbar accepts unsigned requests",
                    )
                else:
                    router.error(
                        f"{path}.options.secret",
                        f"a {kind} secret needs its key: without one crossbar refuses every request (401)",
                    )


def _check_roles(router: _Router, broker_realms: set[str]) -> None:
    for realm_name, roles in router.roles.items():
        for role_path, role in roles.values():
            if "authorizer" not in role:
                continue
            path = f"{role_path}.authorizer"
            _procedure(path, role["authorizer"], AUTHORIZE_PROCEDURE, "authorizer", router.errors)
            if role["authorizer"] == AUTHORIZE_PROCEDURE and realm_name not in broker_realms:
                router.error(
                    path,
                    f"Broker's component does not join realm {realm_name!r}, so nobody answers "
                    f"{AUTHORIZE_PROCEDURE} there",
                )


def _check_components(router: _Router, router_part: Part) -> None:
    for component in walk.components(router_part):
        path, value = component
        realm = router.realm(component)
        if realm is not None and "role" in value:
            router.role(f"{path}.role", value["role"], realm)
        extra = value.get("extra")
        grants = extra.get("grants") if isinstance(extra, Mapping) else None
        if realm is not None and value.get("classname") == COMPONENT_CLASS and isinstance(grants, Mapping):
            # Broker's grants are per role: a role no realm defines is a grant nobody gets
            for role in grants:
                router.role(child_path(f"{path}.extra.grants", str(role)), role, realm)
        router.classname(component, "component")


def reference_errors(
    config: Mapping[str, Any], config_dir: Path, find_class: ClassFinder
) -> list[ConfigError]:
    """Every dangling reference in ``config``; ``find_class`` decides whether a class exists."""
    errors: list[ConfigError] = []
    for router_part in walk.routers(config):
        router = _Router(router_part, config_dir, find_class, errors)
        broker_realms = _broker_realms(router_part)
        _check_roles(router, broker_realms)
        _check_components(router, router_part)
        for endpoint in walk.wamp_endpoints(router_part):
            _check_auth(router, endpoint, broker_realms)
        for transport in walk.transports(router_part):
            _check_web(router, transport)
    return errors
