"""WebSocket frames, client side, just enough for ``broker publish --lines``' own publishing loop.

Why not autobahn's framing: at thousands of publishes a second, building
each PUBLISH through autobahn's message classes, serializer and frame
machinery, and parsing each PUBLISHED back through them, cost the command
line more per line than the router's own work (profiled: ~70 µs a line).
A PUBLISH of one line and its PUBLISHED are small and always alike, so the
loop frames them here: one masked text frame per message (RFC 6455 5.3: a
fresh masking key for each frame, drawn from :func:`os.urandom`), and a
parser for the unmasked, unfragmented frames a server sends back. Anything
else (a fragment, a reserved bit, a masked server frame) is reported as
:data:`OTHER` for the caller to hand to a full implementation. No I/O.
"""

from __future__ import annotations

import os
from typing import Final

TEXT: Final = 0x1
CLOSE: Final = 0x8
PING: Final = 0x9
PONG: Final = 0xA
#: What :func:`parse` calls a frame this module does not read (the caller hands it on).
OTHER: Final = -1


def client_frames(opcode: int, payloads: list[bytes]) -> bytes:
    """Final, masked client frames of ``opcode``, one per payload, each with its own random key."""
    keys = os.urandom(4 * len(payloads))
    out = bytearray()
    for n, payload in enumerate(payloads):
        size = len(payload)
        if size < 126:
            out += bytes((0x80 | opcode, 0x80 | size))
        elif size < 65536:
            out += bytes((0x80 | opcode, 0xFE)) + size.to_bytes(2, "big")
        else:
            out += bytes((0x80 | opcode, 0xFF)) + size.to_bytes(8, "big")
        key = keys[4 * n : 4 * n + 4]
        out += key
        if size:
            mask = (key * ((size + 3) // 4))[:size]
            out += (int.from_bytes(payload, "little") ^ int.from_bytes(mask, "little")).to_bytes(
                size, "little"
            )
    return bytes(out)


def parse(buffer: bytes | bytearray, start: int = 0) -> tuple[int, bytes, int] | None:
    """The server frame at ``start``: ``(opcode, payload, end)``, or None while it is incomplete.

    ``opcode`` is :data:`OTHER` for a frame this module does not read: not
    final, a reserved bit set, masked, or an opcode other than text, close,
    ping and pong; its ``payload`` is then empty and ``end`` is ``start``.
    """
    if len(buffer) - start < 2:
        return None
    first, second = buffer[start], buffer[start + 1]
    opcode = first & 0x0F
    if first & 0xF0 != 0x80 or second & 0x80 or opcode not in (TEXT, CLOSE, PING, PONG):
        return OTHER, b"", start
    size = second & 0x7F
    at = start + 2
    if size == 126:
        if len(buffer) < at + 2:
            return None
        size = int.from_bytes(buffer[at : at + 2], "big")
        at += 2
    elif size == 127:
        if len(buffer) < at + 8:
            return None
        size = int.from_bytes(buffer[at : at + 8], "big")
        at += 8
    end = at + size
    if len(buffer) < end:
        return None
    return opcode, bytes(buffer[at:end]), end
