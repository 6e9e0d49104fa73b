"""RESP2, the Redis wire format, for the router's Redis link: commands out, replies in.

Why a module of its own: txredisapi's pure-Python reply parser waits for the
reactor's next turn after every bulk string (a log read of 512 entries took
over 5,000 turns), and a parser that starts again from the first byte of a
reply each time more of it arrives reads a large reply many times over (a
``XREAD`` of 512 entries comes in several chunks). :class:`Replies` reads each
element once: completed elements are taken out of the buffer as they come,
the arrays still open wait on a stack, and nothing is looked at again until
enough bytes have arrived to finish the element it stopped in. :func:`command`
builds a command in one pass over its arguments, which txredisapi does with
several calls per argument (most of an ``EVALSHA`` of a few hundred events).
No Twisted here: :mod:`broker.router.redislink` plugs both into txredisapi's
protocol.

Bounded: a reply from a corrupt or hostile peer (a bulk string declared
longer than Redis ever sends, arrays nested deeper than any reply Broker asks
for, a line that never ends, a length that is no number, a bulk string not
followed by CRLF) raises :class:`broker.errors.RedisProtocolError` as soon as
its header is read, before anything is buffered for it; the link then drops
the connection.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final

from broker.errors import RedisProtocolError

#: The first byte of each RESP2 type.
_BULK, _ARRAY, _INTEGER, _STATUS, _ERROR = 36, 42, 58, 43, 45

#: The longest bulk string accepted (bytes): Redis's own ``proto-max-bulk-len`` default, so
#: nothing Redis stores for Broker is longer.
MAX_BULK: Final = 512 * 1024 * 1024
#: The most elements one array may declare (Redis's own bound on a request's arguments).
MAX_ARRAY: Final = 1024 * 1024 * 1024
#: How deep arrays may nest: Broker's deepest reply (``XREAD``, a read's ``EVENTS``) is 4 deep.
MAX_DEPTH: Final = 16
#: The longest line (a type byte to CRLF) accepted: lengths, integers, status and error replies.
MAX_LINE: Final = 64 * 1024


class Replies:
    """RESP2 replies from the bytes a connection receives, each element parsed once.

    Bulk strings come as ``str`` where they are UTF-8 (else ``bytes``), integers as ``int``, nil
    as None, status replies as ``str`` and error replies as ``error(message)``.
    """

    def __init__(self, error: Callable[[str], Any], max_bulk: int = MAX_BULK) -> None:
        self._error = error
        self._max_bulk = max_bulk
        #: received bytes from the first element not parsed yet, and chunks not joined to it yet
        self._buffer = b""
        self._chunks: list[bytes] = []
        #: bytes in both
        self._size = 0
        #: how many of them the element parsing stopped in needs before it is worth another look
        self._need = 1
        #: the arrays being filled, innermost last: ``(items so far, items still expected)``
        self._open: list[tuple[list[Any], int]] = []

    @property
    def buffered(self) -> int:
        """Bytes received and not parsed yet (of the element a reply stopped in)."""
        return self._size

    def feed(self, data: bytes) -> None:
        """Add received bytes."""
        self._chunks.append(data)
        self._size += len(data)

    def take(self) -> list[Any]:
        """Every reply completed by the bytes received so far, in order; raises
        :class:`~broker.errors.RedisProtocolError` at the first bytes that are no reply (what
        came before them is lost with it: the connection cannot be read on)."""
        if self._size < self._need:
            return []
        if self._chunks:
            self._buffer = b"".join([self._buffer, *self._chunks])
            self._chunks.clear()
        buffer, opened, error = self._buffer, self._open, self._error
        find, size, at, done = buffer.find, len(buffer), 0, []
        # the innermost open array in locals (its parents on the stack): most elements go there
        items, left = opened.pop() if opened else (None, 0)
        value: Any
        try:
            while True:
                end = find(b"\r\n", at, at + MAX_LINE)
                if end < 0:
                    if size - at >= MAX_LINE:
                        raise RedisProtocolError(f"a Redis reply line longer than {MAX_LINE} bytes")
                    self._need = size - at + 1
                    break
                kind = buffer[at]
                if kind == _BULK:
                    length = int(buffer[at + 1 : end])
                    if not -1 <= length <= self._max_bulk:
                        raise RedisProtocolError(
                            f"a Redis bulk string of {length} bytes (at most {self._max_bulk})"
                        )
                    if length < 0:
                        value, at = None, end + 2
                    else:
                        stop = end + 2 + length
                        if stop + 2 > size:
                            self._need = stop + 2 - at
                            break
                        if buffer[stop : stop + 2] != b"\r\n":
                            raise RedisProtocolError("a Redis bulk string not followed by CRLF")
                        data = buffer[end + 2 : stop]
                        try:
                            value = data.decode()
                        except UnicodeDecodeError:
                            value = data
                        at = stop + 2
                elif kind == _ARRAY:
                    count = int(buffer[at + 1 : end])
                    if not -1 <= count <= MAX_ARRAY:
                        raise RedisProtocolError(f"a Redis array of {count} elements (at most {MAX_ARRAY})")
                    at = end + 2
                    if count > 0:
                        if items is not None:
                            if len(opened) + 2 > MAX_DEPTH:
                                raise RedisProtocolError(f"a Redis reply nested deeper than {MAX_DEPTH}")
                            opened.append((items, left))
                        items, left = [], count
                        continue
                    value = None if count < 0 else []
                elif kind == _INTEGER:
                    value, at = int(buffer[at + 1 : end]), end + 2
                elif kind == _STATUS:
                    value, at = buffer[at + 1 : end].decode(), end + 2
                elif kind == _ERROR:
                    value, at = error(buffer[at + 1 : end].decode(errors="replace")), end + 2
                else:
                    raise RedisProtocolError(f"unexpected reply {buffer[at : end + 2][:80]!r}")
                if items is None:
                    done.append(value)
                    continue
                items.append(value)
                left -= 1
                while not left:  # the value completed its array, perhaps its parents too
                    value = items
                    if not opened:
                        done.append(value)
                        items = None
                        break
                    items, left = opened.pop()
                    items.append(value)
                    left -= 1
        except ValueError as bad:  # a length or integer that is no number, a status no text
            raise RedisProtocolError(f"a Redis reply that is no RESP2 ({bad})") from bad
        if items is not None:
            opened.append((items, left))
        self._buffer = buffer[at:]
        self._size = size - at
        return done


def command(args: Sequence[str | bytes | int]) -> bytes:
    """One command (``*<n>`` then each argument as a bulk string: ``str`` as UTF-8, ``int`` in
    decimal): what txredisapi's ``_build_command`` writes for these arguments."""
    parts = [b"*%d\r\n" % len(args)]
    made: dict[str | bytes | int, bytes] = {}  # an APPEND repeats each event's topic and retention
    for arg in args:
        part = made.get(arg)
        if part is None:
            data = arg.encode() if type(arg) is str else _encoded(arg)
            part = made[arg] = b"$%d\r\n%s\r\n" % (len(data), data)
        parts.append(part)
    return b"".join(parts)


def _encoded(arg: str | bytes | int) -> bytes:
    if isinstance(arg, bytes):
        return arg
    if isinstance(arg, str):
        return arg.encode()
    if isinstance(arg, int):
        return b"%d" % arg
    raise TypeError(f"a Redis command argument is str, bytes or int, not {type(arg).__name__}")
