"""The node as an operator meets it: clean start, a page at /, a clean Ctrl-C."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.node import BROKER, Node, alive, children, free_port

pytestmark = pytest.mark.node


def test_startup_prints_no_traceback(node: Node) -> None:
    log = node.log()
    assert "Broker ready: realm app" in log
    assert "Traceback" not in log
    assert "NumPy" not in log  # the bjdata / NumPy 2 notice (crossbar #2229)


def test_page_and_health_are_served(node: Node) -> None:
    with urllib.request.urlopen(f"{node.url}/", timeout=10) as response:
        assert response.status == 200
        assert b"Broker" in response.read()
    with urllib.request.urlopen(f"{node.url}/health", timeout=10) as response:
        assert response.headers["Content-Type"] == "application/json"
        assert response.read().startswith(b'{"status": "ready"')


@pytest.mark.parametrize(
    ("sig", "exit_code"), [(signal.SIGINT, 0), (signal.SIGTERM, 0), (signal.SIGKILL, -signal.SIGKILL)]
)
def test_signal_stops_node_and_its_workers(
    make_node: Callable[..., Node], sig: signal.Signals, exit_code: int
) -> None:
    """Ctrl-C (SIGINT) and a supervisor's SIGTERM stop cleanly with 0, workers and all;
    ``kill -9`` is still a failure (status -9) and takes the workers with it."""
    running = make_node()
    workers = children(running.pid)
    assert workers, "crossbar starts its router worker as a child process"
    running.proc.send_signal(sig)  # type: ignore[union-attr]
    assert running.proc.wait(timeout=20) == exit_code  # type: ignore[union-attr]
    # a clean stop waits for its workers; a killed controller's worker sees its pipe close
    deadline = time.monotonic() + (10 if sig == signal.SIGKILL else 0)
    while [pid for pid in workers if alive(pid)] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in workers if alive(pid)]
    assert "Traceback" not in running.log()


def test_a_crashed_worker_stops_the_node_with_a_failure(make_node: Callable[..., Node]) -> None:
    """Only an ordinary stop is a success: a router worker that dies takes the node down with 1."""
    running = make_node()
    [worker] = children(running.pid)
    os.kill(worker, signal.SIGKILL)
    assert running.proc.wait(timeout=20) == 1  # type: ignore[union-attr]
    assert "process ended by signal 9" in running.log()


def _run_on(port: int, workdir: Path) -> subprocess.Popen[str]:
    node = Node(workdir)
    argv = ["run", "--config", str(node.config_path()), "--port", str(port)]
    return subprocess.Popen(
        [str(BROKER), *argv, "--cbdir", str(workdir / "run")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=node.env(),
        cwd=workdir,
        start_new_session=True,
    )


def test_a_port_in_use_is_one_line_and_a_failure(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = _run_on(port, tmp_path)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert out == (
        f"broker: cannot listen on 127.0.0.1:{port}: [Errno 98] Address already in use: "
        "choose another port with --port N or BROKER_PORT=N\n"
    )


def test_a_port_taken_after_the_check_is_a_failure_and_never_ready(tmp_path: Path) -> None:
    """The race: the port is free when ``broker run`` checks it, taken before crossbar listens."""
    port = free_port()
    proc = _run_on(port, tmp_path)
    assert proc.stdout is not None
    first = proc.stdout.readline()  # printed after the check, seconds before crossbar listens
    assert first.startswith(f"Broker node starting: http://127.0.0.1:{port}/")
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind(("127.0.0.1", port))
        taken.listen()
        rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "Address already in use" in rest  # what tests/node.py retries on
    assert "Broker ready" not in rest
    # broker run's own line, once crossbar's failure has been stripped of its frames
    assert (
        f"Cannot listen on transport endpoint: [Failure instance: Traceback (failure with no frames): "
        "<class 'broker.router.crossbar.listen.PortUnavailable'>: "
        f"cannot listen on 127.0.0.1:{port}: [Errno 98] "
        "Address already in use: choose another port with --port N or BROKER_PORT=N"
    ) in rest
    assert 'File "' not in rest  # no stack frames: crossbar logged about 50 lines of them
    assert "Could not start node: a transport could not listen (the line above names the port)" in rest
