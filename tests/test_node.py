"""The node as an operator meets it: clean start, a page at /, a clean Ctrl-C."""

from __future__ import annotations

import signal
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


@pytest.mark.parametrize(("sig", "exit_code"), [(signal.SIGINT, 0), (signal.SIGTERM, 1)])
def test_signal_stops_node_and_its_workers(
    make_node: Callable[..., Node], sig: signal.Signals, exit_code: int
) -> None:
    """Ctrl-C (SIGINT) stops cleanly with 0; crossbar reports SIGTERM with exit code 1."""
    running = make_node()
    workers = children(running.pid)
    assert workers, "crossbar starts its router worker as a child process"
    running.proc.send_signal(sig)  # type: ignore[union-attr]
    assert running.proc.wait(timeout=20) == exit_code  # type: ignore[union-attr]
    assert not [pid for pid in workers if alive(pid)]
    assert "Traceback" not in running.log()
