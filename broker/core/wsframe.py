"""One complete, unmasked WebSocket message frame (RFC 6455 §5.2), as a server sends it.

Why pure: the router's fan-out writes the same EVENT to every subscriber of a
subscription on one serializer, so the frame around it is built once
(:mod:`broker.router.crossbar.frames`) and written many times. Building it
needs no Twisted and no autobahn, so its layout is unit tested against
autobahn's own framing (``tests/test_fast_frames.py``) without a reactor.
"""

from __future__ import annotations

from typing import Final

#: First byte: FIN and the opcode of a whole text (1) or binary (2) message; no RSV bits.
TEXT: Final = 0x81
BINARY: Final = 0x82
#: Longest payload whose length fits in the second byte; up to 0xFFFF it takes 2 more bytes, then 8.
SHORT: Final = 125


def frame(payload: bytes, binary: bool) -> bytes:
    """``payload`` as one unfragmented, unmasked, uncompressed text or binary frame."""
    n = len(payload)
    first = BINARY if binary else TEXT
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
