"""The text a store keeps an event's payload as: JSON, and bytes kept as bytes.

Why: the SQLite and Redis engines keep ``[args, kwargs]`` as text, and JSON
has no form for bytes, which WAMP carries in every serializer (a MessagePack
or CBOR publisher sends them; the publish checks allow them:
:func:`broker.core.protocol.unsendable`). Such an event must come back from a
store as it went in, so that a recovery answers it as live delivery did: bytes
to a MessagePack or CBOR caller, autobahn's ``"\\u0000"`` + base64 string to a
JSON one.

A payload without bytes is written as every store wrote it before, plain JSON
(``[args, kwargs]``, always starting with ``[``), so every row or log entry
kept by an older node reads as it did, and the common case costs nothing more.
One with bytes is written as :data:`TAGGED` followed by JSON in which each
bytes value is ``{"\\u0000b": base64}`` and each map key of the payload that
starts with ``"\\u0000"`` has one more ``"\\u0000"`` in front, so no map of
the payload reads back as bytes.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, Final

from broker.core import jsonwriter

#: The first character of a payload holding bytes (plain JSON of a list starts with ``[``).
TAGGED: Final = "b"
#: The one key of a map that stands for a bytes value in a :data:`TAGGED` payload.
BYTES_KEY: Final = "\x00b"
_ESCAPE: Final = "\x00"


#: Compact JSON, its C encoder made once (:func:`broker.core.jsonwriter.writer`); its other
#: options are ``json.dumps``'s, so whatever a store accepted before it accepts still.
_PLAIN: Final = jsonwriter.writer(json.JSONEncoder(separators=(",", ":")))


def _restore(found: dict[str, Any]) -> Any:
    """A map of a :data:`TAGGED` payload as it was written: bytes, or its keys unescaped."""
    if len(found) == 1 and BYTES_KEY in found:
        text = found[BYTES_KEY]
        if type(text) is not str:
            raise ValueError("a stored bytes value is not base64 text")
        try:
            return base64.b64decode(text, validate=True)
        except binascii.Error as exc:
            raise ValueError(f"a stored bytes value is not base64 ({exc})") from None
    if not any(key[:1] == _ESCAPE for key in found):
        return found
    return {key[1:] if key[:1] == _ESCAPE else key: value for key, value in found.items()}


_TAGGED_DECODER: Final = json.JSONDecoder(object_hook=_restore)


def _tag(payload: Any) -> Any:
    """``payload`` with each bytes value as ``{BYTES_KEY: base64}`` and each key starting with
    ``"\\u0000"`` escaped; walked without recursion (a decoder may nest deeper than Python's
    stack allows a walk)."""
    root: list[Any] = [None]
    stack: list[tuple[Any, Any, Any]] = [(root, 0, payload)]
    while stack:
        parent, at, item = stack.pop()
        kind = type(item)
        if kind is bytes:
            parent[at] = {BYTES_KEY: base64.b64encode(item).decode("ascii")}
        elif kind is list or kind is tuple:
            copy = list(item)
            parent[at] = copy
            stack.extend((copy, i, value) for i, value in enumerate(copy))
        elif kind is dict:
            mapped: dict[Any, Any] = {}
            parent[at] = mapped
            for key, value in item.items():
                if type(key) is str and key[:1] == _ESCAPE:
                    key = _ESCAPE + key
                mapped[key] = None
                stack.append((mapped, key, value))
        else:
            parent[at] = item
    return root[0]


def _ascii_alike(text: str) -> bool:
    """Whether ``ensure_ascii`` would write ``text``'s strings as they are: ASCII, without DEL
    (the one ASCII character it escapes that the other quoting keeps)."""
    return text.isascii() and "\x7f" not in text


def encode(args: Any, kwargs: Any, args_json: str | None = None) -> str:
    """``[args, kwargs]`` as stored text: plain JSON, or :data:`TAGGED` JSON when it holds bytes.

    ``args_json``: ``args`` as :func:`broker.history.eventtext.args_json` wrote them (no
    ``ensure_ascii``); with no ``kwargs`` and no character that ``ensure_ascii`` escapes (any
    beyond ASCII, and DEL) the text is made from it, the same text. Raises TypeError (or
    ValueError) for a value JSON has no form for but bytes, as ``json.dumps`` does; the
    publish checks let none through."""
    if args_json is not None and type(kwargs) is dict and not kwargs and _ascii_alike(args_json):
        return f"[{args_json},{{}}]"
    payload = [args, kwargs]
    try:
        return _PLAIN(payload)
    except TypeError:
        return TAGGED + _PLAIN(_tag(payload))


def decode(text: str) -> tuple[Any, Any]:
    """``(args, kwargs)`` from stored text written by :func:`encode` or by an older node (plain
    JSON). Raises ValueError for text neither wrote."""
    if text[:1] == TAGGED:
        payload, end = _TAGGED_DECODER.raw_decode(text, 1)
        if end != len(text):
            raise ValueError("stored payload has text after its JSON")
    else:
        payload = json.loads(text)
    args, kwargs = payload
    return args, kwargs
