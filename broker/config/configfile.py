"""Reading and writing the node config file: stable formatting, atomic replacement.

Why: operators read and review ``.crossbar/config.json`` by hand (and diff it
in code review), so ``broker config`` edits must not reflow the whole file:
:func:`format_config` lays a config out the way the hand-written file is laid
out — small objects and lists inline on one line, settings blocks and grant
lists one entry per line — so that formatting the unchanged file reproduces it
byte for byte and an edit shows up as the lines it changed. :func:`write`
replaces the file atomically (a crash leaves the old file or the new one,
never half of each) and keeps its permissions.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from broker.config import atomicfile

#: Spaces per nesting level.
INDENT: Final = 4
#: Longest line (indentation, key and trailing comma included) an inline container may make.
WIDTH: Final = 130
#: Keys whose object or list value is always laid out one entry per line (settings blocks).
BLOCK_KEYS: Final = frozenset({"options", "http_publish", "slow_subscriber", "policies", "permissions"})
#: Keys whose members' list values are laid out one entry per line (a role's grants).
BLOCK_MEMBER_KEYS: Final = frozenset({"grants"})


def _scalar(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


def _inline(value: object) -> str:
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_scalar(str(k))}: {_inline(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_inline(v) for v in value) + "]"
    return _scalar(value)


def _format(
    value: object, level: int, prefix: str, suffix: str, block: bool, member_block: bool
) -> list[str]:
    """Lines for ``value`` at nesting ``level``, the first starting with ``prefix`` (a key)."""
    pad = " " * (INDENT * level)
    if not isinstance(value, Mapping | list) or not value:
        return [f"{pad}{prefix}{_inline(value)}{suffix}"]
    one_line = f"{pad}{prefix}{_inline(value)}{suffix}"
    if not block and len(one_line) <= WIDTH:
        return [one_line]
    opening, closing = ("{", "}") if isinstance(value, Mapping) else ("[", "]")
    lines = [f"{pad}{prefix}{opening}"]
    if isinstance(value, Mapping):
        items = list(value.items())
        for i, (key, item) in enumerate(items):
            key = str(key)
            lines += _format(
                item,
                level + 1,
                f"{_scalar(key)}: ",
                "," if i < len(items) - 1 else "",
                block=key in BLOCK_KEYS or member_block,
                member_block=key in BLOCK_MEMBER_KEYS,
            )
    else:
        for i, item in enumerate(value):
            lines += _format(item, level + 1, "", "," if i < len(value) - 1 else "", False, False)
    lines.append(f"{pad}{closing}{suffix}")
    return lines


def format_config(config: Mapping[str, Any]) -> str:
    """The text of ``config`` in the node config's house style, ending in a newline."""
    return "\n".join(_format(config, 0, "", "", True, False)) + "\n"


def write(path: Path, text: str) -> None:
    """Replace the file at ``path`` with ``text`` atomically, keeping its permission bits.

    The text goes to a temporary file in the same directory, is flushed to
    disk, then renamed over ``path``: readers see the old file or the new one.
    A new file gets mode 0644 (a config holds ``${VAR}`` references, never secrets).
    """
    atomicfile.write_text(path, text)
