"""Dangling references in a node config (broker.config.check.references)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from broker.config.check import references
from broker.config.check.references import reference_errors

MINIMAL = Path(__file__).resolve().parent / "configs" / "valid" / "minimal.json"
WS = "$.workers[0].transports[0].paths.ws"


def any_class(classname: str, pythonpath: Sequence[Path]) -> str | None:
    return None


def errors(
    mutate: Callable[[dict[str, Any]], None], find_class: references.ClassFinder = any_class
) -> list[tuple[str, str]]:
    config = json.loads(MINIMAL.read_text())
    mutate(config)
    return [(e.path, e.message) for e in reference_errors(config, Path("/etc/node"), find_class)]


def test_the_procedure_names_are_the_ones_the_component_registers() -> None:
    from broker.router import component

    assert references.AUTHORIZE_PROCEDURE == component.AUTHORIZE_PROCEDURE
    assert references.AUTHENTICATE_PROCEDURE == component.AUTHENTICATE_PROCEDURE


def test_the_minimal_config_is_clean() -> None:
    assert errors(lambda c: None) == []


def test_classes_are_looked_up_on_the_workers_pythonpath() -> None:
    asked: list[tuple[str, list[Path]]] = []

    def find_class(classname: str, pythonpath: Sequence[Path]) -> str | None:
        asked.append((classname, list(pythonpath)))
        return "gone"

    def mutate(config: dict[str, Any]) -> None:
        config["workers"][0]["options"] = {"pythonpath": ["../app"]}

    assert errors(mutate, find_class) == [
        (
            "$.workers[0].components[0].classname",
            "component class 'broker.router.component.BrokerComponent' cannot be loaded: gone",
        ),
        (
            "$.workers[0].transports[0].paths.health.classname",
            "web resource class 'broker.router.health.HealthResource' cannot be loaded: gone",
        ),
    ]
    assert [path for _, path in asked] == [[Path("/etc/node/../app")]] * 2


def test_a_component_role_must_be_defined_in_its_realm() -> None:
    def mutate(config: dict[str, Any]) -> None:
        config["workers"][0]["components"][0]["role"] = "brokre"

    assert errors(mutate) == [
        (
            "$.workers[0].components[0].role",
            "role 'brokre' is not defined in realm 'app' (did you mean 'broker'?)",
        )
    ]


def test_a_component_needs_a_realm() -> None:
    def mutate(config: dict[str, Any]) -> None:
        del config["workers"][0]["components"][0]["realm"]

    assert (
        "$.workers[0].components[0].realm",
        "missing: the realm to join (this router's realms: app)",
    ) in errors(mutate)


def test_a_principal_with_a_realm_needs_the_role_in_that_realm() -> None:
    def mutate(config: dict[str, Any]) -> None:
        config["workers"][0]["realms"].append({"name": "other", "roles": [{"name": "guest"}]})
        ws = config["workers"][0]["transports"][0]["paths"]["ws"]
        ws["auth"]["anonymous"] = {"type": "static", "realm": "other", "role": "anonymous"}

    assert errors(mutate) == [
        (f"{WS}.auth.anonymous.role", "role 'anonymous' is not defined in realm 'other' (roles: guest)")
    ]


def test_an_authenticator_realm_must_be_one_broker_joins() -> None:
    def mutate(config: dict[str, Any]) -> None:
        config["workers"][0]["realms"].append({"name": "other"})
        ticket = config["workers"][0]["transports"][0]["paths"]["ws"]["auth"]["ticket"]
        ticket["authenticator-realm"] = "other"

    assert errors(mutate) == [
        (f'{WS}.auth.ticket["authenticator-realm"]', "Broker's component does not join realm 'other'")
    ]


def test_http_bridge_services_need_a_role_of_their_realm_and_a_key_with_its_secret() -> None:
    def mutate(config: dict[str, Any]) -> None:
        paths = config["workers"][0]["transports"][0]["paths"]
        paths["call"] = {"type": "caller", "realm": "app", "role": "nobody", "options": {"secret": "s"}}

    assert errors(mutate) == [
        (
            "$.workers[0].transports[0].paths.call.role",
            "role 'nobody' is not defined in realm 'app' (roles: anonymous, backend, broker, user)",
        ),
        (
            "$.workers[0].transports[0].paths.call.options.secret",
            "a caller secret needs its key: without one crossbar refuses every request (401)",
        ),
    ]


def test_a_realm_defined_twice_is_reported_at_the_second() -> None:
    def mutate(config: dict[str, Any]) -> None:
        config["workers"][0]["realms"].append({"name": "app"})

    assert errors(mutate)[0] == (
        "$.workers[0].realms[1].name",
        "realm 'app' is defined twice (also at $.workers[0].realms[0])",
    )
