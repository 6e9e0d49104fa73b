"""A plain crossbar 26.10 node (no Broker code) that the HTTP-publish and profile sections
compare Broker with, started and stopped by PID like :class:`tests.node.Node`.

Why not ``bench.systems.plain_crossbar.PlainCrossbar``: these sections need the
router worker's PID (for py-spy) and extra HTTP paths (crossbar's publisher
bridge); the config itself is that system's :func:`minimal_config` — the
project's web transport, anonymous allowed everything — so every section
compares against the same baseline.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from bench.systems.plain_crossbar import CROSSBAR, minimal_config
from tests.node import alive, children, free_port


class PlainNode:
    """One running plain crossbar node; ``paths`` are added to its web transport."""

    def __init__(self, workdir: Path, paths: dict[str, Any] | None = None) -> None:
        self.workdir = workdir
        self.paths = paths or {}
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.workers: list[int] = []

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def log(self) -> str:
        path = self.workdir / "node.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self, timeout: float = 60) -> PlainNode:
        self.port = free_port()
        config = minimal_config(self.port, self.workdir)
        config["workers"][0]["transports"][0]["paths"].update(self.paths)
        cbdir = self.workdir / ".crossbar"
        cbdir.mkdir(parents=True, exist_ok=True)
        (cbdir / "config.json").write_text(json.dumps(config, indent=2))
        with (self.workdir / "node.log").open("ab") as log:
            self.proc = subprocess.Popen(  # noqa: S603 - our own crossbar, fixed arguments
                [str(CROSSBAR), "start", "--cbdir", str(cbdir), "--loglevel", "warn"],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                connection.request("GET", "/")
                connection.getresponse().read()
                self.workers = children(self.pid)
                return self
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"crossbar did not start; log:\n{self.log()[-3000:]}")

    def stop(self, timeout: float = 20) -> None:
        if self.proc is None:
            return
        workers = children(self.pid) or self.workers
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pid in workers:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
