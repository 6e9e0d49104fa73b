"""An event's arguments as JSON, written once for its JSON EVENT frames and for a store's text.

Why: per event of an HTTP batch the router wrote the same ``[data]`` to JSON
twice, once as the store's text (:func:`broker.history.storedtext.encode`, the
Redis and SQLite engines) and once inside the EVENT of every JSON subscription
(with the position beside it), ~4 µs of the ~20 µs the router spent per event
(``bench/http_publish.py``). :func:`args_json` writes them once, as autobahn's
JSON serializer writes them; :func:`wire_tail` is what follows an EVENT's
details in that serializer's frame (its arguments, then its keyword arguments
if any), with a position written from a template; and a store builds its text
from the same JSON (:func:`broker.history.storedtext.encode`'s ``args_json``).

Exactness: autobahn's ``JsonObjectSerializer`` writes ``json.dumps(obj,
separators=(",", ":"), ensure_ascii=False, sort_keys=False)`` with a ``default``
for bytes and ``Decimal``; for a value holding neither that is what
:data:`_WRITE` writes, so :func:`args_json` gives up (None) on a value it cannot
write and the EVENT is serialized whole as before. ``tests/test_eventtext.py``
compares the texts with autobahn's and the store's own.
"""

from __future__ import annotations

import json
from json.encoder import encode_basestring
from typing import Any, Final

from broker.core import jsonwriter
from broker.history import POSITION_KEY

#: autobahn's JSON serializer's options (see the module), its C encoder made once.
_WRITE: Final = jsonwriter.writer(json.JSONEncoder(separators=(",", ":"), ensure_ascii=False))
#: ``{"broker_position":{"epoch":`` as :data:`_WRITE` writes the start of a position's kwargs.
_POSITION_HEAD: Final = "{" + encode_basestring(POSITION_KEY) + ':{"epoch":'


def args_json(args: Any) -> str | None:
    """``args`` as autobahn's JSON serializer writes them, or None for a value it alone writes
    (bytes, ``Decimal``) or none does (a cycle, another type)."""
    try:
        return _WRITE(args)
    except (TypeError, ValueError, RecursionError):
        return None


def wire_tail(args: Any, args_text: str, kwargs: dict[str, Any]) -> str | None:
    """What follows the details in the JSON frame of an EVENT of ``args`` (written as
    ``args_text``, :func:`args_json`) and ``kwargs``: ``args,kwargs``, ``args`` alone when
    ``kwargs`` is empty, nothing when both are (``message.Event.marshal``'s rule). A position's
    kwargs ``{"broker_position": {"epoch": str, "seq": int, "cursor": int}}`` are written from a
    template; other kwargs by :func:`args_json` (None if it gives up)."""
    if not kwargs:
        return args_text if args else ""
    kwargs_text = _position_json(kwargs) or args_json(kwargs)
    return None if kwargs_text is None else f"{args_text},{kwargs_text}"


def _position_json(kwargs: dict[str, Any]) -> str | None:
    position = kwargs.get(POSITION_KEY)
    if len(kwargs) != 1 or type(position) is not dict or tuple(position) != _ORDER:
        return None
    epoch, seq, cursor = position.values()
    if type(epoch) is not str or type(seq) is not int or type(cursor) is not int:
        return None
    quoted = _QUOTED.get(epoch)
    if quoted is None:
        if len(_QUOTED) >= 8:  # a node sees one epoch at a time: a few are plenty
            _QUOTED.clear()
        quoted = _QUOTED[epoch] = encode_basestring(epoch)
    return f'{_POSITION_HEAD}{quoted},"seq":{seq},"cursor":{cursor}}}}}'


_ORDER: Final = ("epoch", "seq", "cursor")
#: epoch -> its JSON string (quoted once, not per event)
_QUOTED: dict[str, str] = {}
