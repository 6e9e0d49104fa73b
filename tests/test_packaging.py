"""The Python distributions: built with ``python -m build``, installed into fresh venvs.

Why: a deployment installs a wheel, not this checkout in editable mode, so the
wheel is what is tested. The base install must be the publisher SDK alone
(backends import it; no crossbar, no Twisted), and ``[node]`` with
``constraints/node.txt`` must give exactly the dependency set this suite runs
on (broker/router/ patches crossbar's and autobahn's internals, so a newer
release is untested code) and a node that starts, serves and stops with exit 0.

The builds use this venv's setuptools (``--no-isolation``; ``build`` and
``setuptools>=77`` are in the test extra). The fresh installs use the
machine's pip configuration; ``[node]`` takes one to two minutes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import venv
import zipfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest

from tests import node as node_module
from tests.node import PUBLISHER_SECRET, Node

ROOT = Path(__file__).resolve().parent.parent
CONSTRAINTS = ROOT / "constraints" / "node.txt"
VERSION = "0.1.0"
#: not sources: left out of the copy the distributions are built from
BUILD_IGNORES = (
    ".git",
    ".venv*",
    "node_modules",
    "dist",
    "build",
    "*.egg-info",
    "__pycache__",
    ".*_cache",
    "run",
)

pytestmark = [pytest.mark.packaging, pytest.mark.timeout(900)]


def clean_env() -> dict[str, str]:
    """This process's environment without PYTHONPATH: a fresh venv must import its own Broker."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def run(
    argv: list[str | Path], cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` (in a fresh venv: without PYTHONPATH, unless ``env`` says otherwise); it must exit 0."""
    result = subprocess.run(
        [str(a) for a in argv], cwd=cwd, env=env or clean_env(), capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, f"{argv} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result


def pins(text: str) -> dict[str, str]:
    """``name==version`` lines (comments skipped), names normalised as pip compares them."""
    found = {}
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.strip().split("==")
            found[re.sub(r"[-_.]+", "-", name).lower()] = version
    return found


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """The sdist, the wheel built from it (``python -m build``'s default), and the build's output."""
    out = tmp_path_factory.mktemp("dist")
    # from a copy: setuptools writes broker.egg-info next to the sources
    source = tmp_path_factory.mktemp("source") / "broker"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*BUILD_IGNORES))
    result = run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", out, source], out, dict(os.environ)
    )
    return (
        out / f"broker-{VERSION}.tar.gz",
        out / f"broker-{VERSION}-py3-none-any.whl",
        result.stdout + result.stderr,
    )


def fresh_venv(path: Path) -> Path:
    """A new venv at ``path`` (without this venv's packages); its bin/ directory."""
    venv.EnvBuilder(with_pip=True, clear=True).create(path)
    return path / "bin"


@pytest.fixture(scope="module")
def sdk_bin(build: tuple[Path, Path, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel's base install."""
    work = tmp_path_factory.mktemp("sdk")
    bin_ = fresh_venv(work / "venv")
    run([bin_ / "python", "-m", "pip", "install", "-q", build[1]], work)
    return bin_


@pytest.fixture(scope="module")
def node_bin(build: tuple[Path, Path, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel's ``[node]`` install, constrained by constraints/node.txt."""
    work = tmp_path_factory.mktemp("node")
    bin_ = fresh_venv(work / "venv")
    started = time.monotonic()
    run([bin_ / "python", "-m", "pip", "install", "-q", "-c", CONSTRAINTS, f"{build[1]}[node]"], work)
    print(f"pip install [node] into a fresh venv: {time.monotonic() - started:.0f} s")
    return bin_


def test_build_warns_of_nothing(build: tuple[Path, Path, str]) -> None:
    # setuptools >= 77 warns (on every build, so on every `make run`) of a TOML-table license
    assert "deprecated" not in build[2].lower()
    assert "BuildBackendWarning" not in build[2]


def test_wheel_metadata_names_the_license_and_the_pinned_node(build: tuple[Path, Path, str]) -> None:
    with zipfile.ZipFile(build[1]) as wheel:
        names = set(wheel.namelist())
        meta = wheel.read(f"broker-{VERSION}.dist-info/METADATA").decode()
        entry_points = wheel.read(f"broker-{VERSION}.dist-info/entry_points.txt").decode()
    assert {"broker/py.typed", "broker/client/__init__.py", "broker/router/component.py"} <= names
    assert not any(name.startswith("tests/") for name in names)
    assert "License-Expression: MIT" in meta.splitlines()
    requires = [
        line.removeprefix("Requires-Dist: ")
        for line in meta.splitlines()
        if line.startswith("Requires-Dist:")
    ]
    # the base install depends on nothing
    assert [r for r in requires if "extra ==" not in r] == []
    node = {r.split(";")[0].strip() for r in requires if r.endswith('extra == "node"')}
    assert {"crossbar==26.10.1", "autobahn[twisted]==26.11.1", "twisted==26.10.0", "txaio==26.6.1"} <= node
    assert "broker = broker.cli.main:main" in entry_points


def test_sdist_carries_the_deployment_files(build: tuple[Path, Path, str]) -> None:
    with tarfile.open(build[0]) as sdist:
        names = {name.removeprefix(f"broker-{VERSION}/") for name in sdist.getnames()}
    assert {
        "pyproject.toml",
        "README.md",
        "MANIFEST.in",
        "constraints/node.txt",
        "deploy/systemd/broker.service",
        "deploy/systemd/broker.env.example",
        "broker/py.typed",
        "broker/client/http.py",
    } <= names


def test_constraints_are_what_this_suite_runs_on() -> None:
    pinned = pins(CONSTRAINTS.read_text())
    installed = {
        re.sub(r"[-_.]+", "-", d.metadata["Name"]).lower(): d.version for d in metadata.distributions()
    }
    assert {name: installed.get(name) for name in pinned} == pinned


def test_base_install_is_the_sdk_only(sdk_bin: Path, tmp_path: Path) -> None:
    listed = json.loads(run([sdk_bin / "python", "-m", "pip", "list", "--format", "json"], tmp_path).stdout)
    assert sorted(p["name"] for p in listed if p["name"] not in ("pip", "setuptools")) == ["broker"]
    probe = (
        "import importlib.util, json, broker, broker.client;"
        "print(json.dumps({'file': broker.__file__, 'publisher': broker.client.Publisher.__name__,"
        "'absent': [m for m in ('crossbar', 'twisted', 'autobahn') if importlib.util.find_spec(m) is None]}))"
    )
    out = json.loads(run([sdk_bin / "python", "-c", probe], tmp_path).stdout)
    assert out["file"].startswith(str(sdk_bin.parent / "lib"))
    assert out == {
        "file": out["file"],
        "publisher": "Publisher",
        "absent": ["crossbar", "twisted", "autobahn"],
    }
    config = tmp_path / "config.json"
    config.write_text((ROOT / ".crossbar" / "config.json").read_text())
    env = {**clean_env(), "BROKER_BACKEND_SECRET": "s", "BROKER_OPERATOR_SECRET": "s"}
    env |= {"BROKER_PUBLISHER_SECRET": "s", "BROKER_TOKEN_SECRET": "s"}
    result = subprocess.run(
        [str(sdk_bin / "broker"), "run", "--config", str(config)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (result.returncode, result.stdout, result.stderr) == (
        1,
        "",
        f"broker: {sdk_bin / 'crossbar'} not found: install the node with pip install 'broker[node]'\n",
    )


class InstalledNode(Node):
    """A node started by a fresh venv's ``broker`` (the project's config, paths made absolute)."""

    def env(self) -> dict[str, str]:
        return {k: v for k, v in super().env().items() if k != "PYTHONPATH"}


@pytest.fixture
def installed_node(
    node_bin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[InstalledNode]:
    monkeypatch.setattr(node_module, "BROKER", node_bin / "broker")
    running = InstalledNode(tmp_path / "node", mutate=lambda config: None)
    yield running.start()
    running.stop()


def test_node_install_is_exactly_the_constraints(node_bin: Path, tmp_path: Path) -> None:
    frozen = run([node_bin / "python", "-m", "pip", "freeze", "--all", "--exclude", "pip"], tmp_path).stdout
    installed = pins("\n".join(line for line in frozen.splitlines() if not line.startswith("broker @")))
    assert installed == pins(CONSTRAINTS.read_text())


def test_node_extra_gives_a_node_that_serves_and_stops(
    installed_node: InstalledNode, node_bin: Path, tmp_path: Path
) -> None:
    where = run([node_bin / "python", "-c", "import broker; print(broker.__file__)"], tmp_path).stdout
    assert where.startswith(str(node_bin.parent / "lib"))
    # the installed SDK publishes to the installed node
    publish = (
        "import json, sys; from broker.client import Publisher;"
        "p = Publisher(sys.argv[1], 'dev', sys.argv[2]).publish('public.packaging', {'n': 1});"
        "print(json.dumps({'topic': p.topic, 'seq': p.position['seq']}))"
    )
    out = run([node_bin / "python", "-c", publish, installed_node.url, PUBLISHER_SECRET], tmp_path).stdout
    assert json.loads(out) == {"topic": "public.packaging", "seq": 1}
    assert installed_node.stop(signal.SIGTERM) == 0
