"""Several servers sharing one redis-server: Broker nodes on the Redis engine, python-socketio on
``AsyncRedisManager``, and a client that spreads its subscribers over them.

Why: the cluster section (:mod:`bench.cluster`) measures what going through
Redis costs, and how several nodes compare with the Python peer users would
pick for the same job. Each system starts its own ``redis-server`` on a free
port (:class:`tests.redisserver.RedisServer`, no persistence) and its
servers on free ports, counts Redis's CPU as the server's, and stops every
process by PID. A :class:`SpreadClient` publishes on the first server and
hands out subscriber connections round-robin over the servers it names,
so the load generator (:mod:`bench.systems.loadgen`) runs unchanged.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench.systems import (
    TOPIC,
    Client,
    Connection,
    Data,
    ProcessServer,
    Server,
    StartError,
    free_port,
    tree,
)
from bench.systems.broker_node import TOKEN_TTL
from bench.systems.python_socketio import SERVER, SocketIOClient
from bench.systems.wamp import WampClient
from broker.core.tokens import mint
from tests.node import BACKEND_SECRET, TOKEN_SECRET, Node
from tests.redisserver import RedisServer

#: Which server the next subscriber connection of this process goes to (each process counts its own).
_NEXT = itertools.count()


@dataclass(frozen=True)
class SpreadClient(Client):
    """Subscribers round-robin over ``subscribers``; the publisher on ``publishing``.

    Every server speaks the same protocol, so frames are recognised by ``publishing``.
    """

    subscribers: tuple[Client, ...]
    publishing: Client

    def using(self, serializer: str) -> SpreadClient:
        return replace(
            self,
            subscribers=tuple(c.using(serializer) for c in self.subscribers),
            publishing=self.publishing.using(serializer),
        )

    async def subscribe(self) -> Connection:
        return await self.subscribers[next(_NEXT) % len(self.subscribers)].subscribe()

    def is_event(self, frame: Data) -> bool:
        return self.publishing.is_event(frame)

    def sent_at(self, frame: Data) -> float:
        return self.publishing.sent_at(frame)

    async def publisher(self) -> Connection:
        return await self.publishing.publisher()

    def publish(self, payload: dict[str, Any], request: int) -> Data:
        return self.publishing.publish(payload, request)

    def acked(self, frame: Data) -> bool | None:
        return self.publishing.acked(frame)

    def answer(self, frame: Data) -> Data | None:
        return self.publishing.answer(frame)


def start_redis(workdir: Path) -> RedisServer:
    """A fresh redis-server for one system; :class:`StartError` if it does not come up."""
    try:
        return RedisServer(workdir / "redis")
    except RuntimeError as exc:
        raise StartError(str(exc)) from None


def start_nodes(
    workdir: Path,
    count: int,
    redis_url: str,
    mutate: Callable[[dict[str, Any]], None] | None = None,
) -> list[Node]:
    """``count`` Broker nodes joined to the cluster at ``redis_url`` (``BROKER_REDIS_URL``),
    started side by side; if one does not come up, every one that did is stopped."""
    nodes = [
        Node(workdir / f"node{i + 1}", mutate=mutate, env={"BROKER_REDIS_URL": redis_url})
        for i in range(count)
    ]
    with ThreadPoolExecutor(count) as pool:
        outcomes = list(pool.map(_start, nodes))
    errors = [error for error in outcomes if error is not None]
    if errors:
        for node in nodes:
            node.stop()
        raise StartError(errors[0])
    return nodes


def _start(node: Node) -> str | None:
    try:
        node.start()
    except RuntimeError as exc:
        return str(exc)
    return None


class BrokerCluster(Server):
    """``nodes`` Broker nodes (project config, Redis engine) on one redis-server.

    Subscribers go to the nodes at ``subscriber_nodes`` (0-based; default: all), the
    publisher to node 0; authentication as :class:`bench.systems.broker_node.BrokerNode`.
    """

    serializers = ("json",)

    def __init__(self, name: str, nodes: int, subscriber_nodes: Sequence[int] | None = None) -> None:
        self.name = name
        self.count = nodes
        self.subscriber_nodes = tuple(subscriber_nodes or range(nodes))
        self.redis: RedisServer | None = None
        self.nodes: list[Node] = []

    def start(self, workdir: Path) -> Client:
        self.redis = start_redis(workdir)
        self.nodes = start_nodes(workdir, self.count, self.redis.url)
        ticket = mint(TOKEN_SECRET, "bench", [{"uri": TOPIC, "match": "exact"}], ttl=TOKEN_TTL)
        clients = [
            WampClient(node.ws_url, node.origin, ticket=ticket, publisher_cra=("backend", BACKEND_SECRET))
            for node in self.nodes
        ]
        return SpreadClient(tuple(clients[i] for i in self.subscriber_nodes), clients[0])

    def pids(self) -> list[int]:
        pids = [pid for node in self.nodes if node.proc for pid in tree(node.pid)]
        return pids + ([self.redis.proc.pid] if self.redis else [])

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        self.nodes = []
        if self.redis is not None:
            self.redis.stop()
            self.redis = None


class SocketIOCluster(ProcessServer):
    """``servers`` python-socketio servers sharing one redis-server through ``AsyncRedisManager``:
    an emit to a room on one server goes through Redis pub/sub to every server's members."""

    #: several times slower than Broker at N >= 100 (as in the fan-out section): fewer events
    deliveries_scale = 0.5

    def __init__(self, name: str, servers: int = 3) -> None:
        super().__init__()
        self.name = name
        self.count = servers
        self.redis: RedisServer | None = None

    def start(self, workdir: Path) -> Client:
        self.redis = start_redis(workdir)
        clients = []
        for i in range(self.count):
            port = free_port()
            argv = [sys.executable, str(SERVER), str(port), self.redis.url]
            self.launch(argv, workdir / f"socketio{i + 1}.log", port)
            clients.append(SocketIOClient(f"ws://127.0.0.1:{port}"))
        return SpreadClient(tuple(clients), clients[0])

    def pids(self) -> list[int]:
        return super().pids() + ([self.redis.proc.pid] if self.redis else [])

    def stop(self) -> None:
        super().stop()
        if self.redis is not None:
            self.redis.stop()
            self.redis = None
