"""How many bytes a value takes on the wire, bounded for every serializer a WAMP peer may use.

Why: the router refuses to send a message over a transport's
``max_message_size`` (``PayloadExceededError``; for a RESULT, crossbar
answers ``wamp.error.invalid_argument`` instead), so Broker sizes recovery
pages and refuses oversized events by their encoded size, not their count.
The same event is sent JSON-encoded to one subscriber and as MessagePack or
CBOR to another, and neither encoding bounds the others: JSON escapes and
quotes strings, base64-encodes binary (autobahn's ``"\\u0000"`` prefix) and
spells ``false``; MessagePack and CBOR write every float as 9 bytes (``1.0``
is 3 in JSON) and longer length headers before long strings. So
:func:`wire_size` adds, for every node of the value, the largest of the three
encodings of that node: an upper bound on each serializer's total, exact for
JSON-only values. No I/O, no imports beyond the standard library.
"""

from __future__ import annotations

import json
import re
from typing import Final

#: Characters JSON escapes (with ``ensure_ascii=False``, as autobahn writes it).
_NEEDS_ESCAPE: Final = re.compile(r'["\\\x00-\x1f]')
#: Bytes autobahn's JSON serializer adds around binary data: quotes and the ``\\u0000`` marker.
_JSON_BINARY_OVERHEAD: Final = 8


def _binary_header(length: int) -> int:
    """The longest MessagePack or CBOR header before ``length`` bytes, items or pairs."""
    if length < 256:
        return 2
    if length < 65536:
        return 3
    if length < 2**32:
        return 5
    return 9


def _int_size(value: int) -> int:
    magnitude = abs(value)
    if magnitude < 24:
        binary = 1
    elif magnitude < 128:
        binary = 2
    elif magnitude < 32768:
        binary = 3
    elif magnitude < 2**31:
        binary = 5
    elif magnitude < 2**64:
        binary = 9
    else:  # CBOR bignum: tag, then a byte string; digits estimated (str() refuses huge ints)
        length = (magnitude.bit_length() + 7) // 8
        return max(magnitude.bit_length() * 31 // 100 + 2, 1 + _binary_header(length) + length)
    return max(len(str(value)), binary)


def _str_size(value: str) -> int:
    raw = len(value.encode("utf-8", "surrogatepass"))
    if _NEEDS_ESCAPE.search(value) is None:  # the common case: JSON only adds the quotes
        quoted = raw + 2
    else:
        quoted = len(json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass"))
    return max(quoted, raw + _binary_header(raw))


def wire_size(value: object) -> int:
    """An upper bound on the bytes ``value`` takes in WAMP's JSON, MessagePack or CBOR form.

    Containers are walked without recursion, so a deeply nested value cannot
    exhaust the stack. A type no WAMP serializer produces is counted by its
    ``repr`` plus a margin.
    """
    total = 0
    stack: list[object] = [value]
    while stack:
        item = stack.pop()
        if item is None or isinstance(item, bool):
            total += 5  # "false"
        elif isinstance(item, int):
            total += _int_size(item)
        elif isinstance(item, float):
            total += max(len(repr(item)), 9)  # JSON writes repr(), or NaN / Infinity (8)
        elif isinstance(item, str):
            total += _str_size(item)
        elif isinstance(item, bytes | bytearray | memoryview):
            length = len(bytes(item))
            total += max(_JSON_BINARY_OVERHEAD + 4 * ((length + 2) // 3), length + _binary_header(length))
        elif isinstance(item, list | tuple):
            count = len(item)
            total += max(2 + max(count - 1, 0), _binary_header(count))  # brackets and commas
            stack.extend(item)
        elif isinstance(item, dict):
            count = len(item)
            total += max(2 + 2 * count - 1 if count else 2, _binary_header(count))  # braces, colons, commas
            for key, member in item.items():
                if isinstance(key, str):
                    stack.append(key)
                else:  # JSON writes the key as a string, the binary forms as itself
                    stack.append(str(key))
                    stack.append(key)
                stack.append(member)
        else:
            total += len(repr(item).encode("utf-8", "surrogatepass")) + 16
    return total
