"""``broker check``: the config checks, then ``crossbar check``, without starting a node.

With ``BROKER_REDIS_URL`` set it checks the config as ``broker run`` would run
it then (its history store in Redis, :mod:`broker.config.clusterenv`), and a
bad URL is the one line ``broker run`` would fail with.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from broker.cli.common import fail
from broker.config import check as configcheck
from broker.config import clusterenv, devsecrets, nodeconfig
from broker.config.check import report
from broker.config.check.crossbar import crossbar_check
from broker.config.settings import component_settings
from broker.errors import BrokerError, ConfigError


def crossbar_executable() -> Path:
    """The ``crossbar`` executable installed next to this Python."""
    path = Path(sys.executable).with_name("crossbar")
    if not path.exists():
        raise BrokerError(f"{path} not found: install the node with pip install 'broker[node]'")
    return path


def broker_component(config: Mapping[str, Any], env: Mapping[str, str] | None = None) -> Mapping[str, Any]:
    """Broker's router component in ``config``, once its settings are known valid.

    ``env`` resolves the settings' ``${VAR}`` secrets; by default every
    referenced variable counts as set, because
    :func:`broker.config.check.settings.secret_errors` reports
    the missing ones for the whole config, each once.
    """
    component, _ = component_settings(config, nodeconfig.assume_set(config) if env is None else env)
    return component


def _as_run(redis_url: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The config as ``broker run`` runs it with ``BROKER_REDIS_URL`` set: its store in Redis."""

    def render(config: dict[str, Any]) -> dict[str, Any]:
        try:
            return clusterenv.join_cluster(config, redis_url)
        except (ConfigError, TypeError):  # no Broker component, or not shaped so: the checks say where
            return config

    return render


def _check(config_path: Path, redis_url: str | None = None) -> configcheck.Result:
    """Broker's checks of the config at ``config_path``, then, if they pass, ``crossbar check``.

    A ``${VAR}`` counts as set when the environment has it, or when the dev
    secrets file ``broker run`` reads or creates next to the config will.
    ``redis_url`` (a checked ``BROKER_REDIS_URL``) checks the config as
    ``broker run`` runs it then: with its history store in Redis.
    """
    try:
        dev = devsecrets.provides(devsecrets.path_for(config_path.parent))
    except ConfigError as exc:
        return configcheck.Result([exc])
    render = None if redis_url is None else _as_run(redis_url)
    result = configcheck.check_file(config_path, lambda var: var in os.environ or var in dev, render=render)
    if result.errors or result.config is None:
        return result
    try:
        crossbar_error = crossbar_check(crossbar_executable(), result.config, config_path.parent)
    except BrokerError as exc:
        crossbar_error = ConfigError("$", f"crossbar check: {exc}")
    if crossbar_error is not None:
        result.errors.append(crossbar_error)
    return result


def check_config(config_path: Path) -> list[ConfigError]:
    """Everything wrong with the node config at ``config_path`` (empty when it is fine).

    See :mod:`broker.config.check`: unknown keys, references, Broker's
    settings, unset secrets and the hardened defaults; then ``crossbar check``.
    """
    return _check(config_path).errors


def cmd_check(args: argparse.Namespace) -> int:
    config_path: Path = args.config
    if not config_path.is_file():
        return fail(f"--config {config_path}: no such file", status=2)
    try:
        redis_url = clusterenv.redis_url(os.environ)  # as broker run reads it
    except ConfigError as exc:  # the same one line as broker run's (the JSON form: no line in the file)
        if args.json:
            found = {
                "path": exc.path,
                "line": None,
                "column": None,
                "message": exc.message,
                "severity": "error",
            }
            print(json.dumps({"ok": False, "errors": [found]}, indent=2))
        return fail(f"config error: {exc}")
    result = _check(config_path, redis_url)
    findings = result.findings()
    store = None if redis_url is None else {"type": "redis", "url": clusterenv.shown(redis_url)}
    if args.json:
        answer = {"ok": not result.errors, "errors": report.as_json(findings)}
        print(json.dumps(answer if store is None else {**answer, "store": store}, indent=2))
    else:
        for line in report.text(findings, str(config_path)):
            print(line, file=sys.stderr)
        if not result.errors:
            cluster = "" if redis_url is None else f" (history in Redis {clusterenv.shown(redis_url)})"
            print(f"ok: {config_path}{cluster}")
    return 1 if result.errors else 0
