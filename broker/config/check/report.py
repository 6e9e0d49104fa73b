"""Errors as an operator reads them (``file:line:column: path: message``) and as machines do (JSON).

Why: a JSON path says what is wrong, a line says where to look; editors and
CI annotations understand ``file:line:column:``. The JSON form carries the
same fields, so a deploy pipeline can fail with the same text.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any, Final

from broker.config.check.locate import Positions
from broker.errors import ConfigError

#: A finding that makes the config wrong: ``broker check`` exits 1.
ERROR: Final = "error"
#: A finding worth fixing that does not make the config wrong (``ConfigWarning``).
WARNING: Final = "warning"


@dataclass(frozen=True)
class Finding:
    """One error, where it is in the file."""

    path: str
    line: int
    column: int
    message: str
    severity: str = ERROR


class ConfigWarning(ConfigError):
    """A finding reported with the errors but never fatal: the setting is safe, yet unclear."""


class JsonSyntaxError(ConfigError):
    """The file is not JSON; ``line`` and ``column`` say where parsing stopped."""

    def __init__(self, message: str, line: int, column: int) -> None:
        super().__init__("$", message)
        self.line = line
        self.column = column


def locate(errors: Iterable[ConfigError], positions: Positions) -> list[Finding]:
    """``errors`` with their lines and columns, in file order."""
    findings = []
    for error in errors:
        if isinstance(error, JsonSyntaxError):
            line, column = error.line, error.column
        else:
            line, column = positions.find(error.path)
        severity = WARNING if isinstance(error, ConfigWarning) else ERROR
        findings.append(Finding(error.path, line, column, error.message, severity))
    return sorted(findings, key=lambda f: (f.line, f.column))


def text(findings: Iterable[Finding], source: str) -> list[str]:
    """One ``source:line:column: path: message`` line per finding (``path: warning: message``)."""
    return [
        f"{source}:{f.line}:{f.column}: {f.path}: {'warning: ' if f.severity == WARNING else ''}{f.message}"
        for f in findings
    ]


def as_json(findings: Iterable[Finding]) -> list[dict[str, Any]]:
    """The findings as JSON objects (path, line, column, message, severity)."""
    return [asdict(f) for f in findings]
