"""Dev secrets: created once, atomically and privately; the environment wins."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from broker.config import devsecrets
from broker.errors import ConfigError


def test_load_or_create_makes_a_private_file_with_random_secrets(tmp_path: Path) -> None:
    path = tmp_path / "secrets.env"
    values = devsecrets.load_or_create(path)
    assert set(values) == set(devsecrets.GENERATED)
    assert all(len(v) >= 43 for v in values.values())  # 32 random bytes, urlsafe base64
    assert len(set(values.values())) == len(values)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == "".join(f"{k}={v}\n" for k, v in values.items())
    assert [p.name for p in tmp_path.iterdir()] == ["secrets.env"]  # no temp file left


def test_load_or_create_keeps_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "secrets.env"
    first = devsecrets.load_or_create(path)
    assert devsecrets.load_or_create(path) == first
    path.write_text("BROKER_BACKEND_SECRET=mine\n")
    upgraded = devsecrets.load_or_create(path)  # an older file: the missing secrets are added
    assert upgraded["BROKER_BACKEND_SECRET"] == "mine"
    assert set(upgraded) == set(devsecrets.GENERATED)
    assert path.read_text().startswith("BROKER_BACKEND_SECRET=mine\n")


def test_parse_skips_blanks_and_comments_and_rejects_other_lines(tmp_path: Path) -> None:
    path = tmp_path / "secrets.env"
    assert devsecrets.parse("# dev\n\n A = b=c \n", path) == {"A": "b=c"}
    with pytest.raises(ConfigError) as info:
        devsecrets.parse("A=1\nnot a pair\n", path)
    assert info.value.path == f"{path}:2"


def test_load_of_a_missing_file_is_empty(tmp_path: Path) -> None:
    assert devsecrets.load(tmp_path / "absent.env") == {}


def test_provides_what_run_would_create(tmp_path: Path) -> None:
    path = tmp_path / "secrets.env"
    assert devsecrets.provides(path) == frozenset(devsecrets.GENERATED)
    path.write_text("ONLY=1\n")
    assert devsecrets.provides(path) == frozenset({"ONLY", *devsecrets.GENERATED})


def test_secret_prefers_the_environment_and_never_creates_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BROKER_BACKEND_SECRET", raising=False)
    assert devsecrets.secret("BROKER_BACKEND_SECRET", tmp_path) is None
    assert not devsecrets.path_for(tmp_path).exists()

    devsecrets.path_for(tmp_path).write_text("BROKER_BACKEND_SECRET=from-file\n")
    assert devsecrets.secret("BROKER_BACKEND_SECRET", tmp_path) == "from-file"
    monkeypatch.setenv("BROKER_BACKEND_SECRET", "from-env")
    assert devsecrets.secret("BROKER_BACKEND_SECRET", tmp_path) == "from-env"


def test_lookup_names_where_the_secret_came_from(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file = tmp_path / "secrets.env"
    file.write_text("BROKER_BACKEND_SECRET=from-file\n")
    monkeypatch.delenv("BROKER_BACKEND_SECRET", raising=False)
    assert devsecrets.lookup("BROKER_BACKEND_SECRET", tmp_path) == devsecrets.Secret(
        "from-file", f"BROKER_BACKEND_SECRET in {file}"
    )
    monkeypatch.setenv("BROKER_BACKEND_SECRET", "from-env")
    assert devsecrets.lookup("BROKER_BACKEND_SECRET", tmp_path) == devsecrets.Secret(
        "from-env", "the environment variable BROKER_BACKEND_SECRET"
    )
    assert devsecrets.lookup("BROKER_NOBODY_SECRET", tmp_path) is None
    assert "from-env" not in repr(devsecrets.lookup("BROKER_BACKEND_SECRET", tmp_path))


def test_an_empty_secret_is_an_error_not_an_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file = tmp_path / "secrets.env"
    file.write_text("BROKER_BACKEND_SECRET=from-file\nBROKER_OPERATOR_SECRET=\n")
    monkeypatch.setenv("BROKER_BACKEND_SECRET", "")
    with pytest.raises(ConfigError) as error:
        devsecrets.lookup("BROKER_BACKEND_SECRET", tmp_path)
    assert str(error.value) == (
        "BROKER_BACKEND_SECRET: the environment variable is empty: set it to the secret, "
        f"or unset it to use {file}"
    )
    monkeypatch.delenv("BROKER_OPERATOR_SECRET", raising=False)
    with pytest.raises(ConfigError) as error:
        devsecrets.lookup("BROKER_OPERATOR_SECRET", tmp_path)
    assert str(error.value) == (
        f"{file}: BROKER_OPERATOR_SECRET is empty: write the secret after the '=' "
        "(an empty secret is refused)"
    )


def test_empty_errors_name_each_empty_variable_once_and_its_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = tmp_path / "secrets.env"
    monkeypatch.setenv("BROKER_BACKEND_SECRET", "")
    monkeypatch.setenv("BROKER_PUBLISHER_SECRET", "")
    monkeypatch.setenv("BROKER_TOKEN_SECRET", "set")
    references = [
        ("$.a", "BROKER_BACKEND_SECRET"),
        ("$.b", "BROKER_BACKEND_SECRET"),
        ("$.c", "BROKER_TOKEN_SECRET"),
    ]
    references.append(("$.d", "BROKER_PUBLISHER_SECRET"))
    assert [str(e) for e in devsecrets.empty_errors(references, {"BROKER_PUBLISHER_SECRET"}, file)] == [
        "$.a: the environment variable BROKER_BACKEND_SECRET is empty: set it to the secret, "
        f"or unset it to use {file}",
        f"$.d: BROKER_PUBLISHER_SECRET in {file} is empty: write the secret after the '=' "
        "(an empty secret is refused)",
    ]
