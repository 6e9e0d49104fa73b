"""The node as an operator meets it: clean start, a page at /, a clean Ctrl-C."""

from __future__ import annotations

import os
import signal
import time
import urllib.request
from collections.abc import Callable

import pytest

from tests.node import Node, alive, children

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
