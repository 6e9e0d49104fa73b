"""``broker check``: the config checks, then ``crossbar check``, without starting a node."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from broker.cli.common import fail
from broker.config import check as configcheck
from broker.config import devsecrets, nodeconfig
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


def _check(config_path: Path) -> configcheck.Result:
    """Broker's checks of the config at ``config_path``, then, if they pass, ``crossbar check``.

    A ``${VAR}`` counts as set when the environment has it, or when the dev
    secrets file ``broker run`` reads or creates next to the config will.
    """
    try:
        dev = devsecrets.provides(devsecrets.path_for(config_path.parent))
    except ConfigError as exc:
        return configcheck.Result([exc])
    result = configcheck.check_file(config_path, lambda var: var in os.environ or var in dev)
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
    result = _check(config_path)
    findings = result.findings()
    if args.json:
        print(json.dumps({"ok": not result.errors, "errors": report.as_json(findings)}, indent=2))
    else:
        for line in report.text(findings, str(config_path)):
            print(line, file=sys.stderr)
        if not result.errors:
            print(f"ok: {config_path}")
    return 1 if result.errors else 0
