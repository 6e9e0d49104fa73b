"""Broker's settings and the secrets, as broker check sees them (broker.config.check.settings)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from broker.config.check.settings import secret_errors, settings_errors

MINIMAL = Path(__file__).resolve().parent / "configs" / "valid" / "minimal.json"
EXTRA = "$.workers[0].components[0].extra"


def minimal() -> dict[str, Any]:
    config: dict[str, Any] = json.loads(MINIMAL.read_text())
    return config


def test_valid_settings_need_no_secret_values() -> None:
    assert settings_errors(minimal()) == []


def test_the_first_settings_error_is_reported_with_its_path() -> None:
    config = minimal()
    config["workers"][0]["components"][0]["extra"]["hello_timeout"] = 0
    [error] = settings_errors(config)
    assert (error.path, error.message) == (
        f"{EXTRA}.hello_timeout",
        "must be a number of seconds in (0, 300], not 0",
    )


def test_crossbars_cbdir_in_extra_is_not_an_unknown_setting() -> None:
    config = minimal()
    config["workers"][0]["components"][0]["extra"]["cbdir"] = "/node"
    assert settings_errors(config) == []


def test_a_config_without_brokers_component_says_so() -> None:
    config = minimal()
    config["workers"][0]["components"] = []
    [error] = settings_errors(config)
    assert error.path == "$.workers"
    assert "no router component with classname 'broker.router.component.BrokerComponent'" in error.message


def test_each_unset_secret_is_reported_where_it_is_referenced() -> None:
    errors = secret_errors(minimal(), {"BROKER_TOKEN_SECRET"}.__contains__)
    assert [(e.path, e.message) for e in errors] == [
        (
            "$.workers[0].transports[0].paths.ws.auth.wampcra.users.backend.secret",
            "environment variable BROKER_BACKEND_SECRET is not set",
        )
    ]
