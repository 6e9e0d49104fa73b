"""Where each value of a JSON document is: JSON path -> (line, column).

Why: ``json.loads`` forgets positions, and an operator fixing a config wants
the line, not only ``$.workers[0].realms[0].roles[1].name``. This is a small
scanner over already-valid JSON (the caller parses it with :mod:`json` first,
so syntax errors keep the standard library's messages) that records where
every member and element starts, keyed by the same path spelling as
:func:`broker.config.nodeconfig.child_path`. Stdlib only.
"""

from __future__ import annotations

import bisect
import json
import re
from dataclasses import dataclass, field
from typing import Final

from broker.config.nodeconfig import child_path

_WHITESPACE: Final = re.compile(r"[ \t\n\r]*")
#: A string token, escapes included (the caller guarantees valid JSON).
_STRING: Final = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
#: Numbers, ``true``, ``false``, ``null``: everything up to the next delimiter.
_SCALAR: Final = re.compile(r"[^,\]}\s]+")
#: The last step of a JSON path: ``.name``, ``[3]`` or ``["odd key"]``.
_LAST_STEP: Final = re.compile(r'(\.[^.\[\]]+|\[\d+\]|\["(?:[^"\\]|\\.)*"\])$')


def parent_path(path: str) -> str | None:
    """The path one step up from ``path`` (``None`` for ``$``)."""
    found = _LAST_STEP.search(path)
    if path == "$" or found is None:
        return None
    return path[: found.start()] or None


@dataclass
class Positions:
    """Line and column (both 1-based) of every value in one JSON document.

    A member's position is its key's opening quote, an element's is its
    value's first character. Keys that occur twice in one object are listed
    in :attr:`duplicates` (``json`` keeps the last, and so does this map).
    Members with odd keys are also found as ``parent.odd key``, the spelling
    :mod:`broker.config.settings` uses in its errors.
    """

    at: dict[str, tuple[int, int]] = field(default_factory=dict)
    duplicates: list[str] = field(default_factory=list)

    def find(self, path: str) -> tuple[int, int]:
        """Where ``path`` is, else where its nearest recorded ancestor is (``(1, 1)`` at worst)."""
        current: str | None = path
        while current is not None:
            if current in self.at:
                return self.at[current]
            current = parent_path(current)
        return (1, 1)


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.line_starts = [0] + [i + 1 for i, c in enumerate(text) if c == "\n"]
        self.positions = Positions()

    def where(self, offset: int) -> tuple[int, int]:
        line = bisect.bisect_right(self.line_starts, offset)
        return line, offset - self.line_starts[line - 1] + 1

    def skip(self) -> None:
        found = _WHITESPACE.match(self.text, self.pos)
        self.pos = found.end() if found else self.pos

    def record(self, path: str, alias: str, offset: int) -> None:
        self.positions.at[path] = self.where(offset)
        self.positions.at.setdefault(alias, self.positions.at[path])

    def value(self, path: str, alias: str) -> None:
        self.skip()
        char = self.text[self.pos]
        if char == "{":
            self.members(path, alias)
        elif char == "[":
            self.elements(path, alias)
        else:
            token = (_STRING if char == '"' else _SCALAR).match(self.text, self.pos)
            if token is None:
                raise ValueError(f"not JSON at offset {self.pos}")
            self.pos = token.end()

    def members(self, path: str, alias: str) -> None:
        self.pos += 1  # {
        self.skip()
        if self.text[self.pos] == "}":
            self.pos += 1
            return
        seen: set[str] = set()
        while True:
            self.skip()
            key_at = self.pos
            token = _STRING.match(self.text, self.pos)
            if token is None:
                raise ValueError(f"not JSON at offset {self.pos}")
            key = json.loads(token.group())
            self.pos = token.end()
            self.skip()
            self.pos += 1  # :
            member, member_alias = child_path(path, key), f"{alias}.{key}"
            if key in seen:
                self.positions.duplicates.append(member)
            seen.add(key)
            self.record(member, member_alias, key_at)
            self.value(member, member_alias)
            self.skip()
            self.pos += 1  # , or }
            if self.text[self.pos - 1] == "}":
                return

    def elements(self, path: str, alias: str) -> None:
        self.pos += 1  # [
        self.skip()
        if self.text[self.pos] == "]":
            self.pos += 1
            return
        index = 0
        while True:
            self.skip()
            element = f"{path}[{index}]"
            self.record(element, f"{alias}[{index}]", self.pos)
            self.value(element, f"{alias}[{index}]")
            self.skip()
            self.pos += 1  # , or ]
            if self.text[self.pos - 1] == "]":
                return
            index += 1


def scan(text: str) -> Positions:
    """The positions of every value in ``text``, which must be valid JSON.

    Raises :class:`ValueError` when it is not (parse with :mod:`json` first).
    """
    scanner = _Scanner(text)
    scanner.skip()
    scanner.record("$", "$", scanner.pos)
    try:
        scanner.value("$", "$")
    except IndexError:
        raise ValueError("truncated JSON") from None
    return scanner.positions
