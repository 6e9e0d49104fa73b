"""``broker check``'s checker on a corpus of broken configs, each with its exact expected report.

Each ``tests/configs/broken/NAME.json`` is the valid ``tests/configs/valid/minimal.json``
with one mistake (``warn-*``: one unclear setting); ``NAME.expected`` holds the lines
``broker check`` prints for it (``NAME.json:LINE:COLUMN: PATH: MESSAGE``). The checker
runs without crossbar.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.config import check as configcheck
from broker.config.check import report

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "tests" / "configs"
BROKEN = sorted((CONFIGS / "broken").glob("*.json"))
#: The secrets the corpus may reference; anything else counts as unset.
SECRETS = frozenset(
    {"BROKER_BACKEND_SECRET", "BROKER_OPERATOR_SECRET", "BROKER_PUBLISHER_SECRET", "BROKER_TOKEN_SECRET"}
)


def check(path: Path) -> list[str]:
    return report.text(configcheck.check_file(path, SECRETS.__contains__).findings(), path.name)


@pytest.mark.parametrize("config", [CONFIGS / "valid" / "minimal.json", ROOT / ".crossbar" / "config.json"])
def test_a_valid_config_has_no_errors(config: Path) -> None:
    assert check(config) == []


@pytest.mark.parametrize("config", BROKEN, ids=[p.stem for p in BROKEN])
def test_a_broken_config_gets_exactly_its_expected_report(config: Path) -> None:
    expected = config.with_suffix(".expected").read_text(encoding="utf-8").splitlines()
    assert expected, f"{config.name} has no expected errors"
    assert check(config) == expected


def test_the_corpus_covers_what_crossbar_check_misses_and_every_lint_rule() -> None:
    names = {p.stem for p in BROKEN}
    assert {
        "realm-key-typo",
        "store-key-typo",
        "store-unknown-type",
        "principal-missing-role",
        "publisher-unknown-realm",
        "publisher-key-without-secret",
        "missing-component-class",
        "invalid-json",
        "broker-settings-error",
        "grant-reserved-prefix",
        "grant-reserved-meta-event",
    } <= names
    reported = "".join(p.with_suffix(".expected").read_text() for p in BROKEN)
    for key in (
        "allowed_origins:",
        "allowed_origins[1]:",
        "allow_null_origin:",
        "enable_webstatus:",
        "open_handshake_timeout:",
        "close_handshake_timeout:",
        "client_timeout:",
        "max_message_size:",
        "max_frame_size:",
        "auto_ping_interval:",
        "queue_limit_bytes:",
        "queue_limit_messages:",
        "max_connections:",
        "post_body_limit:",
        "realms[0].store:",
    ):
        assert key in reported, key


def test_an_unreadable_file_is_one_error_at_the_root(tmp_path: Path) -> None:
    result = configcheck.check_file(tmp_path / "missing.json", SECRETS.__contains__)
    [finding] = result.findings()
    assert (finding.path, finding.line, finding.column) == ("$", 1, 1)
    assert finding.message.startswith(f"cannot read {tmp_path / 'missing.json'}: ")
    assert result.config is None


def test_errors_come_in_file_order_whatever_check_found_them(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    # the lint finding (line 2) is found after the unknown key (line 3)
    config.write_text(
        (CONFIGS / "valid" / "minimal.json")
        .read_text()
        .replace('"max_connections": 10000,\n', "")
        .replace('"version": 2,', '"version": 2,\n    "colour": "blue",')
    )
    lines = [f.line for f in configcheck.check_file(config, SECRETS.__contains__).findings()]
    assert lines == sorted(lines) and len(lines) == 2


def test_a_warning_is_reported_but_is_not_an_error() -> None:
    result = configcheck.check_file(
        BROKEN[0].with_name("warn-longpoll-queue-limits-missing.json"), SECRETS.__contains__
    )
    assert result.errors == []
    assert [(w.path, f.severity) for w, f in zip(result.warnings, result.findings(), strict=True)] == [
        ("$.workers[0].transports[0].paths.lp.options.queue_limit_bytes", "warning"),
        ("$.workers[0].transports[0].paths.lp.options.queue_limit_messages", "warning"),
    ]
