"""The 200 answer of ``POST /api/publish`` is ``json.dumps`` of its body, byte for byte.

:func:`broker.router.publish_batch.published_body` writes the JSON from a template per
event; anything it does not cover (an id that is no int, a position of another shape)
falls back to ``json.dumps``. Each case here compares the two.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from broker.router.publish_batch import PublishedBody, published_body

POSITION = {"epoch": "0123456789abcdef", "seq": 7, "cursor": 2**53}

CASES: list[tuple[list[str], list[Any], list[Any]]] = [
    (["public.a"], [1], [POSITION]),
    (["public.a", "public.b", "public.a"], [1, 2**53, 3], [POSITION, None, {**POSITION, "seq": 0}]),
    (["public.é.ü\u2028", 'public."q"\\'], [5, 6], [None, {"epoch": 'é"\\\x00', "seq": 1, "cursor": 2}]),
    (["public.a"], [True], [None]),  # a bool is no int: json.dumps writes true
    (["public.a"], [None], [POSITION]),  # a replay's null id
    (["public.a"], [1], [{"seq": 1, "epoch": "e", "cursor": 2}]),  # keys in another order
    (["public.a"], [1], [{"epoch": "e", "seq": True, "cursor": 2}]),
    (["public.a"], [1], [{"epoch": "e", "seq": 1, "cursor": 2, "more": 3}]),
    (["public.a"], [1], [{"epoch": 5, "seq": 1, "cursor": 2}]),
]


@pytest.mark.parametrize(("topics", "ids", "positions"), CASES)
def test_the_answer_is_json_dumps_of_its_body(
    topics: list[str], ids: list[Any], positions: list[Any]
) -> None:
    body = published_body(topics, ids, positions)
    assert type(body) is PublishedBody
    assert body == {
        "published": [
            {"topic": t, "id": i, "position": p} for t, i, p in zip(topics, ids, positions, strict=True)
        ]
    }
    assert body.encoded() == json.dumps(body).encode()
    assert json.loads(body.encoded()) == json.loads(json.dumps(body))


def test_a_template_body_is_made_from_the_template() -> None:
    # the common shape is written without json.dumps (its encoding is ready when made)
    body = published_body(["public.a"], [1], [POSITION])
    assert body._encoded is not None
    assert published_body(["public.a"], [True], [POSITION])._encoded is None
