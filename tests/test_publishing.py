"""The publish API's pure rules (:mod:`broker.core.publishing`), without a node."""

from __future__ import annotations

import pytest

from broker.core.publishing import parse_body
from broker.errors import ClientError


def test_body_nesting_follows_the_websocket_limit() -> None:
    """100 levels (the object plus 99 in ``data``) pass; 101 are refused before decoding."""
    events, _ = parse_body(b'{"topic": "public.x", "data": ' + b"[" * 99 + b"]" * 99 + b"}", 1)
    assert events[0].topic == "public.x"
    with pytest.raises(ClientError, match=r"^body is JSON nested deeper than 100 levels$"):
        parse_body(b'{"topic": "public.x", "data": ' + b"[" * 100 + b"]" * 100 + b"}", 1)


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    events, _ = parse_body(b'{"topic": "public.x", "data": "' + b"[{" * 500 + b'"}', 1)
    assert events[0].data == "[{" * 500
