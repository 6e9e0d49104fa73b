"""``broker.cli.stream``'s publishing loop with a fake connection and a fake input, no reactor running.

The publishes stay unanswered until the test answers them, and the input
gives a chunk only when asked: so the test sees that no more than the
window is ever in flight, that the input is not read while the window is
full, that each refill goes out as one batch, and that a refusal stops the
loop with what was in flight still counted.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet import defer

from broker.cli.stream import Publisher, Pump
from broker.core.window import Window


class FakeInput:
    """``read()`` answers only when the test hands it a chunk."""

    def __init__(self) -> None:
        self.asked: list[defer.Deferred[bytes]] = []

    def read(self) -> defer.Deferred[bytes]:
        answer: defer.Deferred[bytes] = defer.Deferred()
        self.asked.append(answer)
        return answer


class Sent:
    """The batches the pump wrote, decoded: each message ``[16, request, options, topic, [payload]]``."""

    def __init__(self) -> None:
        self.batches: list[list[list[Any]]] = []

    def __call__(self, messages: list[bytes]) -> None:
        self.batches.append([json.loads(message) for message in messages])

    @property
    def messages(self) -> list[list[Any]]:
        return [message for batch in self.batches for message in batch]

    def payloads(self) -> list[Any]:
        return [message[4][0] for message in self.messages]


def start(window: Window) -> tuple[Pump, Sent, FakeInput]:
    sent, source = Sent(), FakeInput()
    pump = Pump(Publisher("public.t", window, 65536), source, sent)  # type: ignore[arg-type]
    pump.step()
    return pump, sent, source


def answer(pump: Pump, requests: list[int], error: tuple[str, str] | None = None) -> None:
    """What the channel does for one read holding these answers."""
    for request in requests:
        pump.answered(request, error)
    pump.step()


def test_each_message_is_an_acknowledged_publish_of_the_line() -> None:
    _, sent, source = start(Window(10))
    source.asked[0].callback(b'{"n": 1}\nplain text\n"x"\n')
    assert sent.messages == [
        [16, 1, {"acknowledge": True}, "public.t", [{"n": 1}]],
        [16, 2, {"acknowledge": True}, "public.t", [{"line": "plain text"}]],
        [16, 3, {"acknowledge": True}, "public.t", ["x"]],
    ]
    assert len(sent.batches) == 1  # one write for what one chunk brought


def test_no_more_than_the_window_in_flight_and_no_reading_while_it_is_full() -> None:
    window = Window(4)
    pump, sent, source = start(window)
    assert len(source.asked) == 1
    source.asked[0].callback(b"".join(b"%d\n" % n for n in range(10)))
    assert sent.payloads() == [0, 1, 2, 3]
    assert len(source.asked) == 1  # full: the input is not asked for more
    most = 0
    while pump.lines:
        answer(pump, [min(pump.lines)])
        most = max(most, len(pump.lines))
    assert most <= 4
    assert sent.payloads() == list(range(10))
    assert len(source.asked) == 2  # the chunk used up and room again: now the input is read
    source.asked[1].callback(b"")
    done = pump.finished()
    assert done.called
    assert window.summary() == "10 lines read, 10 published, 0 refused, 0 skipped (empty)"


def test_answers_of_one_read_refill_the_window_in_one_batch() -> None:
    pump, sent, source = start(Window(3))
    source.asked[0].callback(b"a\nb\nc\nd\ne\nf\n")
    assert len(sent.batches) == 1
    answer(pump, [1, 2, 3])
    assert [[m[1] for m in batch] for batch in sent.batches] == [[1, 2, 3], [4, 5, 6]]


def test_a_refusal_stops_sending_and_reading() -> None:
    window = Window(3)
    pump, sent, source = start(window)
    source.asked[0].callback(b"a\nb\nc\nd\ne\n")
    done = pump.finished()
    pump.answered(1, None)
    answer(pump, [2], ("wamp.error.not_authorized", "no"))
    assert len(sent.messages) == 3  # nothing more is sent
    assert len(source.asked) == 1
    assert not done.called  # line 3 is still in flight
    answer(pump, [3])  # in flight before the refusal: still counted
    assert done.called
    assert str(window.refusal) == "line 2 refused: wamp.error.not_authorized: no"
    assert window.summary() == "3 lines read, 2 published, 1 refused, 0 skipped (empty)"


def test_a_session_the_router_ends_loses_what_is_in_flight() -> None:
    window = Window(5)
    pump, _, source = start(window)
    source.asked[0].callback(b"a\nb\n")
    answer(pump, [1])
    pump.ended_by_router("wamp.close.system_shutdown", "the node stops")
    assert pump.finished().called
    assert window.lost == "the session ended (wamp.close.system_shutdown: the node stops)"
    assert window.summary() == "2 lines read, 1 published, 0 refused, 0 skipped (empty), 1 unacknowledged"


def test_halted_it_sends_nothing_more_but_waits_for_what_is_in_flight() -> None:
    window = Window(2)
    pump, sent, source = start(window)
    source.asked[0].callback(b"a\nb\nc\n")
    pump.halt()
    done = pump.finished()
    answer(pump, [1, 2])
    assert done.called
    assert sent.payloads() == [{"line": "a"}, {"line": "b"}]
    assert window.summary() == "2 lines read, 2 published, 0 refused, 0 skipped (empty)"


def test_an_answer_to_no_request_of_ours_is_ignored() -> None:
    window = Window(2)
    pump, _, source = start(window)
    source.asked[0].callback(b"a\n")
    answer(pump, [99])
    assert (window.in_flight, window.published) == (1, 0)
