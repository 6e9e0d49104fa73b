"""Fixtures for the SDK's behavioural tests: fake nodes, dead ports, and both publishers
behind one blocking interface, so each behaviour is asserted for both."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from broker.client import AsyncPublisher, Published, Publisher
from tests.sdk.fakenode import KEY_ID, SECRET, FakeNode, Reply

#: What the injected rng draws: delays are exactly half the backoff ceiling.
RAND = 0.5


class Client:
    """The blocking or the asyncio publisher, driven blocking; ``sleeps`` records each backoff."""

    def __init__(self, kind: str, url: str, **kwargs: Any) -> None:
        self.kind = kind
        self.sleeps: list[float] = []
        kwargs = {"rng": lambda: RAND, **kwargs}
        if kind == "sync":
            self.publisher: Any = Publisher(url, KEY_ID, SECRET, sleep=self.sleeps.append, **kwargs)
        else:

            async def sleep(delay: float) -> None:
                self.sleeps.append(delay)

            self.publisher = AsyncPublisher(url, KEY_ID, SECRET, sleep=sleep, **kwargs)

    def _run(self, result: Any) -> Any:
        return asyncio.run(result) if self.kind == "async" else result

    def publish(self, topic: Any, data: Any, idempotency_key: str | None = None) -> Published:
        return self._run(self.publisher.publish(topic, data, idempotency_key))

    def publish_many(self, events: Any, idempotency_key: str | None = None) -> list[Published]:
        return self._run(self.publisher.publish_many(events, idempotency_key))


@pytest.fixture(params=["sync", "async"])
def kind(request: pytest.FixtureRequest) -> str:
    """Which publisher the test drives."""
    return str(request.param)


@pytest.fixture
def client(kind: str) -> Callable[..., Client]:
    """A publisher of the parametrized kind for a base URL."""
    return lambda url, **kwargs: Client(kind, url, **kwargs)


@pytest.fixture
def fake() -> Iterator[Callable[..., FakeNode]]:
    """Start fake nodes answering from a script of replies; closed afterwards."""
    started: list[FakeNode] = []

    def start(*script: Reply) -> FakeNode:
        node = FakeNode(*script)
        started.append(node)
        return node

    yield start
    for node in started:
        node.close()


@pytest.fixture
def refused_url() -> str:
    """A base URL where nothing listens: connecting is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture
def silent_url() -> Iterator[str]:
    """A base URL whose listener accepts connections (in the kernel) but never answers."""
    with socket.create_server(("127.0.0.1", 0), backlog=16) as s:
        yield f"http://127.0.0.1:{s.getsockname()[1]}"
