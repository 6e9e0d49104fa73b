"""docs/operators.md's multi-node nginx block, rendered for nodes on this machine, and nginx to run it.

Why here and not in tests/: ``make cluster`` (:mod:`tools.cluster`) runs the
same block the tests run (tests/cluster.py imports this), so what a developer
starts by hand is what is tested. The block is read from the doc (the fenced
``nginx`` block after :data:`MARKER`), so the doc cannot drift from what runs.
What is substituted, each found where the doc has it or :class:`DocDrift`
names it: the listening address, the public name, the certificate (or,
without one, the TLS lines, for plain HTTP on one machine), and per node
``i`` of the doc's three its address (``10.0.0.i:8080``, in ``broker_nodes``
and in ``broker_node_i``) and its id (``node-i`` in the map).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
import urllib.error
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "operators.md"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
PUBLIC_NAME = "broker.example.com"
MARKER = "<!-- tests/test_cluster_longpoll.py runs the next block -->"
#: How many nodes the doc's block has (addresses 10.0.0.1-3, ids node-1..3).
DOC_NODES = 3
#: What nginx logs per request, in ``upstream.log``.
UPSTREAM_LOG_FORMAT = "log_format broker_upstream '$request_method|$uri|$upstream_addr|$status';\n"


class DocDrift(AssertionError):
    """The doc's block lacks something the harness substitutes (the message names it)."""


def doc_cluster_block(doc: Path = DOC) -> str:
    """The fenced nginx block right after :data:`MARKER` in docs/operators.md."""
    found = re.search(re.escape(MARKER) + r"\s*```nginx\n(.*?)```", doc.read_text(), re.S)
    if found is None:
        raise DocDrift(f"{doc}: no ```nginx block after {MARKER!r}")
    return found.group(1)


def _replace(block: str, old: str, new: str, count: int = 1) -> str:
    if block.count(old) != count:
        raise DocDrift(f"the doc's multi-node nginx block should contain {old!r} {count} time(s)")
    return block.replace(old, new)


def cluster_block(
    nodes: list[tuple[str, int]],
    listen: str,
    cert: tuple[Path, Path] | None = None,
    upstream_log: Path | None = None,
) -> str:
    """The doc's block for ``nodes`` (each ``(BROKER_NODE_ID, port on 127.0.0.1)``), listening on
    ``listen`` (``127.0.0.1:8080``): TLS with ``cert`` (cert, key), else plain HTTP."""
    if len(nodes) != DOC_NODES:
        raise ValueError(f"the doc's block has {DOC_NODES} nodes, not {len(nodes)}")
    block = doc_cluster_block()
    for i, (node_id, port) in enumerate(nodes, start=1):
        block = _replace(block, f"server 10.0.0.{i}:8080;", f"server 127.0.0.1:{port};", count=2)
        block = _replace(block, f"    node-{i}  broker_node_{i};", f"    {node_id}  broker_node_{i};")
    server_name = "server_name localhost;"
    if upstream_log is not None:
        block = UPSTREAM_LOG_FORMAT + block
        server_name += f"\n    access_log {upstream_log} broker_upstream;"
    block = _replace(block, f"server_name {PUBLIC_NAME};", server_name)
    if cert is None:
        block = _replace(block, "listen 443 ssl;", f"listen {listen};")
        block = re.sub(r"\n    ssl_\w+ [^\n]*;", "", block)
    else:
        block = _replace(block, "listen 443 ssl;", f"listen {listen} ssl;")
        block = _replace(block, f"/etc/letsencrypt/live/{PUBLIC_NAME}/fullchain.pem", str(cert[0]))
        block = _replace(block, f"/etc/letsencrypt/live/{PUBLIC_NAME}/privkey.pem", str(cert[1]))
    return block


class Nginx:
    """nginx in the foreground with everything (pid, logs, temp files) under ``directory``."""

    def __init__(self, directory: Path, server_block: str, port: int) -> None:
        self.directory = directory
        self.port = port
        self.error_log = directory / "error.log"
        temp = "".join(
            f"    {kind}_temp_path {directory / kind};\n"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        # as root, nginx's workers would run as "nobody" and could not use this directory
        user = "user root;\n" if os.geteuid() == 0 else ""
        self.config = directory / "nginx.conf"
        self.config.write_text(
            f"daemon off;\n{user}worker_processes 1;\npid {directory / 'nginx.pid'};\n"
            f"error_log {self.error_log} warn;\nevents {{ worker_connections 256; }}\n"
            f"http {{\n    access_log {directory / 'access.log'};\n{temp}{server_block}\n}}\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def log(self) -> str:
        return self.error_log.read_text(errors="replace") if self.error_log.exists() else ""

    def start(
        self, ready: Callable[[], bool], timeout: float = 20, preexec: Callable[[], None] | None = None
    ) -> None:
        """Start nginx (``preexec`` runs in the child before exec); return once ``ready()`` (a
        request through it) succeeds."""
        self.proc = subprocess.Popen(
            [NGINX, "-p", str(self.directory), "-c", str(self.config), "-e", str(self.error_log)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=preexec,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if ready():
                    return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"nginx did not proxy to the node within {timeout} s:\n{self.log()}")

    def stop(self) -> None:
        """Stop nginx by PID (its master stops its workers)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGQUIT)  # graceful: finish what is in flight, then exit
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(10)
