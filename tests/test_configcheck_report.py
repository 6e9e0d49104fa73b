"""Lines, columns and the two output forms (broker.config.check.report)."""

from __future__ import annotations

from broker.config.check.locate import scan
from broker.config.check.report import ConfigWarning, Finding, JsonSyntaxError, as_json, locate, text
from broker.errors import ConfigError

DOC = '{\n  "a": {\n    "b": 1\n  },\n  "c": []\n}\n'


def test_errors_are_located_and_sorted_by_position() -> None:
    errors = [
        ConfigError("$.c[0]", "missing element"),
        ConfigError("$.a.b", "bad b"),
        JsonSyntaxError("invalid JSON: x", 9, 4),
    ]
    assert locate(errors, scan(DOC)) == [
        Finding("$.a.b", 3, 5, "bad b"),
        Finding("$.c[0]", 5, 3, "missing element"),
        Finding("$", 9, 4, "invalid JSON: x"),
    ]


def test_text_is_file_line_column_path_message() -> None:
    assert text([Finding("$.a.b", 3, 5, "bad b")], ".crossbar/config.json") == [
        ".crossbar/config.json:3:5: $.a.b: bad b"
    ]


def test_json_has_every_field() -> None:
    assert as_json([Finding("$.a.b", 3, 5, "bad b")]) == [
        {"path": "$.a.b", "line": 3, "column": 5, "message": "bad b", "severity": "error"}
    ]


def test_a_json_syntax_error_is_a_config_error_at_the_root() -> None:
    error = JsonSyntaxError("invalid JSON: x", 2, 7)
    assert isinstance(error, ConfigError)
    assert (error.path, str(error), error.line, error.column) == ("$", "$: invalid JSON: x", 2, 7)


def test_a_warning_says_so() -> None:
    [finding] = locate([ConfigWarning("$.a", "unclear")], scan(DOC))
    assert finding.severity == "warning"
    assert text([finding], "c.json") == ["c.json:2:3: $.a: warning: unclear"]
