"""History engines: the I/O side of :mod:`broker.history`, built from a ``type`` string.

Each engine implements :class:`broker.history.HistoryStore`; :data:`ENGINES`
maps a spec's ``type`` to the function that builds it, so a new engine
is one module and one row here. Specs are validated by
:func:`broker.history.check_store_spec` before anything is created. An
engine that talks to a server (Redis) gets its connection from the caller
(``connect``): the router passes a Twisted one, so this package stays free
of Twisted.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any, Final

from broker.engines import redis
from broker.engines.memory import MemoryStore
from broker.engines.sqlite import SQLiteStore
from broker.history import (
    DEFAULT_MAX_TOPICS,
    DEFAULT_REDIS_TIMEOUT,
    HistoryStore,
    check_store_spec,
    parse_redis_url,
)

#: A builder: ``(spec, base_dir, connect) -> store``; relative file paths are taken from
#: ``base_dir``, a server engine's connection from ``connect`` (None: there is none).
Builder = Callable[[Mapping[str, Any], str, "redis.Connect | None"], HistoryStore]


def _memory(spec: Mapping[str, Any], base_dir: str, connect: redis.Connect | None) -> HistoryStore:
    return MemoryStore(max_topics=spec.get("max_topics", DEFAULT_MAX_TOPICS))


def _sqlite(spec: Mapping[str, Any], base_dir: str, connect: redis.Connect | None) -> HistoryStore:
    path = os.path.join(base_dir, spec["path"])
    return SQLiteStore(path, max_topics=spec.get("max_topics", DEFAULT_MAX_TOPICS))


def _redis(spec: Mapping[str, Any], base_dir: str, connect: redis.Connect | None) -> HistoryStore:
    if connect is None:
        raise ValueError("a Redis store needs a connection: run it in the node (broker run)")
    timeout = float(spec.get("timeout", DEFAULT_REDIS_TIMEOUT))
    return redis.RedisStore(
        connect(parse_redis_url(spec["url"]), timeout),
        timeout=timeout,
        prefix=spec.get("prefix", redis.DEFAULT_PREFIX),
        max_topics=spec.get("max_topics", DEFAULT_MAX_TOPICS),
        log_max=spec.get("log_max", redis.DEFAULT_LOG_MAX),
    )


#: Every engine, by the ``type`` a spec names.
ENGINES: Final[Mapping[str, Builder]] = {"memory": _memory, "sqlite": _sqlite, "redis": _redis}


def create_store(
    spec: Mapping[str, Any],
    path: str = "$.history.store",
    base_dir: str = ".",
    connect: redis.Connect | None = None,
) -> HistoryStore:
    """Build the store ``spec["type"]`` names; ConfigErrors name the JSON path ``path``.

    ``connect`` opens a Redis link (see :class:`broker.engines.redis.RedisLink`);
    a Redis spec without it raises ValueError.
    """
    check_store_spec(spec, path)
    return ENGINES[spec.get("type", "memory")](spec, base_dir, connect)
