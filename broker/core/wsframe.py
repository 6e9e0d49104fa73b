"""WebSocket frames (RFC 6455 §5.2) Broker builds and reads itself, without autobahn: no I/O.

Why here, both sides: each is a hot path where autobahn's general framing
machinery cost more than the work around it.

- **Server frames** (:func:`frame`): the router's fan-out writes the same
  EVENT to every subscriber of a subscription on one serializer, so the
  frame around it is built once (:mod:`broker.router.crossbar.frames`) and
  written many times: one complete, unmasked, uncompressed message frame.
  Its layout is unit tested against autobahn's own framing
  (``tests/test_fast_frames.py``) without a reactor.
- **Client frames** (:func:`client_frames`, :func:`parse`), just enough for
  ``broker publish --lines``' own publishing loop (:mod:`broker.cli.channel`):
  at thousands of publishes a second, building each PUBLISH through
  autobahn's message classes, serializer and frame machinery, and parsing
  each PUBLISHED back through them, cost the command line more per line
  than the router's own work (profiled: ~70 µs a line). A PUBLISH of one
  line and its PUBLISHED are small and always alike, so the loop frames
  them here: one masked text frame per message (RFC 6455 5.3: a fresh
  masking key for each frame, drawn from :func:`os.urandom`), and a parser
  for the unmasked, unfragmented frames a server sends back. Anything else
  (a fragment, a reserved bit, a masked server frame) is reported as
  :data:`OTHER` for the caller to hand to a full implementation.
"""

from __future__ import annotations

import os
from typing import Final

# -- server frames ------------------------------------------------------------
#: First byte: FIN and the opcode of a whole text (1) or binary (2) message; no RSV bits.
FIN_TEXT: Final = 0x81
FIN_BINARY: Final = 0x82
#: Longest payload whose length fits in the second byte; up to 0xFFFF it takes 2 more bytes, then 8.
SHORT: Final = 125


def frame(payload: bytes, binary: bool) -> bytes:
    """``payload`` as one unfragmented, unmasked, uncompressed text or binary frame."""
    n = len(payload)
    first = FIN_BINARY if binary else FIN_TEXT
    if n <= SHORT:
        header = bytes((first, n))
    elif n <= 0xFFFF:
        header = bytes((first, 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((first, 127)) + n.to_bytes(8, "big")
    return header + payload


#: A frame's header length, by its second byte (unmasked: the payload length's form): a frame
#: :func:`frame` built carries ``len(data) - HEADER_LENGTH[data[1]]`` payload bytes.
HEADER_LENGTH: Final = (2,) * (SHORT + 1) + (4, 10)


def payload_length(data: bytes) -> int:
    """The payload length of a frame :func:`frame` built, read from its header."""
    return len(data) - HEADER_LENGTH[data[1]]


# -- client frames ------------------------------------------------------------

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
