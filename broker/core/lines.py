"""Lines of text as events: how ``broker publish --lines`` and ``broker pipe`` cut and read their input.

Why a module of its own, without I/O: what a line becomes is a promise to the
people who pipe a program into a topic, so each case has one outcome, tested
without a reactor:

- a line ends at ``\\n``; a ``\\r`` before it goes too (CRLF input);
- a final line without ``\\n`` is a line like any other;
- an empty line (nothing before its ending) is skipped: no event, counted as skipped;
- a line that parses as JSON is that JSON value (``42``, ``"x"``, ``{"n": 1}``,
  ``null``); anything else, including ``NaN`` and ``Infinity`` (not JSON, though
  Python's parser takes them), is ``{"line": TEXT}``;
- a line that is not valid UTF-8 is refused (``broker.error.bad_request``),
  naming the first bad byte; so is JSON whose string escapes name half a
  surrogate pair (``"\\ud800"``): no event can carry it;
- a line longer than the node's message limit is refused
  (``broker.error.too_large``) as soon as that many bytes arrived without an
  ending, so a line without end never fills the memory.
"""

from __future__ import annotations

import json
from json.encoder import encode_basestring
from typing import Any, Final

from broker.core.protocol import lone_surrogate
from broker.errors import ClientError, PayloadTooLarge

#: The key of a line that is not JSON: ``{"line": TEXT}``.
LINE_KEY: Final = "line"


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


#: JSON's encoding of a string, non-ASCII kept as UTF-8 (as autobahn sends it: escaping could
#: take a line within the node's message limit past it).
_ENCODE: Final = encode_basestring
#: One decoder for every line (``json.loads`` with an argument builds a new one per call).
_DECODER: Final = json.JSONDecoder(parse_constant=_not_json)


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ClientError(f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start})") from None


def _json(raw: bytes, text: str) -> tuple[bool, Any]:
    """``(True, value)`` for a JSON line, ``(False, None)`` otherwise; a lone surrogate is refused."""
    try:
        value = _DECODER.decode(text)
    except ValueError:  # JSONDecodeError, or NaN/Infinity
        return False, None
    problem = lone_surrogate(raw, value)  # no text, no event can carry it
    if problem is not None:
        raise ClientError(problem)
    return True, value


def line_payload(raw: bytes) -> Any:
    """The event payload of one line (its ending removed): the JSON value, or ``{"line": text}``.

    Raises :class:`~broker.errors.ClientError` for a line that is not UTF-8,
    or whose JSON holds a lone surrogate (``"\\ud800"``).
    """
    text = _text(raw)
    parsed, value = _json(raw, text)
    return value if parsed else {LINE_KEY: text}


def line_json(raw: bytes) -> bytes:
    """:func:`line_payload` as JSON text: the line itself when it is JSON, else ``{"line": text}`` encoded.

    What the node decodes from it is exactly :func:`line_payload` (the same
    parser decides), without encoding a value that arrived already encoded.
    Raises :class:`~broker.errors.ClientError` as :func:`line_payload` does.
    """
    text = _text(raw)
    if _json(raw, text)[0]:
        return raw
    return b'{"line":' + _ENCODE(text).encode("utf-8") + b"}"


class LineSplitter:
    """Cuts a byte stream into lines of at most ``max_bytes`` bytes (the ending not counted).

    :meth:`feed` returns the lines complete so far; :meth:`finish` the final
    line without an ending, if any. A line that grows past ``max_bytes`` is
    returned as a :class:`~broker.errors.PayloadTooLarge` in its place, as
    soon as it does (after the lines before it): the caller stops there.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._partial = bytearray()

    def feed(self, data: bytes) -> list[bytes | PayloadTooLarge]:
        """The lines ``data`` completes, in order; an over-long line ends the list as its error."""
        lines: list[bytes | PayloadTooLarge] = []
        start = 0
        while True:
            end = data.find(b"\n", start)
            if end < 0:
                break
            if self._partial:
                self._partial += data[start:end]
                line = bytes(self._partial)
                self._partial.clear()
            else:
                line = data[start:end]
            start = end + 1
            if line.endswith(b"\r"):
                line = line[:-1]
            if len(line) > self.max_bytes:
                lines.append(self._too_long())
                return lines
            lines.append(line)
        self._partial += data[start:]
        if len(self._partial) > self.max_bytes + 1:  # + 1: a "\r" that a "\n" may still follow
            lines.append(self._too_long())
        return lines

    def finish(self) -> list[bytes | PayloadTooLarge]:
        """The final line that had no ending (none if the input ended with one)."""
        if not self._partial:
            return []
        line = bytes(self._partial)
        self._partial.clear()
        if line.endswith(b"\r"):
            line = line[:-1]
        return [self._too_long()] if len(line) > self.max_bytes else [line]

    def _too_long(self) -> PayloadTooLarge:
        self._partial.clear()
        return PayloadTooLarge(
            f"the line is longer than the node's max_message_size of {self.max_bytes} bytes"
        )
