"""Several real nodes behind real nginx, configured by docs/operators.md's multi-node block.

The block is read from the doc and rendered by :func:`tools.nginxconf.cluster_block`
(``make cluster`` runs the same), so the doc cannot drift from what the tests
run. Each node is a :class:`tests.node.Node` started with its own ``BROKER_NODE_ID``.

nginx logs every request's upstream (``$request_method|$uri|$upstream_addr|$status``) to
``upstream.log``, so a test can tell which node served what. Given ``redis_url``, the nodes
share that Redis (one broker, issue 14); a WebSocket's node is told by the ``broker_sessions``
gauge of each node (:meth:`Cluster.joined`), since nginx logs a WebSocket only once it ends.
"""

from __future__ import annotations

import os
import signal
import ssl
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from broker.router.launcher import children
from tests.node import Node, alive, free_port
from tests.test_metrics import scrape
from tests.test_reverse_proxy import self_signed
from tools.nginxconf import DOC_NODES, Nginx, cluster_block

__all__ = ["Cluster", "cluster_block"]


@dataclass
class Cluster:
    """Three nodes and nginx in front of them, all under ``directory``; :meth:`stop` stops all."""

    directory: Path
    tls: bool = True
    nodes: list[Node] = field(default_factory=list)
    nginx: Nginx | None = None
    context: ssl.SSLContext | None = None
    public: str = ""
    #: the nodes' shared history (``{"type": "redis"}``), or each node its own (None)
    redis_url: str | None = None
    redis_prefix: str = "cluster"
    redis_timeout: float = 2.0

    @property
    def upstream_log(self) -> Path:
        return self.directory / "nginx" / "upstream.log"

    def start(self) -> Cluster:
        """Start the nodes (each ready on /health with its own id, allowing pages from the
        public origin), then nginx (ready once ``/health`` answers through it)."""
        port = free_port()
        self.public = f"{'https' if self.tls else 'http'}://localhost:{port}"

        def behind_proxy(config: dict[str, Any]) -> None:
            ws = config["workers"][0]["transports"][0]["paths"]["ws"]
            ws["options"]["allowed_origins"] = [*ws["options"].get("allowed_origins", []), self.public]
            if self.redis_url is not None:
                extra = config["workers"][0]["components"][0]["extra"]
                store = {"type": "redis", "url": self.redis_url, "prefix": self.redis_prefix}
                extra["history"]["store"] = {**store, "timeout": self.redis_timeout}

        try:
            self.nodes = [
                Node(self.directory / f"node{i + 1}", mutate=behind_proxy) for i in range(DOC_NODES)
            ]
            with ThreadPoolExecutor(DOC_NODES) as pool:  # started side by side: each waits for its own
                list(pool.map(Node.start, self.nodes))
            cert = None
            if self.tls:
                cert = self_signed(self.directory)
                self.context = ssl.create_default_context(cafile=str(cert[0]))
            nodes = [(node.node_id, node.port) for node in self.nodes]
            block = cluster_block(nodes, f"127.0.0.1:{port}", cert, self.upstream_log)
            (self.directory / "nginx").mkdir()
            self.nginx = Nginx(self.directory / "nginx", block, port)
            self.nginx.start(self._ready)
        except BaseException:
            self.stop()
            raise
        return self

    def _ready(self) -> bool:
        with urllib.request.urlopen(f"{self.public}/health", timeout=2, context=self.context) as response:
            return bool(response.status == 200)

    def node(self, node_id: str) -> Node:
        """The node whose ``BROKER_NODE_ID`` is ``node_id``."""
        for node in self.nodes:
            if node.node_id == node_id:
                return node
        raise KeyError(f"no node {node_id!r} in this cluster")

    @property
    def ws_url(self) -> str:
        """The WebSocket endpoint through nginx."""
        return f"{self.public.replace('http', 'ws', 1)}/ws"

    def sessions(self) -> dict[str, float]:
        """Each live node's ``broker_sessions`` gauge, by node id (asked of the node, not nginx)."""
        return {
            node.node_id: scrape(node)[1].get(("broker_sessions", ()), 0.0)
            for node in self.nodes
            if node.proc is not None and node.proc.poll() is None
        }

    def joined(self, before: dict[str, float], timeout: float = 15) -> Node:
        """The one node whose session count rose by one since ``before`` (:meth:`sessions`): where
        the session just opened through nginx lives. Fails if none or several did within ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            now = self.sessions()
            rose = [node_id for node_id, count in now.items() if count > before.get(node_id, 0)]
            if len(rose) == 1 and now[rose[0]] == before.get(rose[0], 0) + 1:
                return self.node(rose[0])
            if time.monotonic() > deadline:
                raise AssertionError(f"no single node took the new session: {before} -> {now}")
            time.sleep(0.05)

    def joining(self, connect: Callable[[], Any]) -> tuple[Any, Node]:
        """``connect()`` (which opens one session through nginx), and the node it landed on."""
        before = self.sessions()
        opened = connect()
        return opened, self.joined(before)

    def kill(self, node: Node) -> None:
        """``kill -9`` the node: its controller and every worker, by PID, nothing shut down cleanly."""
        workers = list(node.workers)
        node.stop(signal.SIGKILL)
        if any(alive(pid) for pid in workers):
            raise AssertionError(f"node {node.node_id}: workers {workers} survived SIGKILL")

    @contextmanager
    def frozen_proxy(self) -> Iterator[None]:
        """nginx stopped (SIGSTOP to its master and workers) inside the block, continued after it:
        the clients' connections stay open and nothing passes through them (a stalled balancer)."""
        if self.nginx is None or self.nginx.proc is None:
            raise RuntimeError("nginx is not running")
        pids = [self.nginx.proc.pid, *children(self.nginx.proc.pid)]
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        try:
            yield
        finally:
            for pid in pids:
                os.kill(pid, signal.SIGCONT)

    def revive(self) -> None:
        """Start every dead node again on its port, with its id (nginx's map still names it)."""
        for n, node in enumerate(self.nodes):
            if node.proc is not None and node.proc.poll() is None:
                continue
            again = Node(node.workdir, mutate=node.mutate, port=node.port, node_id=node.node_id)
            self.nodes[n] = again.start()

    def served(self) -> list[tuple[str, str, str, int]]:
        """Every request nginx has logged: (method, path, upstream address, status)."""
        if not self.upstream_log.exists():
            return []
        rows = (line.split("|") for line in self.upstream_log.read_text().splitlines())
        return [(method, uri, upstream, int(status)) for method, uri, upstream, status in rows]

    def stop(self) -> None:
        """Stop nginx, then every node (all at once), each by PID."""
        if self.nginx is not None:
            self.nginx.stop()
        with ThreadPoolExecutor(max(1, len(self.nodes))) as pool:  # side by side, each by its PID
            list(pool.map(Node.stop, self.nodes))
