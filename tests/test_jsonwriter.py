"""broker.core.jsonwriter.writer: the text of ``encoder.encode``, its C encoder made once."""

from __future__ import annotations

import json
from typing import Any

import pytest

from broker.core.jsonwriter import writer

ENCODERS = [
    pytest.param(json.JSONEncoder(), id="json.dumps"),
    pytest.param(json.JSONEncoder(separators=(",", ":")), id="compact"),
    pytest.param(json.JSONEncoder(ensure_ascii=False, separators=(",", ":")), id="unicode"),
    pytest.param(json.JSONEncoder(sort_keys=True, skipkeys=True, default=lambda _v: None), id="options"),
]
VALUES: list[Any] = [
    [[1], {}],
    "a top-level string é",
    [["é ✓ 😀", None, True, False, -0.0, 1e300, 2**70], {"k": [1.5, {"n": []}], "a": '\u2028\n"\\'}],
    [[float("nan"), float("inf")], {"b": "x"}],
]


@pytest.mark.parametrize("encoder", ENCODERS)
@pytest.mark.parametrize("value", VALUES)
def test_it_writes_what_encode_writes(encoder: json.JSONEncoder, value: Any) -> None:
    assert writer(encoder)(value) == encoder.encode(value)


def test_a_failed_write_leaves_it_usable_with_its_circular_check() -> None:
    write = writer(json.JSONEncoder(separators=(",", ":")))
    looped: list[Any] = []
    looped.append(looped)
    with pytest.raises(ValueError, match="Circular reference"):
        write([looped])
    with pytest.raises(TypeError):
        write([[1], {"s": {1, 2}}])
    shared = [1]
    assert write([shared, shared]) == "[[1],[1]]"  # no marker left over from the failures


def test_an_indenting_encoder_is_its_own_encode() -> None:
    encoder = json.JSONEncoder(indent=2)
    assert writer(encoder) == encoder.encode
