"""Broker's own node, from the project's config: the system this benchmark is about.

Three variants split what Broker's features cost on the delivery path:

* ``broker`` — as shipped: positions and in-memory history on every topic,
  subscribers joining with a minted user token (WAMP ticket auth, a subscribe
  grant for the bench topic), the backend publishing with WAMP-CRA;
* ``broker, history off`` — the same with a history policy keeping nothing,
  so no position is issued and nothing is appended;
* ``broker, history off, anonymous`` — also without tokens: subscribers join
  as ``anonymous`` (allowed ``public.``), so the only difference left to
  plain crossbar is Broker's hooks (hardening patches, the dynamic authorizer).

Any of them can serve its subscribers as ``GET /sse`` streams instead
(:mod:`bench.systems.sse`, ``sse=True``), the same token in the query, the
same WebSocket publisher: "Broker, SSE" beside "Broker". And any of them can
run on the Redis engine (``redis=True``): a redis-server of its own
(:class:`tests.redisserver.RedisServer`, no persistence) in
``BROKER_REDIS_URL``, its CPU counted as the server's, as a one-node cluster
would: "Broker, Redis engine" beside the memory engine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.systems import TOPIC, Client, Server, StartError, tree
from bench.systems.sse import SseClient
from bench.systems.wamp import WampClient
from broker.core.tokens import mint
from tests.node import BACKEND_SECRET, TOKEN_SECRET, Node
from tests.redisserver import RedisServer

#: Seconds a subscriber's token stays valid: longer than any run.
TOKEN_TTL = 3600


def history_off(config: dict[str, Any]) -> None:
    """Keep no event anywhere: the position hook then appends nothing and adds no position."""
    extra = config["workers"][0]["components"][0]["extra"]
    extra["history"]["policies"] = [{"uri": "", "match": "prefix", "max_events": 0, "max_age": 1}]


class BrokerNode(Server):
    def __init__(
        self,
        name: str,
        history: bool = True,
        tokens: bool = True,
        serializers: tuple[str, ...] = ("json", "msgpack"),
        sse: bool = False,
        redis: bool = False,
    ) -> None:
        self.name = name
        self.serializers = serializers
        self.history = history
        self.tokens = tokens
        self.sse = sse
        self.redis = redis
        self.node: Node | None = None
        self.redis_server: RedisServer | None = None

    def start(self, workdir: Path) -> Client:
        env = {}
        try:
            if self.redis:
                self.redis_server = RedisServer(workdir / "redis")
                env["BROKER_REDIS_URL"] = self.redis_server.url
            self.node = Node(workdir / "node", mutate=None if self.history else history_off, env=env)
            self.node.start()
        except RuntimeError as exc:
            raise StartError(str(exc)) from None
        ticket = None
        if self.tokens:
            grant = [{"uri": TOPIC, "match": "exact"}]
            ticket = mint(TOKEN_SECRET, "bench", grant, ttl=TOKEN_TTL)
        wamp = WampClient(
            self.node.ws_url, self.node.origin, ticket=ticket, publisher_cra=("backend", BACKEND_SECRET)
        )
        return SseClient("127.0.0.1", self.node.port, wamp, token=ticket) if self.sse else wamp

    def pids(self) -> list[int]:
        pids = tree(self.node.pid) if self.node and self.node.proc else []
        return pids + ([self.redis_server.proc.pid] if self.redis_server else [])

    def stop(self) -> None:
        if self.node is not None:
            self.node.stop()
            self.node = None
        if self.redis_server is not None:
            self.redis_server.stop()
            self.redis_server = None
