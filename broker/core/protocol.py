"""WAMP session rules crossbar does not enforce, as tables (no I/O, no Twisted).

Crossbar 26.10 ignores a second HELLO after WELCOME and any request sent before
HELLO (the spec requires ABORT ``wamp.error.protocol_violation``), and it
closes the whole connection with 1011 when a request names an invalid URI
(the spec wants ``ERROR wamp.error.invalid_uri`` and the session kept).
:mod:`broker.router.crossbar.protocol` applies these rules to every incoming message.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from broker.core.uris import check_uri
from broker.errors import ClientError, InvalidUri, ProtocolViolation

HELLO, WELCOME, ABORT, CHALLENGE, AUTHENTICATE, GOODBYE, ERROR = 1, 2, 3, 4, 5, 6, 8
PUBLISH, SUBSCRIBE, UNSUBSCRIBE = 16, 32, 34
CALL, CANCEL, REGISTER, UNREGISTER, YIELD = 48, 49, 64, 66, 70

MESSAGE_NAMES: Final[Mapping[int, str]] = {
    HELLO: "HELLO",
    WELCOME: "WELCOME",
    ABORT: "ABORT",
    CHALLENGE: "CHALLENGE",
    AUTHENTICATE: "AUTHENTICATE",
    GOODBYE: "GOODBYE",
    ERROR: "ERROR",
    PUBLISH: "PUBLISH",
    17: "PUBLISHED",
    SUBSCRIBE: "SUBSCRIBE",
    33: "SUBSCRIBED",
    UNSUBSCRIBE: "UNSUBSCRIBE",
    35: "UNSUBSCRIBED",
    36: "EVENT",
    CALL: "CALL",
    CANCEL: "CANCEL",
    50: "RESULT",
    REGISTER: "REGISTER",
    65: "REGISTERED",
    UNREGISTER: "UNREGISTER",
    67: "UNREGISTERED",
    68: "INVOCATION",
    69: "INTERRUPT",
    YIELD: "YIELD",
}

#: What a client may send, by session state.
CLIENT_MAY_SEND: Final[Mapping[str, frozenset[int]]] = {
    "opening": frozenset({HELLO, ABORT}),
    "authenticating": frozenset({AUTHENTICATE, ABORT}),
    "joined": frozenset(
        {GOODBYE, ABORT, ERROR, PUBLISH, SUBSCRIBE, UNSUBSCRIBE, CALL, CANCEL, REGISTER, UNREGISTER, YIELD}
    ),
}

#: Requests that carry a URI: message type -> (position of the URI, what it names).
URI_FIELDS: Final[Mapping[int, tuple[int, str]]] = {
    PUBLISH: (3, "topic"),
    SUBSCRIBE: (3, "topic"),
    CALL: (3, "procedure"),
    REGISTER: (3, "procedure"),
}


#: Deepest nesting of arrays and objects a JSON message may have (the WAMP
#: envelope itself uses two levels). Far beyond real payloads, far below
#: what could stall the decoder or the logger.
MAX_JSON_NESTING: Final = 100

_JSON_TOKENS: Final = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def json_nesting_exceeds(payload: bytes, limit: int = MAX_JSON_NESTING) -> bool:
    """Whether JSON text nests arrays/objects deeper than ``limit``.

    Counting brackets is enough to clear almost every message at C speed; only
    messages with more brackets than ``limit`` are scanned (strings skipped).
    """
    if payload.count(b"[") + payload.count(b"{") <= limit:
        return False
    depth = 0
    for token in _JSON_TOKENS.finditer(payload):
        first = token.group()[0]
        if first in b"[{":
            depth += 1
            if depth > limit:
                return True
        elif first in b"]}":
            depth -= 1
    return False


#: How JSON text names half a UTF-16 surrogate pair (``\ud800``-``\udfff``, either case).
_SURROGATE_ESCAPE: Final = re.compile(rb"\\u[dD][89abcdefABCDEF]")


def lone_surrogate(text: bytes, value: Any) -> str | None:
    """Why JSON ``text``, decoded to ``value``, holds a string that is not Unicode text, else None.

    Python's decoder (and autobahn's) turns ``"\\ud800"`` without its pair into
    a string no serializer can send: the EVENT of such a publish would fail on
    the way to every subscriber, after it was acknowledged and stored. A pair
    decodes to one character, which is fine. Only a text with a surrogate
    escape can hold one, so any other costs one search.
    """
    if _SURROGATE_ESCAPE.search(text) is None:
        return None
    try:
        json.dumps(value, ensure_ascii=False, default=lambda _: None).encode("utf-8")
    except UnicodeEncodeError as exc:
        code = ord(exc.object[exc.start])
        return f"a JSON string holds a lone surrogate (\\u{code:04x}), not Unicode text"
    return None


def name(message_type: object) -> str:
    """The WAMP name of a message type, for error messages."""
    return (
        MESSAGE_NAMES.get(message_type, repr(message_type))
        if isinstance(message_type, int)
        else repr(message_type)
    )


def check_allowed(message_type: object, state: str) -> None:
    """Raise :class:`ProtocolViolation` unless a client in ``state`` may send ``message_type``."""
    if not isinstance(message_type, int) or message_type not in MESSAGE_NAMES:
        raise ProtocolViolation(f"unknown WAMP message type {message_type!r}")
    if message_type not in CLIENT_MAY_SEND[state]:
        when = {
            "opening": "before HELLO",
            "authenticating": "during authentication",
            "joined": "after WELCOME",
        }[state]
        raise ProtocolViolation(f"{name(message_type)} is not allowed {when}")


@dataclass(frozen=True)
class Rejection:
    """A request refused before crossbar sees it (an invalid URI, a payload no subscriber could be
    sent): answer with ERROR, keep the session."""

    request_type: int
    request_id: int
    error: ClientError
    #: False for a PUBLISH without acknowledge: the spec sends no ERROR then.
    reply: bool
    #: What ``broker_rejections_total`` counts it as.
    reason: str


def check_request_uri(raw: list[Any]) -> Rejection | None:
    """Check the URI of a raw request message; None when valid or not a URI request.

    Only well-formed requests (an integer request id, an options dict) are
    judged here; anything else is left to the message parser, which rejects it
    as a protocol violation.
    """
    field = URI_FIELDS.get(raw[0])
    if field is None or len(raw) <= field[0] or not isinstance(raw[1], int) or not isinstance(raw[2], dict):
        return None
    position, what = field
    options: dict[str, Any] = raw[2]
    match = options.get("match", "exact") if raw[0] in (SUBSCRIBE, REGISTER) else "exact"
    try:
        check_uri(raw[position], match if isinstance(match, str) else "?", what=what)
    except InvalidUri as exc:
        reply = raw[0] != PUBLISH or bool(options.get("acknowledge", False))
        return Rejection(raw[0], raw[1], exc, reply, "invalid_uri")
    return None


#: The integers every serializer Broker speaks can carry: MessagePack's range (JSON and CBOR
#: carry any, so a JSON or CBOR publisher can send what a MessagePack subscriber cannot get).
INT_RANGE: Final = (-(2**63), 2**64 - 1)
#: A JSON number beyond :data:`INT_RANGE` has at least 20 digits in a row, or 19 after a minus
#: (``-9223372036854775809``).
_LONG_NUMBER: Final = re.compile(rb"-[0-9]{19}|[0-9]{20}")
#: Every digit to ``0``, every other byte to a space: a text holds a run of 19 digits (which
#: either form of :data:`_LONG_NUMBER` contains) iff its translation holds :data:`_DIGIT_RUN`.
_DIGITS_ONLY: Final = bytes(0x30 if 0x30 <= b <= 0x39 else 0x20 for b in range(256))
_DIGIT_RUN: Final = b"0" * 19
#: What every serializer carries, as leaves of a payload (containers: list, tuple, dict).
_LEAVES: Final = frozenset({str, bytes, float, bool, type(None)})
#: What a map key may be: JSON writes these as strings; a bytes key it cannot write.
_KEYS: Final = frozenset({str, int, float, bool, type(None)})


def must_walk(text: bytes, serializer: str) -> bool:
    """Whether a payload decoded from ``text`` (a ``serializer`` message: ``json``, ``msgpack``,
    ``cbor``, ...) may hold what :func:`unsendable` refuses. JSON decodes to nothing else but
    numbers, so only a JSON text with a long number is walked; the binary decoders can return
    other types (a CBOR datetime or set, a MessagePack extension or bytes key), so always.

    The regular expression runs only on a text with 19 digits in a row, found at C speed by
    a translation and a substring search (the expression alone takes ~15 ns per byte: a
    batch of 100 events spent more in it than in decoding the body)."""
    if serializer != "json":
        return True
    return _DIGIT_RUN in text.translate(_DIGITS_ONLY) and _LONG_NUMBER.search(text) is not None


def unsendable(value: Any, max_depth: int | None = None) -> str | None:
    """Why ``value`` could not be sent to every subscriber in every serializer, else None.

    Walked once, level by level, without recursion: an integer beyond :data:`INT_RANGE`, a
    map key JSON cannot write, any type but the JSON-like ones and bytes (which autobahn
    carries in every serializer), or, given ``max_depth``, arrays and maps nested deeper
    than that (``value`` itself at depth 1).
    """
    low, high = INT_RANGE
    deepest = max_depth if max_depth is not None else -1
    level = [value]
    depth = 0
    while level:
        depth += 1
        below: list[Any] = []
        for item in level:
            kind = type(item)
            if kind in _LEAVES:
                continue
            if kind is int:
                if not low <= item <= high:
                    bits = item.bit_length()
                    return f"an integer of {bits} bits: MessagePack subscribers can be sent at most 64"
                continue
            if kind is list or kind is tuple:
                below.extend(item)
            elif kind is dict:
                for key in item:
                    if type(key) not in _KEYS:
                        return f"a map key of type {type(key).__name__}: JSON subscribers cannot be sent it"
                below.extend(item.values())
            else:
                return f"a value of type {kind.__name__}: not every subscriber's serializer can carry it"
            if depth == deepest + 1:
                return f"nested deeper than {deepest} levels, the limit of a WAMP message"
        level = below
    return None


def check_publish_payload(raw: list[Any], text: bytes, serializer: str) -> Rejection | None:
    """Refuse a PUBLISH whose payload some subscriber could not be sent (:func:`unsendable`);
    None for anything else. Delivery would fail for that subscriber, and the dispatch loop with
    it, after the publish was acknowledged and stored. The payload may nest as deep as a JSON
    message may (:data:`MAX_JSON_NESTING`): a MessagePack one could nest ~1000 levels, beyond
    what autobahn's JSON encoder (every JSON subscriber's connection was dropped) and a store's
    can write."""
    if raw[0] != PUBLISH or len(raw) < 5 or not isinstance(raw[1], int) or not isinstance(raw[2], dict):
        return None
    if not must_walk(text, serializer):
        return None
    problem = unsendable(raw[4:6], MAX_JSON_NESTING)  # [args, kwargs] stands for the message
    if problem is None:
        return None
    reply = bool(raw[2].get("acknowledge", False))
    return Rejection(PUBLISH, raw[1], ClientError(problem), reply, "unsendable_payload")
