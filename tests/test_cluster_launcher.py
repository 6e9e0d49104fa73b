"""``make cluster`` (``python -m tools.cluster``) for real: Redis, three nodes, nginx, then Ctrl-C.

The launcher runs as a subprocess on free ports; once it prints its ready
line, an event published on node-1 (through nginx's ``/api/publish``, then on
node-1 itself) reaches a WebSocket subscriber on node-3 and one through nginx
once each, with the position the publisher was answered. SIGINT then stops
everything it started: every process below the launcher is gone and every
port is free again.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.client import Publisher
from broker.router.launcher import children
from tests.node import PUBLISHER_SECRET, ROOT, alive, free_port
from tests.rawwamp import SUBSCRIBED, RawWamp
from tests.test_recovery import POSITION
from tools.cluster import READY

pytestmark = pytest.mark.node


def descendants(pid: int) -> list[int]:
    """Every process below ``pid``, children first."""
    found = []
    for child in children(pid):
        found += [child, *descendants(child)]
    return found


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


class Launched:
    """The launcher's process and the ports it was given."""

    def __init__(self, directory: Path) -> None:
        self.port, self.redis_port = free_port(), free_port()
        self.node_ports = [free_port() for _ in range(3)]
        argv = [sys.executable, "-m", "tools.cluster", "--port", str(self.port), "--redis-port"]
        argv += [str(self.redis_port), "--node-ports", ",".join(map(str, self.node_ports))]
        argv += ["--dir", str(directory)]
        env = {**os.environ, "BROKER_PUBLISHER_SECRET": PUBLISHER_SECRET}
        self.proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT, env=env
        )
        self.lines: list[str] = []

    def wait_ready(self, timeout: float = 180) -> None:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.lines.append(line)
            if line.startswith(READY):
                return
        pytest.fail(f"the launcher never said {READY!r}:\n{''.join(self.lines)}")

    def url(self, port: int) -> str:
        return f"http://127.0.0.1:{port}"


@pytest.fixture
def launched(tmp_path: Path) -> Iterator[Launched]:
    running = Launched(tmp_path / "cluster")
    try:
        yield running
    finally:
        if running.proc.poll() is None:
            for pid in descendants(running.proc.pid):  # a failed test leaves nothing behind either
                os.kill(pid, signal.SIGKILL)
            running.proc.kill()
            running.proc.wait()


def subscriber(url: str, topic: str) -> RawWamp:
    client = RawWamp(url.replace("http", "ws", 1) + "/ws", origin=url)
    assert client.hello()[0] == 2
    assert client.subscribe(topic)[0] == SUBSCRIBED
    return client


def test_make_cluster_starts_three_nodes_behind_nginx_and_stops_all_of_it(launched: Launched) -> None:
    launched.wait_ready()
    printed = "".join(launched.lines)
    for i, port in enumerate(launched.node_ports, start=1):
        assert f"node-{i}  http://127.0.0.1:{port}/  PID " in printed
    assert f"redis   redis://127.0.0.1:{launched.redis_port}/0  PID " in printed
    public, node_1, node_3 = (launched.url(p) for p in (launched.port, *launched.node_ports[::2]))
    topic = f"public.make.{uuid.uuid4().hex[:8]}"
    on_node_3, through_nginx = subscriber(node_3, topic), subscriber(public, topic)
    answered = [
        Publisher(public, "dev", PUBLISHER_SECRET).publish(topic, "via nginx").position,
        Publisher(node_1, "dev", PUBLISHER_SECRET).publish(topic, "on node-1").position,
    ]
    for client in (on_node_3, through_nginx):
        got = [client.event() for _ in range(2)]
        assert [(e[4], e[5][POSITION]) for e in got] == [
            (["via nginx"], answered[0]),
            (["on node-1"], answered[1]),
        ]
    # nothing came twice: the next event each sees is the one published now
    last = Publisher(node_1, "dev", PUBLISHER_SECRET).publish(topic, "sentinel").position
    for client in (on_node_3, through_nginx):
        event = client.event()
        assert (event[4], event[5][POSITION]) == (["sentinel"], last)
    started = descendants(launched.proc.pid)
    assert len(started) >= 5  # redis, three controllers (and their workers), nginx (and its worker)
    launched.proc.send_signal(signal.SIGINT)
    assert launched.proc.wait(60) == 0
    assert [pid for pid in started if alive(pid)] == []
    ports = [launched.port, launched.redis_port, *launched.node_ports]
    assert [port for port in ports if listening(port)] == []


def test_a_port_in_use_is_one_line_and_nothing_is_started(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        argv = [sys.executable, "-m", "tools.cluster", "--port", str(free_port()), "--redis-port", str(port)]
        argv += ["--node-ports", ",".join(str(free_port()) for _ in range(3)), "--dir", str(tmp_path)]
        done = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=60, check=False)
    assert done.returncode == 1
    assert done.stderr == (
        f"make cluster: 127.0.0.1:{port} is in use: choose other ports (--port, --node-ports, --redis-port)\n"
    )
    assert done.stdout == "cluster stopped\n"
    assert not (tmp_path / "redis").exists()
