"""``broker.config.atomicfile``: the old text or the new, the right mode, no temporary file left behind."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from broker.config import atomicfile


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_file_gets_0644_and_an_existing_one_keeps_its_mode(tmp_path: Path) -> None:
    new = tmp_path / "config.json"
    atomicfile.write_text(new, "{}\n")
    assert (new.read_text(), mode(new)) == ("{}\n", 0o644)
    new.chmod(0o640)
    atomicfile.write_text(new, '{"version": 2}\n')
    assert (new.read_text(), mode(new)) == ('{"version": 2}\n', 0o640)


def test_an_explicit_mode_wins(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.env"
    secrets.write_text("A=1\n")
    secrets.chmod(0o644)
    atomicfile.write_text(secrets, "A=2\n", mode=0o600)
    assert (secrets.read_text(), mode(secrets)) == ("A=2\n", 0o600)


def test_a_failed_write_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "config.json"
    path.write_text("old\n")

    def replace(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError, match="No space left"):
        atomicfile.write_text(path, "new\n")
    assert path.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]
