"""``broker check`` end to end: output forms, exit statuses, and ``crossbar check`` as the last step."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from broker.cli import check
from broker.cli import main as cli
from broker.errors import ConfigError

CONFIGS = Path(__file__).resolve().parent / "configs"
MINIMAL = CONFIGS / "valid" / "minimal.json"
BROKEN = CONFIGS / "broken"


@pytest.fixture
def no_crossbar_check(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Record ``crossbar check`` runs instead of making them."""
    runs: list[Any] = []

    def record(*args: Any) -> None:
        runs.append(args)

    monkeypatch.setattr(check, "crossbar_check", record)
    return runs


def test_text_report_goes_to_stderr_one_line_per_error(
    capsys: pytest.CaptureFixture[str], no_crossbar_check: list[Any]
) -> None:
    config = BROKEN / "store-key-typo.json"
    assert cli.main(["check", "--config", str(config)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    expected = (BROKEN / "store-key-typo.expected").read_text().splitlines()
    assert err.splitlines() == [line.replace("store-key-typo.json", str(config), 1) for line in expected]
    assert no_crossbar_check == []  # Broker's own checks failed: crossbar's is not needed


def test_json_report(capsys: pytest.CaptureFixture[str], no_crossbar_check: list[Any]) -> None:
    assert cli.main(["check", "--config", str(BROKEN / "realm-key-typo.json"), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False
    assert report["errors"][0] == {
        "path": "$.workers[0].realms[0].rols",
        "line": 9,
        "column": 21,
        "message": "unknown key 'rols' in a realm (did you mean 'roles'?)",
        "severity": "error",
    }
    assert len(report["errors"]) == 6


def test_invalid_json_is_reported_with_its_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text('{\n  "version": 2,\n}\n')
    assert cli.main(["check", "--config", str(config)]) == 1
    assert capsys.readouterr().err == (
        f"{config}:3:1: $: invalid JSON: Expecting property name enclosed in double quotes\n"
    )


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert cli.main(["check", "--config", str(tmp_path / "nope.json")]) == 2
    assert capsys.readouterr().err == f"broker: --config {tmp_path / 'nope.json'}: no such file\n"
    with pytest.raises(SystemExit) as info:
        cli.main(["check", "--jsn"])
    assert info.value.code == 2


def test_check_config_returns_config_errors_for_other_commands(no_crossbar_check: list[Any]) -> None:
    errors = check.check_config(BROKEN / "principal-missing-role.json")
    assert all(isinstance(e, ConfigError) for e in errors)
    assert [e.path for e in errors] == ["$.workers[0].transports[0].paths.ws.auth.wampcra.users.backend.role"]


def test_a_clean_config_passes_crossbar_check_too(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    shutil.copy(MINIMAL, config)
    assert cli.main(["check", "--config", str(config)]) == 0
    assert capsys.readouterr().out == f"ok: {config}\n"


def test_crossbar_check_runs_last_for_what_broker_does_not_model(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = tmp_path / "config.json"
    # a value range only crossbar knows: auto_ping_size must be from 12 to 125
    config.write_text(
        MINIMAL.read_text().replace(
            '"auto_ping_timeout": 5000', '"auto_ping_timeout": 5000, "auto_ping_size": 5'
        )
    )
    assert cli.main(["check", "--config", str(config), "--json"]) == 1
    [error] = json.loads(capsys.readouterr().out)["errors"]
    assert (error["path"], error["line"], error["severity"]) == ("$", 1, "error")
    assert error["message"].startswith("crossbar check: ")
    assert "auto_ping_size" in error["message"]


def test_warnings_are_printed_but_the_check_passes(
    capsys: pytest.CaptureFixture[str], no_crossbar_check: list[Any]
) -> None:
    config = BROKEN / "warn-longpoll-queue-limits-missing.json"
    assert cli.main(["check", "--config", str(config)]) == 0
    out, err = capsys.readouterr()
    assert out == f"ok: {config}\n"
    expected = config.with_suffix(".expected").read_text().splitlines()
    assert err.splitlines() == [line.replace(config.name, str(config), 1) for line in expected]
    assert all(": warning: " in line for line in expected)
    assert len(no_crossbar_check) == 1  # no errors of Broker's own: crossbar check runs
    assert cli.main(["check", "--config", str(config), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True
    assert [e["severity"] for e in report["errors"]] == ["warning", "warning"]


def test_a_bad_broker_redis_url_is_one_error_in_the_json_report_too(
    capsys: pytest.CaptureFixture[str], no_crossbar_check: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``broker run`` would refuse to start: the check fails on the variable, no line in the file."""
    monkeypatch.setenv("BROKER_REDIS_URL", "redis://127.0.0.1:6379/99")
    assert cli.main(["check", "--config", str(MINIMAL), "--json"]) == 1
    out, err = capsys.readouterr()
    why = "has database '99': expected a number from 0 to 15 (expected redis://[user:password@]host[:port][/db])"
    assert json.loads(out) == {
        "ok": False,
        "errors": [
            {"path": "BROKER_REDIS_URL", "line": None, "column": None, "message": why, "severity": "error"}
        ],
    }
    assert err == f"broker: config error: BROKER_REDIS_URL: {why}\n"
    assert no_crossbar_check == []


def test_an_empty_broker_redis_url_is_a_single_node(
    capsys: pytest.CaptureFixture[str], no_crossbar_check: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BROKER_REDIS_URL", "")
    assert cli.main(["check", "--config", str(MINIMAL), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"ok": True, "errors": []}
