"""Unmasking the frames clients send: Python's big integers instead of autobahn's cffi masker for small ones.

What autobahn 25.x does: every masked WebSocket frame a client sends (all of
them, RFC 6455 §5.3) gets a new ``XorMaskerNvx`` (``create_xor_masker`` in
``autobahn/websocket/protocol.py``), whose constructor imports its cffi module
and allocates a C buffer, and whose ``process`` copies the payload into
another one: about 6 µs per frame of a ~150-byte PUBLISH, more than the XOR
itself. What Broker does instead: frames up to :data:`SMALL` bytes are
unmasked by :class:`SmallMasker`, one XOR of two integers (the payload's and
the mask repeated over it), in C inside CPython; larger frames keep
autobahn's masker, whose SIMD loop wins there. Same bytes either way
(``tests/test_fast_shortcuts.py`` compares them, whole and in pieces).

Replaces ``autobahn/websocket/protocol.py``'s module global ``create_xor_masker``.
"""

from __future__ import annotations

from typing import Any, Final

from autobahn.websocket import protocol

#: Frames up to this many bytes are unmasked by :class:`SmallMasker`.
SMALL: Final = 4096

_original: dict[str, Any] = {}


class SmallMasker:
    """The XOR masker autobahn's frame parser calls (``pointer``, ``reset``, ``process``)."""

    __slots__ = ("_mask", "_ptr")

    def __init__(self, mask: bytes) -> None:
        self._mask = bytes(mask)
        self._ptr = 0

    def pointer(self) -> int:
        """How many payload bytes were unmasked so far."""
        return self._ptr

    def reset(self) -> None:
        """Start over at the first byte of the mask."""
        self._ptr = 0

    def process(self, data: bytes) -> bytes:
        """``data`` (the next bytes of the payload) unmasked."""
        length = len(data)
        if not length:
            return b""
        shift = self._ptr & 3
        self._ptr += length
        mask = self._mask[shift:] + self._mask[:shift]
        key = (mask * (length // 4 + 1))[:length]
        return (int.from_bytes(data, "big") ^ int.from_bytes(key, "big")).to_bytes(length, "big")


def _create(mask: bytes, length: int | None = None) -> Any:
    if length is not None and length <= SMALL:
        return SmallMasker(mask)
    return _original["create_xor_masker"](mask, length)


def install() -> None:
    """Unmask small client frames with :class:`SmallMasker` from now on (once per process)."""
    if "create_xor_masker" not in _original:
        _original["create_xor_masker"] = protocol.create_xor_masker  # type: ignore[attr-defined]
        protocol.create_xor_masker = _create  # type: ignore[attr-defined]
