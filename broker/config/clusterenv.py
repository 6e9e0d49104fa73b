"""``BROKER_REDIS_URL``: a node joins a cluster from its environment, with no edit to its config.

Why: every node of a cluster runs the same shipped config; what makes one a
cluster node is the Redis it shares with the others. crossbar's ``${VAR}``
must be set, so the config cannot name the variable itself (a single node
would then fail to start). Instead ``broker run`` (and a live reload, so the
two agree) renders the Broker component's ``extra.history.store`` as
``{"type": "redis", "url": ...}`` when the variable is set and not empty; the
store's options a Redis store also takes (``max_topics``, and ``prefix``,
``timeout``, ``log_max`` of a Redis store in the file) are kept.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import urlsplit

from broker.config.settings import find_component
from broker.errors import ConfigError
from broker.history import STORE_OPTIONS, parse_redis_url

#: The variable that names the cluster's Redis (``redis://host:port/db``).
ENV_REDIS_URL: Final = "BROKER_REDIS_URL"


def redis_url(env: Mapping[str, str]) -> str | None:
    """The Redis URL ``env`` sets, checked; None when unset or empty (a single node).

    Raises :class:`ConfigError` at ``BROKER_REDIS_URL`` saying what is wrong.
    """
    url = env.get(ENV_REDIS_URL, "")
    if not url:
        return None
    try:
        parse_redis_url(url)
    except ValueError as error:
        expected = "expected redis://[user:password@]host[:port][/db]"
        raise ConfigError(ENV_REDIS_URL, f"{error} ({expected})") from None
    return url


def join_cluster(config: Mapping[str, Any], url: str) -> dict[str, Any]:
    """A copy of ``config`` whose Broker component keeps its history in Redis at ``url``."""
    joined = copy.deepcopy(dict(config))
    _, component = find_component(joined)
    extra = component.setdefault("extra", {}) if isinstance(component, dict) else None
    history = extra.setdefault("history", {}) if isinstance(extra, dict) else None
    if not isinstance(history, dict):
        return joined  # not an object: the settings check reports it at its path
    store = history.get("store")
    kept = {k: v for k, v in store.items() if k in STORE_OPTIONS["redis"]} if isinstance(store, dict) else {}
    if not isinstance(store, dict) or store.get("type") != "redis":
        kept = {k: v for k, v in kept.items() if k == "max_topics"}
    history["store"] = {"type": "redis", **kept, "url": url}
    return joined


def shown(url: str) -> str:
    """``url`` fit for a log line: its password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[1]
    return parts._replace(netloc=f"{user}:***@{host}").geturl()
