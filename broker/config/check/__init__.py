"""``broker check``: everything wrong with a node config, each error with its JSON path and line.

Why: crossbar 26.10's ``check`` passes many broken configs (misspelt keys,
dangling realm and role references, missing classes) that then fail at start
with a traceback, or never; and it names no path or line. This package checks
the node config and Broker's settings without crossbar, Twisted or Autobahn:

- :mod:`~broker.config.check.structure`: unknown keys and types, with near misses
  (tables in :mod:`~broker.config.check.schema`);
- :mod:`~broker.config.check.references`: realms, roles, procedures, classes;
- :mod:`~broker.config.check.settings`: Broker's settings and the secrets;
- :mod:`~broker.config.check.lint`: the hardened defaults;
- :mod:`~broker.config.check.locate` and :mod:`~broker.config.check.report`:
  lines, columns and output.

:mod:`~broker.config.check.crossbar` runs ``crossbar check`` itself, last.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from broker.config.check import classes, lint, locate, references, report, structure
from broker.config.check import settings as broker_settings
from broker.errors import ConfigError


@dataclass
class Result:
    """What :func:`check_file` found; ``config`` is ``None`` when the file is not a JSON object."""

    errors: list[ConfigError]
    warnings: list[report.ConfigWarning] = field(default_factory=list)
    config: Mapping[str, Any] | None = None
    positions: locate.Positions = field(default_factory=locate.Positions)

    def findings(self) -> list[report.Finding]:
        """The errors and warnings with their lines and columns, in file order."""
        return report.locate([*self.errors, *self.warnings], self.positions)


def check_document(
    config: Mapping[str, Any],
    config_dir: Path,
    defined: Callable[[str], bool],
    find_class: references.ClassFinder = classes.find_class,
) -> list[ConfigError]:
    """Every error (and :class:`~broker.config.check.report.ConfigWarning`) in the parsed node ``config``.

    Relative paths in it are relative to ``config_dir``; ``defined(VAR)`` says
    whether a ``${VAR}`` secret will have a value, ``find_class`` whether a
    ``classname`` can be loaded.
    """
    return [
        *structure.structure_errors(config),
        *references.reference_errors(config, config_dir, find_class),
        *broker_settings.settings_errors(config),
        *broker_settings.secret_errors(config, defined),
        *lint.lint_errors(config),
    ]


def check_file(
    config_path: Path,
    defined: Callable[[str], bool],
    find_class: references.ClassFinder = classes.find_class,
    render: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> Result:
    """Read, parse and check the node config at ``config_path`` (see :func:`check_document`).

    ``render`` is what ``broker run`` makes of the parsed config before running it
    (``BROKER_REDIS_URL``: a Redis store): the check is of that, located in the file.
    """
    try:
        text = config_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return Result([ConfigError("$", f"cannot read {config_path}: {exc}")])
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        return Result([report.JsonSyntaxError(f"invalid JSON: {exc.msg}", exc.lineno, exc.colno)])
    positions = locate.scan(text)
    if not isinstance(config, dict):
        return Result([ConfigError("$", f"a node config is a JSON object, not {type(config).__name__}")])
    errors = [
        ConfigError(
            path, "this key appears earlier in the same object too; crossbar silently uses this last one"
        )
        for path in positions.duplicates
    ]
    if render is not None:
        config = render(config)
    found = errors + check_document(config, config_path.parent, defined, find_class)
    return Result(
        [e for e in found if not isinstance(e, report.ConfigWarning)],
        [e for e in found if isinstance(e, report.ConfigWarning)],
        config,
        positions,
    )
