"""The hardened-defaults lint (broker.config.check.lint); the corpus has one case per rule."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from broker.config.check.lint import MAX_SIZE, lint_errors

MINIMAL = Path(__file__).resolve().parent / "configs" / "valid" / "minimal.json"
OPTIONS = "$.workers[0].transports[0].paths.ws.options"


def paths(mutate: Callable[[dict[str, Any]], None]) -> list[str]:
    config = json.loads(MINIMAL.read_text())
    mutate(config)
    return [e.path for e in lint_errors(config)]


def ws_options(config: dict[str, Any]) -> dict[str, Any]:
    options: dict[str, Any] = config["workers"][0]["transports"][0]["paths"]["ws"]["options"]
    return options


def test_the_minimal_config_is_clean() -> None:
    assert paths(lambda c: None) == []


@pytest.mark.parametrize("origin", ["*", "http://*", "https://*:443", "*://*", "http://"])
def test_an_origin_matching_every_host_is_refused(origin: str) -> None:
    assert paths(lambda c: ws_options(c).update(allowed_origins=[origin])) == [
        f"{OPTIONS}.allowed_origins[0]"
    ]


@pytest.mark.parametrize(
    "origin", ["https://*.example.com:443", "http://localhost:*", "http://127.0.0.1:8080"]
)
def test_an_origin_naming_hosts_is_fine(origin: str) -> None:
    assert paths(lambda c: ws_options(c).update(allowed_origins=[origin])) == []


@pytest.mark.parametrize(
    ("key", "value", "flagged"),
    [
        ("max_message_size", 0, True),
        ("max_message_size", None, True),
        ("max_message_size", MAX_SIZE, False),
        ("max_message_size", MAX_SIZE + 1, True),
        ("max_message_size", "big", False),  # a wrong type is crossbar check's to report
        ("auto_ping_timeout", 0, True),
        ("close_handshake_timeout", 0, True),
        ("enable_webstatus", True, True),
    ],
)
def test_websocket_option_values(key: str, value: object, flagged: bool) -> None:
    assert paths(lambda c: ws_options(c).update({key: value})) == ([f"{OPTIONS}.{key}"] if flagged else [])


def test_a_websocket_transport_is_linted_like_a_websocket_path() -> None:
    def mutate(config: dict[str, Any]) -> None:
        transport = {"type": "websocket", "endpoint": {"type": "tcp", "port": 9000}, "max_connections": 100}
        transport["options"] = dict(ws_options(config), allowed_origins=["*"])
        config["workers"][0]["transports"].append(transport)

    assert paths(mutate) == ["$.workers[0].transports[1].options.allowed_origins[0]"]


def test_every_listening_transport_needs_max_connections() -> None:
    def mutate(config: dict[str, Any]) -> None:
        config["workers"][0]["transports"].append(
            {"type": "rawsocket", "endpoint": {"type": "tcp", "port": 9000}}
        )

    assert paths(mutate) == ["$.workers[0].transports[1].max_connections"]


def test_a_null_client_timeout_is_unset() -> None:
    def mutate(config: dict[str, Any]) -> None:
        config["workers"][0]["transports"][0]["options"]["client_timeout"] = None

    config = json.loads(MINIMAL.read_text())
    mutate(config)
    [error] = lint_errors(config)
    assert error.message.startswith("null: idle connections")
