"""Shared fixtures: one real node for the whole session, fresh nodes on demand."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests import redisserver
from tests.node import BACKEND_SECRET, Node
from tests.rawwamp import RawWamp

if TYPE_CHECKING:
    from tests.test_cli_e2e import Tail


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[redisserver.RedisServer]:
    """One real redis-server for the session (no persistence); each test uses its own key prefix."""
    server = redisserver.RedisServer(tmp_path_factory.mktemp("redis"))
    redisserver.SERVER = server
    yield server
    redisserver.SERVER = None
    server.stop()


@pytest.fixture(scope="session")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    """A node started from the project's own config, shared by read-only tests."""
    running = Node(tmp_path_factory.mktemp("node")).start()
    yield running
    running.stop()


@pytest.fixture
def make_node(tmp_path: Path) -> Iterator[Callable[..., Node]]:
    """Start a node of one's own (optionally with a changed config); stopped afterwards."""
    started: list[Node] = []

    def make(mutate: Callable[[dict[str, Any]], None] | None = None, **kwargs: Any) -> Node:
        running = Node(tmp_path / f"node{len(started)}", mutate=mutate, **kwargs).start()
        started.append(running)
        return running

    yield make
    for running in started:
        running.stop()


@pytest.fixture
def connect(node: Node) -> Iterator[Callable[..., RawWamp]]:
    """Open WAMP connections to the shared node; closed afterwards."""
    opened: list[RawWamp] = []

    def open_(role: str = "anonymous", origin: str | None = None, url: str | None = None) -> RawWamp:
        client = RawWamp(url or node.ws_url, origin=origin or node.origin)
        opened.append(client)
        if role == "anonymous":
            welcome = client.hello()
        elif role == "backend":
            welcome = client.hello(authid="backend", secret=BACKEND_SECRET)
        elif role == "operator":
            from tests.node import OPERATOR_SECRET

            welcome = client.hello(authid="operator", secret=OPERATOR_SECRET)
        elif role == "none":
            return client
        else:
            raise ValueError(role)
        assert welcome[0] == 2, welcome
        return client

    yield open_
    for client in opened:
        try:
            client.close()
        except Exception:
            pass


@pytest.fixture
def tails() -> Iterator[list[Tail]]:
    """``broker tail`` processes a test starts: killed (by PID) if still running after it."""
    started: list[Tail] = []
    yield started
    for tail in started:
        if tail.proc.poll() is None:
            tail.proc.kill()
            tail.proc.wait()
