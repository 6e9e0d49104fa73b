"""A ``json.JSONEncoder``'s ``encode``, with its C encoder made once instead of per call.

Why: ``JSONEncoder.encode`` (and ``json.dumps`` with any option) builds a new
C encoder (``c_make_encoder``) on every call: about a third of encoding a small
payload, paid per event where Broker encodes one (an EVENT frame's JSON, a
store's payload text, the recovery check). :func:`writer` makes that C encoder
once, from the encoder's own options, and gives the same text with the same
circular-reference check: its ``markers`` are empty again after every call,
and cleared after a failed one. Without the C encoder (another Python), or
for options the C encoder does not take (``indent``), it is ``encode`` itself.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from json import encoder as json_encoder
from typing import Any


def writer(encoder: json.JSONEncoder) -> Callable[[Any], str]:
    """``encoder.encode``, as one callable whose C encoder is made once (see the module)."""
    make = getattr(json_encoder, "c_make_encoder", None)
    if make is None or encoder.indent is not None:
        return encoder.encode
    markers: dict[int, Any] | None = {} if encoder.check_circular else None
    quote = json_encoder.encode_basestring_ascii if encoder.ensure_ascii else json_encoder.encode_basestring
    chunks = make(
        markers,
        encoder.default,
        quote,
        encoder.indent,
        encoder.key_separator,
        encoder.item_separator,
        encoder.sort_keys,
        encoder.skipkeys,
        encoder.allow_nan,
    )

    def write(obj: Any) -> str:
        try:
            return "".join(chunks(obj, 0))
        except BaseException:  # re-raised: the containers it was inside when it failed are let go
            if markers is not None:
                markers.clear()
            raise

    return write
