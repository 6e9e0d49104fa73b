"""Finding the parts of a node config, each with its JSON path.

Why: the key check, the reference check and the lint all visit the same
parts (router workers, realms, roles, transports, web path services,
WebSocket endpoints, auth methods). Walking them once here keeps those
modules to their own rules and the paths spelled one way. Every function
tolerates a malformed config: a part of the wrong JSON type is skipped
(:mod:`broker.config.check.structure` reports it).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from broker.config.nodeconfig import child_path

#: A part of the config: ``(json_path, object)``.
Part = tuple[str, Mapping[str, Any]]


def objects(value: object, path: str) -> Iterator[Part]:
    """The objects in the list ``value``, with their paths."""
    if isinstance(value, list):
        for i, item in enumerate(value):
            if isinstance(item, Mapping):
                yield f"{path}[{i}]", item


def members(value: object, path: str) -> Iterator[tuple[str, str, Mapping[str, Any]]]:
    """The object members of the object ``value``: ``(key, path, member)``."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(item, Mapping):
                yield str(key), child_path(path, str(key)), item


def member(part: Part, key: str) -> Part | None:
    """The object at ``key`` of ``part``, if it is one."""
    path, value = part
    item = value.get(key)
    return (child_path(path, key), item) if isinstance(item, Mapping) else None


def routers(config: Mapping[str, Any]) -> Iterator[Part]:
    """The router workers."""
    for path, worker in objects(config.get("workers"), "$.workers"):
        if worker.get("type") == "router":
            yield path, worker


def realms(router: Part) -> Iterator[Part]:
    """A router's realms."""
    yield from objects(router[1].get("realms"), f"{router[0]}.realms")


def roles(realm: Part) -> Iterator[Part]:
    """A realm's roles."""
    yield from objects(realm[1].get("roles"), f"{realm[0]}.roles")


def components(router: Part) -> Iterator[Part]:
    """A router's embedded components."""
    yield from objects(router[1].get("components"), f"{router[0]}.components")


def transports(router: Part) -> Iterator[Part]:
    """A router's listening transports."""
    yield from objects(router[1].get("transports"), f"{router[0]}.transports")


def web_services(transport: Part) -> Iterator[Part]:
    """A web transport's path services, those under ``path`` services included."""

    def walk(paths: object, path: str) -> Iterator[Part]:
        for _, service_path, service in members(paths, path):
            yield service_path, service
            if service.get("type") == "path":
                yield from walk(service.get("paths"), f"{service_path}.paths")

    if transport[1].get("type") == "web":
        yield from walk(transport[1].get("paths"), f"{transport[0]}.paths")


def wamp_endpoints(router: Part) -> Iterator[Part]:
    """Where WAMP sessions arrive: WebSocket and RawSocket transports, WebSocket path services."""
    for transport in transports(router):
        if transport[1].get("type") in ("websocket", "rawsocket"):
            yield transport
        for service in web_services(transport):
            if service[1].get("type") == "websocket":
                yield service


def auth_methods(endpoint: Part) -> Iterator[tuple[str, str, Mapping[str, Any]]]:
    """An endpoint's auth methods: ``(method, path, config)``."""
    yield from members(endpoint[1].get("auth"), f"{endpoint[0]}.auth")
