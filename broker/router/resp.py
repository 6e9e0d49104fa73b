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
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

#: The first byte of each RESP2 type.
_BULK, _ARRAY, _INTEGER, _STATUS, _ERROR = 36, 42, 58, 43, 45


class ProtocolError(ValueError):
    """Bytes that are no RESP2 reply: the connection cannot be read on."""


class Replies:
    """RESP2 replies from the bytes a connection receives, each element parsed once.

    Bulk strings come as ``str`` where they are UTF-8 (else ``bytes``), integers as ``int``, nil
    as None, status replies as ``str`` and error replies as ``error(message)``.
    """

    def __init__(self, error: Callable[[str], Any]) -> None:
        self._error = error
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
        """Every reply completed by the bytes received so far, in order."""
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
        while True:
            end = find(b"\r\n", at)
            if end < 0:
                self._need = size - at + 1
                break
            kind = buffer[at]
            if kind == _BULK:
                length = int(buffer[at + 1 : end])
                if length < 0:
                    value, at = None, end + 2
                else:
                    stop = end + 2 + length
                    if stop + 2 > size:
                        self._need = stop + 2 - at
                        break
                    data = buffer[end + 2 : stop]
                    try:
                        value = data.decode()
                    except UnicodeDecodeError:
                        value = data
                    at = stop + 2
            elif kind == _ARRAY:
                count = int(buffer[at + 1 : end])
                at = end + 2
                if count > 0:
                    if items is not None:
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
                raise ProtocolError(f"unexpected reply {buffer[at : end + 2][:80]!r}")
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
        if items is not None:
            opened.append((items, left))
        self._buffer = buffer[at:]
        self._size = size - at
        return done


def command(args: Sequence[str | bytes | int]) -> bytes:
    """One command (``*<n>`` then each argument as a bulk string: ``str`` as UTF-8, ``int`` in
    decimal): what txredisapi's ``_build_command`` writes for these arguments."""
    encoded = [a.encode() if type(a) is str else _encoded(a) for a in args]
    return b"".join([b"*%d\r\n" % len(encoded), *[b"$%d\r\n%s\r\n" % (len(e), e) for e in encoded]])


def _encoded(arg: str | bytes | int) -> bytes:
    if isinstance(arg, bytes):
        return arg
    if isinstance(arg, str):
        return arg.encode()
    if isinstance(arg, int):
        return b"%d" % arg
    raise TypeError(f"a Redis command argument is str, bytes or int, not {type(arg).__name__}")
