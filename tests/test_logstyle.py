"""``broker.router.logstyle``: autobahn's log arguments keep their words and lose their colours."""

from __future__ import annotations

import autobahn.util
import pytest
from autobahn.util import hltype, hlval
from autobahn.websocket.protocol import WebSocketProtocol

from broker.router import logstyle


def test_log_arguments_are_plain_text_after_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(autobahn.util, "_HAS_CLICK", True)  # as autobahn starts, click installed
    assert "\x1b[" in hlval("tcp4:127.0.0.1:5000", color="red", bold=True)
    logstyle.install()
    assert hlval("tcp4:127.0.0.1:5000", color="red", bold=True) == "tcp4:127.0.0.1:5000"
    assert hltype(WebSocketProtocol.sendData) == "<autobahn.websocket.protocol.WebSocketProtocol.sendData>"
