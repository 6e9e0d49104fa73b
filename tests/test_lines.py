"""What a line becomes (``broker.core.lines``) and how the window bounds publishes (``broker.core.window``).

Pure logic, no reactor: every documented case of ``broker publish --lines``
(JSON or not, empty, CRLF, no final newline, invalid UTF-8, over-long), and
a fake session that answers publishes only when told, to show that no more
than the window is ever in flight and that the first refusal closes it.
"""

from __future__ import annotations

import json
from collections import deque

import pytest

from broker.core.lines import LineSplitter, line_json, line_payload
from broker.core.window import Refusal, Window
from broker.errors import ClientError, PayloadTooLarge


@pytest.mark.parametrize(
    ("raw", "payload"),
    [
        (b'{"n": 1}', {"n": 1}),
        (b"42", 42),
        (b'"text"', "text"),
        (b"null", None),
        (b"[1, 2]", [1, 2]),
        (b"hello world", {"line": "hello world"}),
        (b"42 apples", {"line": "42 apples"}),
        (b"{not json", {"line": "{not json"}),
        (b"NaN", {"line": "NaN"}),
        (b"-Infinity", {"line": "-Infinity"}),
        (b"   ", {"line": "   "}),
        ("caf\u00e9 \u2713".encode(), {"line": "caf\u00e9 \u2713"}),
    ],
)
def test_a_line_is_its_json_value_or_a_line_object(raw: bytes, payload: object) -> None:
    assert line_payload(raw) == payload

    # what the publishing loop sends is this value's JSON, decoded to the same value
    assert json.loads(line_json(raw)) == payload


@pytest.mark.parametrize(
    "raw",
    [b'{"n": 1}', b"[1,  2]", b'"\\u00e9"', b"1e999", b'{"a": 1, "a": 2}', '\u2028 "q" \\'.encode()],
    ids=["object", "spaces", "escape", "huge-number", "duplicate-key", "quotes-and-separators"],
)
def test_a_json_line_is_sent_as_it_came_and_decodes_as_line_payload_does(raw: bytes) -> None:
    text = line_json(raw)
    assert json.loads(text) == line_payload(raw)
    if raw.startswith((b"{", b"[", b'"', b"1")):
        assert text == raw


def test_a_plain_line_is_encoded_as_a_line_object_its_non_ascii_as_utf8() -> None:
    # escaped as \\u00e9, a line within the node's message limit could grow past it
    assert line_json('say "hi"\t\u00e9'.encode()) == '{"line":"say \\"hi\\"\\t\u00e9"}'.encode()


@pytest.mark.parametrize("convert", [line_payload, line_json])
@pytest.mark.parametrize("raw", [b'"\\ud800"', b'{"a": ["x\\uD800y"]}'], ids=["string", "nested"])
def test_json_naming_half_a_surrogate_pair_is_refused(convert: object, raw: bytes) -> None:
    with pytest.raises(ClientError) as caught:
        convert(raw)  # type: ignore[operator]
    assert caught.value.wamp_uri == "broker.error.bad_request"
    assert str(caught.value) == "a JSON string holds a lone surrogate (\\ud800), not Unicode text"


def test_a_whole_surrogate_pair_is_one_character() -> None:
    raw = b'"\\ud83d\\ude00"'
    assert line_payload(raw) == "\U0001f600"
    assert line_json(raw) == raw


@pytest.mark.parametrize("convert", [line_payload, line_json])
def test_invalid_utf8_is_refused_naming_the_byte(convert: object) -> None:
    with pytest.raises(ClientError) as caught:
        convert(b"ok \xff then")  # type: ignore[operator]
    assert caught.value.wamp_uri == "broker.error.bad_request"
    assert str(caught.value) == "not valid UTF-8 (byte 0xff at offset 3)"


def test_splitter_cuts_at_newlines_across_chunks_and_drops_cr() -> None:
    splitter = LineSplitter(100)
    assert splitter.feed(b"one\r\ntw") == [b"one"]
    assert splitter.feed(b"o\n\nthr") == [b"two", b""]
    assert splitter.feed(b"ee") == []
    assert splitter.finish() == [b"three"]
    assert splitter.finish() == []


