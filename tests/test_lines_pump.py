"""``broker.cli.stream``'s publishing loop with a fake session and a fake input, no reactor running.

The session's publishes stay unanswered until the test answers them, and the
input gives a chunk only when asked: so the test sees that no more than the
window is ever in flight, that the input is not read while the window is full,
and that a refusal stops the loop with what was in flight still counted.
"""

from __future__ import annotations

from typing import Any

from autobahn.wamp.exception import ApplicationError
from twisted.internet import defer

from broker.cli.stream import Publisher, _pump
from broker.core.window import Window


class FakeSession:
    def __init__(self) -> None:
        self.sent: list[tuple[str, Any, defer.Deferred[None]]] = []

    def publish(self, topic: str, payload: Any, options: Any) -> defer.Deferred[None]:
        answer: defer.Deferred[None] = defer.Deferred()
        self.sent.append((topic, payload, answer))
        return answer

    def is_connected(self) -> bool:
        return True

    def unanswered(self) -> list[defer.Deferred[None]]:
        return [d for _, _, d in self.sent if not d.called]


class FakeInput:
    """``read()`` answers only when the test hands it a chunk."""

    def __init__(self) -> None:
        self.asked: list[defer.Deferred[bytes]] = []

    def read(self) -> defer.Deferred[bytes]:
        answer: defer.Deferred[bytes] = defer.Deferred()
        self.asked.append(answer)
        return answer


def start(window: Window) -> tuple[FakeSession, FakeInput, defer.Deferred[None]]:
    session, source = FakeSession(), FakeInput()
    wake: list[defer.Deferred[None]] = []

    def wake_up(_: object = None) -> None:
        waiting, wake[:] = wake[:], []
        for sleeper in waiting:
            sleeper.callback(None)

    publisher = Publisher("public.t", window, 65536)
    running = defer.ensureDeferred(_pump(session, publisher, source, wake, wake_up))  # type: ignore[arg-type]
    return session, source, running


def test_no_more_than_the_window_in_flight_and_no_reading_while_it_is_full() -> None:
    window = Window(4)
    session, source, running = start(window)
    assert len(source.asked) == 1
    source.asked[0].callback(b"".join(b"%d\n" % n for n in range(10)))
    assert [payload for _, payload, _ in session.sent] == [0, 1, 2, 3]
    assert len(source.asked) == 1  # full: the input is not asked for more
    most = 0
    while session.unanswered():
        session.unanswered()[0].callback(None)
        most = max(most, len(session.unanswered()))
    assert most <= 4
    assert [payload for _, payload, _ in session.sent] == list(range(10))
    assert len(source.asked) == 2  # the chunk used up and room again: now the input is read
    source.asked[1].callback(b"")
    assert running.called
    assert window.summary() == "10 lines read, 10 published, 0 refused, 0 skipped (empty)"


def test_a_refusal_stops_sending_and_reading() -> None:
    window = Window(3)
    session, source, running = start(window)
    source.asked[0].callback(b"a\nb\nc\nd\ne\n")
    first, second, third = session.unanswered()
    first.callback(None)
    second.errback(ApplicationError("wamp.error.not_authorized", "no"))
    assert running.called  # the loop returned: nothing more is sent
    assert len(session.sent) == 3
    assert len(source.asked) == 1
    third.callback(None)  # in flight before the refusal: still counted
    assert window.drained
    assert str(window.refusal) == "line 2 refused: wamp.error.not_authorized: no"
    assert window.summary() == "3 lines read, 2 published, 1 refused, 0 skipped (empty)"
