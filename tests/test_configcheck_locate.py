"""The JSON position scanner: every path's line and column, as json.loads reads the same text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from broker.config.check.locate import parent_path, scan
from broker.config.nodeconfig import child_path

ROOT = Path(__file__).resolve().parent.parent

DOC = """{
  "a": 1,
  "b": {"c": [10, {"d": null}], "e f": "x"},
  "g": [
    [],
    {},
    "s\\"tr]ing,}"
  ],
  "h": -1.5e3, "i": true
}
"""


def test_records_members_at_their_keys_and_elements_at_their_values() -> None:
    at = scan(DOC).at
    assert at["$"] == (1, 1)
    assert at["$.a"] == (2, 3)
    assert at["$.b"] == (3, 3)
    assert at["$.b.c"] == (3, 9)
    assert at["$.b.c[0]"] == (3, 15)
    assert at["$.b.c[1]"] == (3, 19)
    assert at["$.b.c[1].d"] == (3, 20)
    assert at['$.b["e f"]'] == (3, 33)
    assert at["$.g[0]"] == (5, 5)
    assert at["$.g[1]"] == (6, 5)
    assert at["$.g[2]"] == (7, 5)
    assert at["$.h"] == (9, 3)
    assert at["$.i"] == (9, 16)


def test_records_exactly_the_paths_json_sees() -> None:
    def paths(value: object, path: str = "$") -> set[str]:
        found = {path}
        if isinstance(value, dict):
            for key, item in value.items():
                found |= paths(item, child_path(path, key))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                found |= paths(item, f"{path}[{i}]")
        return found

    text = (ROOT / ".crossbar" / "config.json").read_text()
    at = scan(text).at
    # aliases (``parent.odd key``) are extra entries for settings-style paths
    assert paths(json.loads(text)) <= set(at)
    lines = text.splitlines()
    for path, (line, column) in at.items():
        if path.endswith(".paths./"):
            assert lines[line - 1][column - 1 :].startswith('"/"')


def test_an_odd_key_is_found_in_both_spellings() -> None:
    at = scan('{"publishers": {"my-key": {"secret": 1}}}').at
    assert at['$.publishers["my-key"].secret'] == at["$.publishers.my-key.secret"] == (1, 28)


def test_columns_count_characters_not_bytes() -> None:
    assert scan('{"é": "ü", "x": 1}').at["$.x"] == (1, 12)


def test_duplicate_keys_are_listed_and_the_last_one_wins() -> None:
    positions = scan('{\n"a": 1,\n"a": 2\n}')
    assert positions.duplicates == ["$.a"]
    assert positions.at["$.a"] == (3, 1)


@pytest.mark.parametrize(
    ("path", "parent"),
    [
        ("$", None),
        ("$.a", "$"),
        ("$.a[3]", "$.a"),
        ('$.a["b.c"]', "$.a"),
        ("$.a.b-c", "$.a"),
        ("$.workers[0].realms[0].roles[1].name", "$.workers[0].realms[0].roles[1]"),
    ],
)
def test_parent_path(path: str, parent: str | None) -> None:
    assert parent_path(path) == parent


def test_find_falls_back_to_the_nearest_recorded_ancestor() -> None:
    positions = scan('{\n  "ws": {\n    "options": {}\n  }\n}')
    assert positions.find("$.ws.options.allowed_origins") == (3, 5)
    assert positions.find("$.nowhere[2].x") == (1, 1)


@pytest.mark.parametrize("text", ['{"a": ', '{"a" 1', "[1, 2"])
def test_refuses_what_is_not_json(text: str) -> None:
    with pytest.raises(ValueError):
        scan(text)
