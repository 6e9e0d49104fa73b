"""Start and stop a real Broker node (crossbar) from the project's own config.

The node listens on an ephemeral port, is started through ``broker run``
(the same launcher ``make run`` uses), is ready when ``GET /health`` answers
200 with the id this start gave it (``BROKER_NODE_ID``), so a test never talks
to another node that happens to answer on its port, and is stopped by PID:
``stop`` returns once the controller and every worker are gone, so the port
and the node directory are free for whatever starts next.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from broker.router.launcher import children

ROOT = Path(__file__).resolve().parent.parent
PROJECT_CONFIG = ROOT / ".crossbar" / "config.json"
BROKER = Path(sys.executable).with_name("broker")

BACKEND_SECRET = "test-backend-secret"
OPERATOR_SECRET = "test-operator-secret"
PUBLISHER_SECRET = "test-publisher-secret"
TOKEN_SECRET = "test-token-secret"


def tests_importable() -> dict[str, str]:
    """The environment a node needs to load a resource from ``tests/`` (``"classname": "tests..."``)."""
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


def free_port() -> int:
    """A port nothing listens on right now (the node retries if it loses the race)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


class Node:
    """One running node; ``url``/``ws_url`` point at it."""

    def __init__(
        self,
        workdir: Path,
        mutate: Callable[[dict[str, Any]], None] | None = None,
        env: dict[str, str] | None = None,
        port: int | None = None,
        node_id: str | None = None,
        loglevel: str = "warn",
    ) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.mutate = mutate
        self.extra_env = env or {}
        self.log_path = workdir / "node.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        #: start on this port (a restart at the same address) instead of a free one
        self.fixed_port = port
        #: crossbar's log level (``broker run --loglevel``)
        self.loglevel = loglevel
        self.workers: list[int] = []
        #: the id this start passed in ``BROKER_NODE_ID``; /health must echo it
        self.node_id = ""
        #: start with this id (a restart that keeps its name, e.g. in nginx's map) instead of a new one
        self.fixed_id = node_id

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def origin(self) -> str:
        return self.url

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def config_path(self) -> Path:
        """The project's config, or a copy changed by ``mutate`` (paths kept absolute)."""
        if self.mutate is None:
            return PROJECT_CONFIG
        config = json.loads(PROJECT_CONFIG.read_text())
        config = copy.deepcopy(config)
        for transport in config["workers"][0]["transports"]:
            for path in transport.get("paths", {}).values():
                if "directory" in path:
                    path["directory"] = str((PROJECT_CONFIG.parent / path["directory"]).resolve())
        self.mutate(config)
        target = self.workdir / "config" / "config.json"
        target.parent.mkdir(exist_ok=True)
        target.write_text(json.dumps(config, indent=2))
        return target

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            BROKER_BACKEND_SECRET=BACKEND_SECRET,
            BROKER_OPERATOR_SECRET=OPERATOR_SECRET,
            BROKER_PUBLISHER_SECRET=PUBLISHER_SECRET,
            BROKER_TOKEN_SECRET=TOKEN_SECRET,
        )
        env.update(self.extra_env)
        env["BROKER_NODE_ID"] = self.node_id
        return env

    def start(self, timeout: float = 60) -> Node:
        config = self.config_path()
        for _attempt in range(3):
            self.port = self.fixed_port or free_port()
            self.node_id = self.fixed_id or uuid.uuid4().hex
            log = self.log_path.open("ab")
            self.proc = subprocess.Popen(
                [
                    str(BROKER),
                    "run",
                    "--config",
                    str(config),
                    "--port",
                    str(self.port),
                    "--cbdir",
                    str(self.workdir / "run"),
                    "--loglevel",
                    self.loglevel,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env(),
                cwd=self.workdir,
                start_new_session=True,
            )
            if self._wait_ready(timeout):
                self.workers = children(self.pid)
                return self
            if "Address already in use" not in self.log():
                break
        raise RuntimeError(f"node did not become ready; log:\n{self.log()[-4000:]}")

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                    # another node answering on this port is not ours: ours then fails to
                    # listen ("Address already in use") and start() tries another port
                    if response.status == 200 and json.load(response).get("node_id") == self.node_id:
                        return True
            except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
                pass
            time.sleep(0.1)
        self.stop()
        return False

    def rejections(self) -> dict[str, int]:
        """What ``GET /health`` counts under ``rejections``: reason -> how many, since the node started."""
        with urllib.request.urlopen(f"{self.url}/health", timeout=10) as response:
            counts: dict[str, int] = json.load(response)["rejections"]
        return counts

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGINT, timeout: float = 20) -> int | None:
        """Stop the node by PID; returns its exit code. Kills its workers if it hangs."""
        if self.proc is None:
            return None
        workers = children(self.pid) or self.workers
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pid in workers:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            # anything else of the node's own session (started with it as leader): nothing may
            # outlive the node, not even a worker its controller started after `workers` was read
            os.killpg(self.proc.pid, signal.SIGKILL)
        deadline = time.monotonic() + timeout
        while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.05)  # SIGKILL is delivered asynchronously: wait until they are gone
        return self.proc.returncode
