"""deploy/systemd/broker.service: valid for systemd, and its command line is a working node.

Why: the unit is the production path (docs/operators.md, "Running in
production"), and a unit file fails only when it is installed. No systemd
manager runs here, but ``systemd-analyze verify --root`` checks a unit offline
against a tree holding the system's own units (``make systemd`` installs
Debian's systemd for the tool): every directive parses, every ``Exec*``
program exists, the dependencies resolve. What verify cannot know is whether
``ExecStart`` starts a node, whether ``broker.env.example`` names every secret
the config needs, and what the node's exit status tells ``Restart=``, so the
same command line (with this checkout's venv and temporary paths in place of
/opt/broker, /etc/broker and /var/lib/broker) is run as a node here.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.router.launcher import children
from tests.node import alive, free_port

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "deploy" / "systemd" / "broker.service"
ENV_EXAMPLE = ROOT / "deploy" / "systemd" / "broker.env.example"
PROJECT_CONFIG = ROOT / ".crossbar" / "config.json"
SYSTEM_UNITS = Path("/usr/lib/systemd/system")

pytestmark = pytest.mark.packaging


def directives(text: str) -> dict[str, str]:
    """``Key=value`` of a unit file (each key is set once in broker.service)."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            assert key not in found, f"{key} set twice"
            found[key] = value
    return found


UNIT_SETTINGS = directives(UNIT.read_text())


def verify(unit_text: str, root: Path) -> subprocess.CompletedProcess[str]:
    """``systemd-analyze verify`` of ``unit_text`` installed in a root made of the system's units."""
    if not (root / "usr").exists():
        shutil.copytree(SYSTEM_UNITS, root / SYSTEM_UNITS.relative_to("/"), symlinks=True)
        # the programs the unit runs: verify checks that each exists and is executable
        for key in ("ExecStart", "ExecReload"):
            program = root / shlex.split(UNIT_SETTINGS[key])[0].lstrip("/")
            program.parent.mkdir(parents=True, exist_ok=True)
            program.write_text("#!/bin/sh\n")
            program.chmod(0o755)
    unit = root / "etc" / "systemd" / "system" / "broker.service"
    unit.parent.mkdir(parents=True, exist_ok=True)
    unit.write_text(unit_text)
    return subprocess.run(
        ["systemd-analyze", "verify", f"--root={root}", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_unit_verifies(tmp_path: Path) -> None:
    result = verify(UNIT.read_text(), tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_verify_reports_a_bad_directive(tmp_path: Path) -> None:
    """The check above can fail: verify names a directive it cannot parse (and still exits 0)."""
    result = verify(UNIT.read_text().replace("KillMode=mixed", "KillMode=mixd"), tmp_path)
    assert "broker.service:" in result.stderr
    assert "Failed to parse kill mode specification, ignoring: mixd" in result.stderr


def test_unit_supervises_and_limits_as_documented() -> None:
    config = json.loads(PROJECT_CONFIG.read_text())
    [transport] = config["workers"][0]["transports"]
    assert UNIT_SETTINGS["Restart"] == "on-failure"
    assert UNIT_SETTINGS["KillSignal"] == "SIGTERM"
    # SIGTERM to the controller alone: it stops its workers (a worker stopped first is a failure)
    assert UNIT_SETTINGS["KillMode"] == "mixed"
    # a descriptor per connection: the transport's max_connections must fit, with room to spare
    assert int(UNIT_SETTINGS["LimitNOFILE"]) >= transport["max_connections"] + 1000
    assert UNIT_SETTINGS["User"] == "broker"
    assert UNIT_SETTINGS["EnvironmentFile"] == "/etc/broker/broker.env"
    argv = shlex.split(UNIT_SETTINGS["ExecStart"])
    # the node directory (history, publish memory) is the state directory systemd keeps
    cbdir = argv[argv.index("--cbdir") + 1]
    assert cbdir.startswith(f"/var/lib/{UNIT_SETTINGS['StateDirectory']}/")
    assert UNIT_SETTINGS["WorkingDirectory"] == f"/var/lib/{UNIT_SETTINGS['StateDirectory']}"


def example_env() -> dict[str, str]:
    """The variables broker.env.example sets (as systemd's EnvironmentFile reads them)."""
    pairs = [line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines() if line and line[0] != "#"]
    return dict(pairs)


class UnitNode:
    """The unit's ExecStart, with this venv's broker and temporary /etc/broker and /var/lib/broker."""

    def __init__(self, tmp: Path) -> None:
        self.etc = tmp / "etc-broker"
        self.state = tmp / "var-lib-broker"
        self.etc.mkdir()
        self.state.mkdir()
        config = json.loads(PROJECT_CONFIG.read_text())
        for path in config["workers"][0]["transports"][0]["paths"].values():
            if "directory" in path:
                path["directory"] = str((PROJECT_CONFIG.parent / path["directory"]).resolve())
        (self.etc / "config.json").write_text(json.dumps(config, indent=2))
        self.port = free_port()
        self.node_id = uuid.uuid4().hex
        self.argv = [self._local(arg) for arg in shlex.split(UNIT_SETTINGS["ExecStart"])]
        self.argv += ["--port", str(self.port)]
        # the unit's environment: the example file over a bare one (systemd passes no PYTHONPATH)
        env = {"PATH": os.environ["PATH"], "BROKER_NODE_ID": self.node_id, **example_env()}
        if "PYTHONPATH" in os.environ:  # a worktree's run: the node imports the code under test
            env["PYTHONPATH"] = os.environ["PYTHONPATH"]
        self.log = (tmp / "node.log").open("wb")
        self.proc = subprocess.Popen(
            self.argv,
            cwd=self.state,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def _local(self, arg: str) -> str:
        if arg == "/opt/broker/venv/bin/broker":
            return str(Path(sys.executable).with_name("broker"))
        if arg.startswith("/etc/broker/"):
            return str(self.etc / arg.removeprefix("/etc/broker/"))
        if arg.startswith("/var/lib/broker/"):
            return str(self.state / arg.removeprefix("/var/lib/broker/"))
        return arg

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, Path(self.log.name).read_text()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as response:
                    if json.load(response).get("node_id") == self.node_id:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
                pass
            time.sleep(0.1)
        raise AssertionError(f"not ready:\n{Path(self.log.name).read_text()}")

    def close(self) -> None:
        workers = children(self.proc.pid)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for pid in workers:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        self.log.close()


@pytest.fixture
def unit_node(tmp_path: Path) -> Iterator[UnitNode]:
    started = UnitNode(tmp_path)
    started.wait_ready()
    yield started
    started.close()


def test_exec_start_serves_and_stops_with_success(unit_node: UnitNode) -> None:
    # the example environment file names every secret the config needs: no dev secrets were made up
    assert sorted(p.name for p in unit_node.etc.iterdir()) == ["config.json"]
    assert (unit_node.state / "run" / "node.pid").exists()
    workers = children(unit_node.proc.pid)
    unit_node.proc.send_signal(getattr(signal, UNIT_SETTINGS["KillSignal"]))
    # within TimeoutStopSec, with 0: systemd records a stop, Restart=on-failure leaves it stopped
    assert unit_node.proc.wait(timeout=int(UNIT_SETTINGS["TimeoutStopSec"])) == 0
    assert not [pid for pid in workers if alive(pid)]


def test_a_killed_worker_ends_the_node_with_a_failure(unit_node: UnitNode) -> None:
    [worker] = children(unit_node.proc.pid)
    os.kill(worker, signal.SIGKILL)
    # exit 1: Restart=on-failure starts the node again (after RestartSec)
    assert unit_node.proc.wait(timeout=20) == 1
