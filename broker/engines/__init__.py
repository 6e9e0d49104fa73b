"""History engines: the I/O side of :mod:`broker.history`, built from a ``type`` string.

Each engine implements :class:`broker.history.HistoryStore`; :data:`ENGINES`
maps a spec's ``type`` to the function that builds it, so a new engine
(``redis``, next) is one module and one row here. Specs are validated by
:func:`broker.history.check_store_spec` before anything is created.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any, Final

from broker.engines.memory import MemoryStore
from broker.engines.sqlite import SQLiteStore
from broker.history import DEFAULT_MAX_TOPICS, HistoryStore, check_store_spec

#: A builder: ``(spec, base_dir) -> store``; relative file paths are taken from ``base_dir``.
Builder = Callable[[Mapping[str, Any], str], HistoryStore]


def _memory(spec: Mapping[str, Any], base_dir: str) -> HistoryStore:
    return MemoryStore(max_topics=spec.get("max_topics", DEFAULT_MAX_TOPICS))


def _sqlite(spec: Mapping[str, Any], base_dir: str) -> HistoryStore:
    path = os.path.join(base_dir, spec["path"])
    return SQLiteStore(path, max_topics=spec.get("max_topics", DEFAULT_MAX_TOPICS))


#: Every engine, by the ``type`` a spec names.
ENGINES: Final[Mapping[str, Builder]] = {"memory": _memory, "sqlite": _sqlite}


def create_store(spec: Mapping[str, Any], path: str = "$.history.store", base_dir: str = ".") -> HistoryStore:
    """Build the store ``spec["type"]`` names; ConfigErrors name the JSON path ``path``."""
    check_store_spec(spec, path)
    return ENGINES[spec.get("type", "memory")](spec, base_dir)
