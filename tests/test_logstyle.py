"""``broker.router.crossbar.logstyle``: log arguments keep their words, lose their colours, cost
nothing unlogged."""

from __future__ import annotations

import importlib
from typing import Any

import autobahn.util
import crossbar._util
import pytest
from autobahn.websocket.protocol import WebSocketProtocol
from twisted.logger import formatEvent

from broker.router.crossbar import logstyle


@pytest.fixture
def as_started(monkeypatch: pytest.MonkeyPatch) -> None:
    """autobahn and crossbar as imported (click present), restored after the test."""
    monkeypatch.setattr(autobahn.util, "_HAS_CLICK", True)
    monkeypatch.setattr(crossbar._util, "hl", crossbar._util.hl)
    for name, helpers in logstyle.HOT_PATH.items():
        module = importlib.import_module(name)
        for helper in helpers:
            if hasattr(module, helper):
                monkeypatch.setattr(module, helper, getattr(module, helper))


def hot(module: str) -> Any:
    return importlib.import_module(module)


@pytest.mark.usefixtures("as_started")
def test_colours_are_off_after_install() -> None:
    assert "\x1b[" in autobahn.util.hlval("tcp4:127.0.0.1:5000", color="red", bold=True)
    assert "\x1b[" in crossbar._util.hlid("app")
    logstyle.install()
    assert autobahn.util.hlval("tcp4:127.0.0.1:5000", color="red", bold=True) == "tcp4:127.0.0.1:5000"
    assert crossbar._util.hlid("app") == "app"
    assert crossbar._util.hlflag(True, "GRANTED", "DENIED") == "GRANTED"


@pytest.mark.usefixtures("as_started")
def test_hot_path_modules_get_the_plain_helpers_they_imported_and_no_others() -> None:
    logstyle.install()
    for name, helpers in logstyle.HOT_PATH.items():
        for helper, replacement in helpers.items():
            assert getattr(hot(name), helper) is replacement, (name, helper)
    assert not hasattr(hot("autobahn.wamp.websocket"), "hltype")


@pytest.mark.usefixtures("as_started")
def test_log_lines_read_the_same_but_render_only_when_formatted() -> None:
    logstyle.install()
    protocol, router, broker = (
        hot("autobahn.websocket.protocol"),
        hot("crossbar.router.router"),
        hot("crossbar.router.broker"),
    )
    rendered: list[object] = []

    def render(value: object) -> str:
        rendered.append(value)
        return str(value)

    lazy = logstyle.Lazy(render, 42)
    assert rendered == []  # built, not rendered: what a dropped debug line costs
    event = {
        "log_format": "{func} sent {data_len} bytes for peer {peer} ({n:>4}) {auth} {flag} {none}",
        "func": protocol.hltype(WebSocketProtocol.sendData),
        "data_len": protocol.hlval(120),
        "peer": protocol.hlval("tcp4:127.0.0.1:5000"),
        "n": lazy,
        "auth": router.pformat({"allow": True}),
        "flag": broker.hlflag(False, "GRANTED", "DENIED"),
        "none": broker.hltype(WebSocketProtocol.sendData, render=False),
    }
    assert formatEvent(event) == (
        "<autobahn.websocket.protocol.WebSocketProtocol.sendData> sent 120 bytes "
        "for peer tcp4:127.0.0.1:5000 (  42) {'allow': True} DENIED "
    )
    assert rendered == [42]
    assert router.hlid("app") == "app"
