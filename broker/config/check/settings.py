"""Broker's own settings and the secrets the node config references.

Why: Broker's settings (the ``extra`` of its router component) are parsed by
:func:`broker.config.settings.parse_settings` when the node starts; a mistake there
is a worker that fails to start. Checking them here with the same parser
finds it first. Secrets are never in the file (``${VAR}``), so the parser
sees every referenced variable as set, and each unset one is reported once,
at the path that references it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from broker.config import nodeconfig
from broker.config.settings import component_settings
from broker.errors import ConfigError


def settings_errors(config: Mapping[str, Any]) -> list[ConfigError]:
    """A missing Broker component, or the first error in its settings (the parser stops there)."""
    workers = config.get("workers", [])
    if not isinstance(workers, list) or any(
        not isinstance(worker.get("components", []), list)
        for worker in workers
        if isinstance(worker, Mapping)
    ):
        return []  # the structure check reports it; Broker's component cannot be found
    try:
        component_settings(config, nodeconfig.assume_set(config))
    except ConfigError as exc:
        return [exc]
    return []


def secret_errors(config: Mapping[str, Any], defined: Callable[[str], bool]) -> list[ConfigError]:
    """An error for each ``${VAR}`` in ``config`` that ``defined`` says has no value."""
    return [
        ConfigError(path, f"environment variable {var} is not set")
        for path, var in nodeconfig.env_references(config)
        if not defined(var)
    ]
