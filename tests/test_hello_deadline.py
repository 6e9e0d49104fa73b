"""The HELLO deadline with a fake clock: no node, no running reactor, no waiting.

The real-node test (tests/test_hardening.py) proves a silent socket is closed;
these pin the timing: exactly ``hello_timeout`` after the WebSocket opens, only
for a session that has not joined, never after the close, and a live
``configure()`` applies to the connections that open after it.
"""

from typing import Any

import pytest
from autobahn.wamp import message
from autobahn.websocket.protocol import WebSocketProtocol
from twisted.internet.task import Clock

from broker.router.crossbar import hello, limits
from broker.router.state import NodeState


class FakeSession:
    """The two attributes of crossbar's ``RouterSession`` the deadline reads."""

    def __init__(self, session_id: int | None = None) -> None:
        self._session_id = session_id
        self._pending_session_id = None


class FakeWebSocket:
    """What the patched ``onOpen``/``onClose`` and the deadline touch on a WAMP WebSocket."""

    peer = "tcp4:192.0.2.1:5000"
    transport = None  # not a socket: the slow-subscriber bound is skipped, with a warning

    def __init__(self) -> None:
        self.state = WebSocketProtocol.STATE_OPEN
        self._session: FakeSession | None = None
        self.sent: list[Any] = []
        self.bailouts: list[tuple[int, str]] = []
        self.original_calls: list[str] = []

    def send(self, msg: Any) -> None:
        self.sent.append(msg)

    def _bailout(self, code: int, reason: str) -> None:
        self.bailouts.append((code, reason))
        self.state = WebSocketProtocol.STATE_CLOSING


def opened(clock: Clock, hello_timeout: float) -> FakeWebSocket:
    """A fake WebSocket just opened through the patched ``onOpen``."""
    ws = FakeWebSocket()
    on_open = hello._make_websocket_on_open(
        NodeState(), clock, hello_timeout, lambda self: self.original_calls.append("onOpen")
    )
    on_open(ws)
    assert ws.original_calls == ["onOpen"]
    return ws


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A private ``_installed``: as after ``install`` in a node, without patching autobahn here."""
    state: dict[str, Any] = {"hello_timeout": 5.0, "max_buffer_bytes": 1 << 20}
    monkeypatch.setattr(limits, "_installed", state)
    return state


def test_deadline_aborts_a_session_that_has_not_joined(installed: dict[str, Any]) -> None:
    clock = Clock()
    ws = opened(clock, 5.0)
    ws._session = FakeSession()  # opening: no HELLO yet
    clock.advance(4.999)
    assert ws.sent == [] and ws.bailouts == []
    clock.advance(0.001)
    reason = "no WAMP session established within 5 s of connecting"
    assert len(ws.sent) == 1
    abort = ws.sent[0]
    assert isinstance(abort, message.Abort)
    assert abort.reason == "broker.error.hello_timeout"
    assert abort.message == reason
    assert ws.bailouts == [(1008, reason)]
    assert clock.getDelayedCalls() == []


def test_deadline_aborts_a_session_still_authenticating(installed: dict[str, Any]) -> None:
    clock = Clock()
    ws = opened(clock, 5.0)
    ws._session = FakeSession()
    ws._session._pending_session_id = 42  # type: ignore[assignment]  # HELLO sent, CHALLENGE unanswered
    clock.advance(5)
    assert ws.bailouts == [(1008, "no WAMP session established within 5 s of connecting")]


def test_deadline_leaves_a_joined_session_alone(installed: dict[str, Any]) -> None:
    clock = Clock()
    ws = opened(clock, 5.0)
    ws._session = FakeSession(session_id=7)
    clock.advance(5)
    assert ws.sent == [] and ws.bailouts == []
    assert ws.state == WebSocketProtocol.STATE_OPEN


def test_deadline_leaves_a_closing_websocket_alone(installed: dict[str, Any]) -> None:
    clock = Clock()
    ws = opened(clock, 5.0)
    ws.state = WebSocketProtocol.STATE_CLOSING
    clock.advance(5)
    assert ws.sent == [] and ws.bailouts == []


def test_close_cancels_the_deadline(installed: dict[str, Any]) -> None:
    clock = Clock()
    ws = opened(clock, 5.0)
    closes: list[tuple[bool, int, str | None]] = []
    on_close = hello._make_websocket_on_close(lambda self, *args: closes.append(args))
    on_close(ws, True, 1000, "bye")
    assert closes == [(True, 1000, "bye")]
    assert clock.getDelayedCalls() == []
    clock.advance(10)
    assert ws.sent == [] and ws.bailouts == []
    on_close(ws, True, 1000, "again")  # a second close (deadline no longer active) is harmless
    assert len(closes) == 2


def test_configure_changes_the_deadline_for_new_connections(installed: dict[str, Any]) -> None:
    clock = Clock()
    before = opened(clock, 5.0)
    limits.configure(hello_timeout=2.0, max_buffer_bytes=1 << 20)
    assert installed["hello_timeout"] == 2.0
    after = opened(clock, 5.0)
    clock.advance(2)
    assert after.bailouts == [(1008, "no WAMP session established within 2 s of connecting")]
    assert before.bailouts == []  # opened under the old deadline: keeps it
    clock.advance(3)
    assert before.bailouts == [(1008, "no WAMP session established within 5 s of connecting")]


def test_configure_before_install_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "_installed", {})
    limits.configure(hello_timeout=2.0, max_buffer_bytes=1)
    assert limits._installed == {}
