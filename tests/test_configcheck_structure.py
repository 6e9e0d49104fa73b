"""Unknown keys and types in the crossbar parts of a node config (broker.config.check.structure)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from broker.config.check.structure import structure_errors

MINIMAL = Path(__file__).resolve().parent / "configs" / "valid" / "minimal.json"
WS = "$.workers[0].transports[0].paths.ws"


def errors(mutate: Callable[[dict[str, Any]], None]) -> list[tuple[str, str]]:
    config = json.loads(MINIMAL.read_text())
    mutate(config)
    return [(e.path, e.message) for e in structure_errors(config)]


def ws(config: dict[str, Any]) -> dict[str, Any]:
    service: dict[str, Any] = config["workers"][0]["transports"][0]["paths"]["ws"]
    return service


def test_the_minimal_config_is_clean() -> None:
    assert errors(lambda c: None) == []


def test_an_unknown_top_level_key_lists_the_known_ones_when_nothing_is_close() -> None:
    assert errors(lambda c: c.update(colour=1)) == [
        (
            "$.colour",
            "unknown key 'colour' in the node config (known keys: $schema, controller, version, workers)",
        )
    ]


def test_an_unknown_worker_type_is_named_with_its_near_miss() -> None:
    assert errors(lambda c: c["workers"][0].update(type="ruoter")) == [
        ("$.workers[0].type", "unknown worker type 'ruoter' (did you mean 'router'?)")
    ]


def test_a_key_needing_quotes_is_spelled_as_child_path_does() -> None:
    assert errors(lambda c: c["workers"][0]["realms"][0].update({"event history": []})) == [
        (
            '$.workers[0].realms[0]["event history"]',
            "unknown key 'event history' in a realm (known keys: id, inventory, name, options, "
            "rlinks, roles, store)",
        )
    ]


def test_misplaced_values_are_reported_where_the_walk_needs_objects() -> None:
    def mutate(config: dict[str, Any]) -> None:
        config["workers"][0]["realms"].append("app2")
        config["workers"][0]["components"] = {}
        ws(config)["auth"] = []

    assert errors(mutate) == [
        ("$.workers[0].realms[1]", "each of the realms must be an object, not str"),
        ("$.workers[0].components", "must be a list of components, not dict"),
        (f"{WS}.auth", "must be an object of auth methods, not list"),
    ]


def test_realms_and_roles_need_names() -> None:
    def mutate(config: dict[str, Any]) -> None:
        del config["workers"][0]["realms"][0]["roles"][0]["name"]

    assert errors(mutate) == [
        ("$.workers[0].realms[0].roles[0].name", "every role needs a name (a non-empty string)")
    ]


def test_permissions_allow_and_match_are_checked() -> None:
    def mutate(config: dict[str, Any]) -> None:
        permission = config["workers"][0]["realms"][0]["roles"][3]["permissions"][0]
        permission["match"] = "prefx"
        permission["allow"]["subcribe"] = True

    where = "$.workers[0].realms[0].roles[3].permissions[0]"
    assert errors(mutate) == [
        (f"{where}.match", "unknown match policy 'prefx' (did you mean 'prefix'?)"),
        (
            f"{where}.allow.subcribe",
            "unknown key 'subcribe' in a permission's allow (did you mean 'subscribe'?)",
        ),
    ]


def test_auth_methods_their_types_and_principals_are_checked() -> None:
    def mutate(config: dict[str, Any]) -> None:
        auth = ws(config)["auth"]
        auth["tiket"] = {"type": "dynamic", "authenticator": "broker.authenticate"}
        auth["wampcra"]["users"]["backend"]["salty"] = "x"
        auth["anonymous"]["type"] = "statik"

    assert errors(mutate) == [
        (
            f"{WS}.auth.tiket",
            "unknown key 'tiket' in auth methods (did you mean 'ticket'?)",
        ),
        (f"{WS}.auth.anonymous.type", "unknown anonymous auth type 'statik' (did you mean 'static'?)"),
        (
            f"{WS}.auth.wampcra.users.backend.salty",
            "unknown key 'salty' in wampcra principal 'backend' (did you mean 'salt'?)",
        ),
    ]


@pytest.mark.parametrize(
    ("where", "key", "message"),
    [
        ("endpoint", "interfase", "unknown key 'interfase' in a tcp endpoint (did you mean 'interface'?)"),
        ("options", "client_timout", "unknown key 'client_timout' in a web transport's options"),
    ],
)
def test_web_transport_endpoint_and_options(where: str, key: str, message: str) -> None:
    def mutate(config: dict[str, Any]) -> None:
        config["workers"][0]["transports"][0][where][key] = 1

    [(path, found)] = errors(mutate)
    assert path == f"$.workers[0].transports[0].{where}.{key}"
    assert found.startswith(message)


def test_websocket_and_rawsocket_transports_are_checked_too() -> None:
    def mutate(config: dict[str, Any]) -> None:
        transports = config["workers"][0]["transports"]
        transports.append({"type": "websocket", "endpoint": {"type": "tcp", "port": 9000}, "option": {}})
        transports.append(
            {"type": "rawsocket", "endpoint": {"type": "tcp", "port": 9001}, "options": {"x": 1}}
        )

    assert errors(mutate) == [
        (
            "$.workers[0].transports[1].option",
            "unknown key 'option' in a websocket transport (did you mean 'options'?)",
        ),
        (
            "$.workers[0].transports[2].options.x",
            "unknown key 'x' in RawSocket options (known keys: max_message_size)",
        ),
    ]


def test_nested_path_services_are_walked() -> None:
    def mutate(config: dict[str, Any]) -> None:
        paths = config["workers"][0]["transports"][0]["paths"]
        paths["app"] = {"type": "path", "paths": {"files": {"type": "static", "directry": "x"}}}

    [(path, message)] = errors(mutate)
    assert path == "$.workers[0].transports[0].paths.app.paths.files.directry"
    assert message == "unknown key 'directry' in a static path service (did you mean 'directory'?)"
