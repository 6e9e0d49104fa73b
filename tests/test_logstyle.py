"""``broker.router.logstyle``: log arguments keep their words, lose their colours, cost nothing unlogged."""

from __future__ import annotations

import autobahn.util
import autobahn.wamp.websocket
import autobahn.websocket.protocol
import pytest
from autobahn.util import hlval
from autobahn.websocket.protocol import WebSocketProtocol
from twisted.logger import formatEvent

from broker.router import logstyle


@pytest.fixture
def as_autobahn_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    """autobahn as imported (click present), restored after the test."""
    monkeypatch.setattr(autobahn.util, "_HAS_CLICK", True)
    for module in logstyle.SEND_PATH:
        for name in ("hltype", "hlval"):
            if hasattr(module, name):
                monkeypatch.setattr(module, name, getattr(autobahn.util, name))


@pytest.mark.usefixtures("as_autobahn_starts")
def test_colours_are_off_after_install() -> None:
    assert "\x1b[" in hlval("tcp4:127.0.0.1:5000", color="red", bold=True)
    logstyle.install()
    assert hlval("tcp4:127.0.0.1:5000", color="red", bold=True) == "tcp4:127.0.0.1:5000"


@pytest.mark.usefixtures("as_autobahn_starts")
def test_send_path_log_lines_read_the_same_but_render_only_when_formatted() -> None:
    logstyle.install()
    protocol = autobahn.websocket.protocol
    assert protocol.hltype is logstyle.hltype
    assert protocol.hlval is logstyle.hlval
    assert autobahn.wamp.websocket.hlval is logstyle.hlval
    assert not hasattr(autobahn.wamp.websocket, "hltype")  # nothing added a module did not import

    rendered: list[object] = []

    def render(value: object) -> str:
        rendered.append(value)
        return str(value)

    lazy = logstyle.Lazy(render, 42)
    assert rendered == []  # built, not rendered: what a dropped debug line costs
    event = {
        "log_format": "{func} sent {data_len} bytes for peer {peer} ({n:>4})",
        "func": protocol.hltype(WebSocketProtocol.sendData),
        "data_len": protocol.hlval(120),
        "peer": protocol.hlval("tcp4:127.0.0.1:5000"),
        "n": lazy,
    }
    assert formatEvent(event) == (
        "<autobahn.websocket.protocol.WebSocketProtocol.sendData> sent 120 bytes "
        "for peer tcp4:127.0.0.1:5000 (  42)"
    )
    assert rendered == [42]
    assert protocol.hlval("x", color="red", bold=True) == "x"
