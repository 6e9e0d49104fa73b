"""``make cluster``: redis-server, three Broker nodes and nginx in front, on this machine, in one command.

Why: trying several nodes behind a load balancer should take one command,
and run what is documented and tested: the nodes are ``broker run`` on the
project's own config with ``BROKER_NODE_ID`` and ``BROKER_REDIS_URL`` set
(docs/cluster.md), nginx runs docs/operators.md's multi-node block
(:mod:`tools.nginxconf`, the block tests/test_cluster_longpoll.py runs), and
Redis keeps nothing on disk (``--save '' --appendonly no``: a restart of it
is a new epoch). Each process is started in a session of its own (and gets SIGTERM should
the launcher die: nothing is left behind), waited for
(Redis ``PING``, each node's ``/health`` with its id, ``/health`` through
nginx), printed with its PID, and stopped by PID on Ctrl-C or SIGTERM:
nginx, then the nodes (and their workers), then Redis.

    python -m tools.cluster [--port 8080] [--node-ports 8081,8082,8083] [--redis-port 6390] [--dir DIR]

Ports also come from ``BROKER_CLUSTER_PORT``, ``BROKER_CLUSTER_NODE_PORTS``
and ``BROKER_CLUSTER_REDIS_PORT``. Everything the processes write (logs,
node directories, nginx's files) is under ``--dir`` (``.cluster/``).
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any

from broker.config import devsecrets
from broker.router.launcher import children
from tools.nginxconf import DOC_NODES, NGINX, ROOT, Nginx, cluster_block

CONFIG = ROOT / ".crossbar" / "config.json"
BROKER = Path(sys.executable).with_name("broker")
#: What a process may take to become ready (seconds).
READY_TIMEOUT = 60.0
#: The line printed once everything answers (tests wait for it).
READY = "cluster ready"
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In a child before exec: SIGTERM when the launcher dies, even by SIGKILL (Linux's PDEATHSIG)."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _spawn(argv: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    """A child in a session of its own (Ctrl-C reaches the launcher alone), ended with the launcher."""
    preexec = _die_with_parent if sys.platform == "linux" else None
    return subprocess.Popen(argv, start_new_session=True, preexec_fn=preexec, **kwargs)


def check_free(ports: Sequence[int]) -> None:
    """Raise RuntimeError naming the first port of ``ports`` something already listens on."""
    for port in ports:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                raise RuntimeError(
                    f"127.0.0.1:{port} is in use: choose other ports (--port, --node-ports, --redis-port)"
                )


def _wait(what: str, ready: Callable[[], bool], proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}; its log:\n{_tail(log)}")
        try:
            if ready():
                return
        except (OSError, urllib.error.URLError, ValueError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} was not ready within {READY_TIMEOUT:.0f} s; its log:\n{_tail(log)}")


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:] if log.exists() else "(no log)"


def redis_ping(port: int) -> bool:
    """Whether redis-server on ``127.0.0.1:port`` answers PING."""
    with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
        sock.sendall(b"*1\r\n$4\r\nPING\r\n")
        return sock.recv(64).startswith(b"+PONG")


def health(url: str, node_id: str | None = None) -> bool:
    """Whether ``url``/health answers 200 (from the node ``node_id``, if given)."""
    with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
        if response.status != 200:
            return False
        return node_id is None or json.load(response).get("node_id") == node_id


@dataclass
class LocalCluster:
    """The processes of one local cluster, all under ``directory``."""

    directory: Path
    port: int
    node_ports: Sequence[int]
    redis_port: int
    out: IO[str] = sys.stdout
    redis: subprocess.Popen[bytes] | None = None
    nodes: list[tuple[str, int, subprocess.Popen[bytes]]] = field(default_factory=list)
    nginx: Nginx | None = None

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    def _say(self, line: str) -> None:
        print(line, file=self.out, flush=True)

    def start(self) -> None:
        """Start Redis, the nodes, then nginx, each ready before the next; printed as they come."""
        self.directory.mkdir(parents=True, exist_ok=True)
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed: `make cluster` installs it (apt)")
        if not (os.path.isfile(NGINX) and os.access(NGINX, os.X_OK)):
            raise RuntimeError("nginx is not installed: `make cluster` installs it (apt)")
        check_free([self.redis_port, *self.node_ports, self.port])
        redis_dir = self.directory / "redis"
        redis_dir.mkdir(exist_ok=True)
        log = redis_dir / "redis.log"
        argv = [binary, "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly"]
        argv += ["no", "--dir", str(redis_dir), "--logfile", str(log)]
        self.redis = _spawn(argv)
        _wait("redis-server", lambda: redis_ping(self.redis_port), self.redis, log)
        self._say(f"redis   {self.redis_url}  PID {self.redis.pid}")
        # the nodes share the project's dev secrets: made once here, not raced by three starts
        devsecrets.load_or_create(devsecrets.path_for(CONFIG.parent))
        for i, port in enumerate(self.node_ports, start=1):
            self._start_node(f"node-{i}", port)
        block = cluster_block([(node_id, port) for node_id, port, _ in self.nodes], f"127.0.0.1:{self.port}")
        nginx_dir = self.directory / "nginx"
        nginx_dir.mkdir(exist_ok=True)
        self.nginx = Nginx(nginx_dir, block, self.port)
        public = f"http://127.0.0.1:{self.port}"
        preexec = _die_with_parent if sys.platform == "linux" else None
        self.nginx.start(lambda: health(public), timeout=READY_TIMEOUT, preexec=preexec)
        assert self.nginx.proc is not None
        self._say(f"nginx   {public}/  PID {self.nginx.proc.pid}  (docs/operators.md, several nodes)")
        self._say(f"{READY}: {public}/ (WebSocket {public.replace('http', 'ws', 1)}/ws); Ctrl-C stops it all")

    def _start_node(self, node_id: str, port: int) -> None:
        node_dir = self.directory / node_id
        node_dir.mkdir(exist_ok=True)
        log = node_dir / "node.log"
        env = {**os.environ, "BROKER_NODE_ID": node_id, "BROKER_REDIS_URL": self.redis_url}
        argv = [str(BROKER), "run", "--config", str(CONFIG), "--port", str(port)]
        argv += ["--cbdir", str(node_dir / "run")]
        with log.open("ab") as out:
            proc = _spawn(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
        self.nodes.append((node_id, port, proc))
        url = f"http://127.0.0.1:{port}"
        _wait(node_id, lambda: health(url, node_id), proc, log)
        self._say(f"{node_id}  {url}/  PID {proc.pid}  (log {log})")

    def stop(self) -> None:
        """Stop nginx, the nodes (their workers too), then Redis, each by PID, and wait for each."""
        if self.nginx is not None:
            self.nginx.stop()
        for _, _, proc in self.nodes:
            workers = children(proc.pid)
            _end(proc, signal.SIGINT)
            for pid in workers:  # a worker left behind by a controller that did not stop them
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            for pid in workers:
                _gone(pid)
        if self.redis is not None:
            _end(self.redis, signal.SIGTERM)
        self._say("cluster stopped")


def _end(proc: subprocess.Popen[bytes], sig: int) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _gone(pid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stat = Path(f"/proc/{pid}/stat")
        try:
            if stat.read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return  # not ours to reap: gone for every purpose but its parent's
        except (OSError, IndexError):
            return
        time.sleep(0.05)


def _ports(text: str) -> list[int]:
    ports = [int(p) for p in text.split(",") if p.strip()]
    if len(ports) != DOC_NODES:
        raise argparse.ArgumentTypeError(f"expected {DOC_NODES} comma-separated ports, not {text!r}")
    return ports


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line (defaults from the environment, then 8080, 8081-8083, 6390)."""
    env = os.environ.get
    parser = argparse.ArgumentParser(prog="make cluster", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--port", type=int, default=int(env("BROKER_CLUSTER_PORT", "8080")))
    node_ports = _ports(env("BROKER_CLUSTER_NODE_PORTS", "8081,8082,8083"))
    parser.add_argument("--node-ports", type=_ports, default=node_ports)
    parser.add_argument("--redis-port", type=int, default=int(env("BROKER_CLUSTER_REDIS_PORT", "6390")))
    parser.add_argument("--dir", type=Path, default=ROOT / ".cluster")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Start the cluster, wait for Ctrl-C or SIGTERM, stop it all."""
    args = parse(argv)
    cluster = LocalCluster(args.dir.absolute(), args.port, args.node_ports, args.redis_port)

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt  # SIGTERM stops it as Ctrl-C does

    signal.signal(signal.SIGTERM, stop)
    try:
        cluster.start()
        while True:
            signal.pause()
    except KeyboardInterrupt:
        return 0
    except RuntimeError as error:
        print(f"make cluster: {error}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the stop short
        cluster.stop()


if __name__ == "__main__":
    sys.exit(main())
