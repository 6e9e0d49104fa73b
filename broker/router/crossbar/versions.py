"""The versions Broker's crossbar patches were written for, checked before a node starts.

Why: ``broker/router/`` reaches into crossbar, autobahn, Twisted and txaio
internals (every patch is in ``broker/router/crossbar/``); a patch written against one
release can silently do nothing, or break delivery, on another. The ``node``
extra pins each of them exactly (``pyproject.toml``, one source: read back
here from the installed distribution's metadata), and ``broker run`` refuses
to start a node on anything else, in one line naming the package and both
versions. Pure: the installed versions come from a function it is given.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from importlib import metadata
from typing import Final

#: The distributions whose internals Broker patches.
PATCHED: Final = ("crossbar", "autobahn", "twisted", "txaio")

_PIN = re.compile(r"^\s*([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?\s*==\s*([^\s;,]+)\s*;\s*(.*)$")


def node_pins(requirements: Iterable[str]) -> dict[str, str]:
    """``name -> version`` for the exact (``==``) pins of the ``node`` extra among ``requirements``."""
    pins = {}
    for requirement in requirements:
        match = _PIN.match(requirement)
        if match and re.search(r"""extra\s*==\s*["']node["']""", match.group(3)):
            pins[match.group(1).lower()] = match.group(2)
    return pins


def mismatch(pins: dict[str, str], installed: Callable[[str], str | None]) -> str | None:
    """Why the installed patched distributions are not the pinned ones, or None if they are."""
    for name in PATCHED:
        wanted = pins.get(name)
        if wanted is None:
            continue  # the node extra does not pin it (a broken build): nothing to compare with
        have = installed(name)
        if have != wanted:
            found = f"{name} {have} is installed" if have else f"{name} is not installed"
            return (
                f"{found}, but Broker's crossbar patches were written and tested for {name} {wanted}: "
                "install the pinned versions (pip install -c constraints/node.txt 'broker[node]', "
                "or make venv)"
            )
    return None


def _installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def check_installed() -> str | None:
    """:func:`mismatch` for this Python's installed distributions (None when broker has no metadata)."""
    try:
        requirements = metadata.requires("broker") or []
    except metadata.PackageNotFoundError:
        return None
    return mismatch(node_pins(requirements), _installed)