def test_input_ending_with_a_newline_has_no_final_line() -> None:
    splitter = LineSplitter(100)
    assert splitter.feed(b"a\nb\n") == [b"a", b"b"]
    assert splitter.finish() == []


def test_a_line_of_exactly_the_limit_passes_one_byte_more_is_refused() -> None:
    splitter = LineSplitter(4)
    assert _shown(splitter.feed(b"abcd\r\nabcde\nnext\n")) == [b"abcd", _too_long(4)]


def test_a_line_without_end_is_refused_as_soon_as_it_is_too_long() -> None:
    splitter = LineSplitter(4)
    assert splitter.feed(b"ok\nabcd") == [b"ok"]
    assert splitter.feed(b"\r") == []  # may still be "abcd\r\n"
    assert _shown(splitter.feed(b"e")) == [_too_long(4)]


def test_a_final_line_over_the_limit_is_refused() -> None:
    splitter = LineSplitter(4)
    assert splitter.feed(b"abcde") == []
    assert _shown(splitter.finish()) == [_too_long(4)]


def _too_long(limit: int) -> tuple[str, str]:
    return ("broker.error.too_large", f"the line is longer than the node's max_message_size of {limit} bytes")


def _shown(items: list[bytes | PayloadTooLarge]) -> list[object]:
    return [(i.wamp_uri, str(i)) if isinstance(i, PayloadTooLarge) else i for i in items]


class FakeSession:
    """Publishes stay unanswered until :meth:`answer` (the node's acknowledgement or refusal)."""

    def __init__(self, window: Window) -> None:
        self.window = window
        self.unanswered: deque[int] = deque()
        self.most_in_flight = 0

    def publish(self, line: int) -> None:
        self.window.send()
        self.unanswered.append(line)
        self.most_in_flight = max(self.most_in_flight, len(self.unanswered))

    def answer(self, refuse: int | None = None) -> None:
        line = self.unanswered.popleft()
        if line == refuse:
            self.window.refuse(line, "wamp.error.not_authorized", "no")
        else:
            self.window.acknowledged()


def pump(window: Window, session: FakeSession, lines: deque[bytes]) -> None:
    """What broker.cli.stream does between two answers: send while there is room."""
    while lines and window.has_room():
        raw = lines.popleft()
        line = window.take()
        if not raw:
            window.skip()
            continue
        session.publish(line)


def test_the_window_bounds_publishes_in_flight_and_reading_waits() -> None:
    window = Window(3)
    session = FakeSession(window)
    lines = deque([b"x"] * 10)
    pump(window, session, lines)
    assert (window.in_flight, window.read, len(lines)) == (3, 3, 7)  # input not read further
    assert not window.has_room()
    with pytest.raises(RuntimeError):
        window.send()
    while session.unanswered:
        session.answer()
        pump(window, session, lines)
    assert session.most_in_flight == 3
    assert window.drained
    assert window.summary() == "10 lines read, 10 published, 0 refused, 0 skipped (empty)"


def test_the_first_refusal_closes_the_window_what_is_in_flight_still_counts() -> None:
    window = Window(3)
    session = FakeSession(window)
    lines = deque([b"a", b"", b"b", b"c", b"d", b"e"])
    pump(window, session, lines)  # a, (skipped), b, c
    session.answer()
    session.answer(refuse=3)
    pump(window, session, lines)
    assert window.stopped and not window.has_room()
    assert window.refusal == Refusal(3, "wamp.error.not_authorized", "no")
    assert str(window.refusal) == "line 3 refused: wamp.error.not_authorized: no"
    session.answer()  # c, already sent, is acknowledged
    assert window.drained
    assert list(lines) == [b"d", b"e"]
    assert window.summary() == "4 lines read, 2 published, 1 refused, 1 skipped (empty)"


def test_a_lost_connection_leaves_what_is_in_flight_unacknowledged() -> None:
    window = Window(5)
    session = FakeSession(window)
    pump(window, session, deque([b"a", b"b"]))
    window.lose("the connection was lost")
    assert window.drained and window.stopped
    assert window.summary() == "2 lines read, 0 published, 0 refused, 0 skipped (empty), 2 unacknowledged"


def test_a_window_holds_at_least_one() -> None:
    with pytest.raises(ValueError, match="at least one"):
        Window(0)
