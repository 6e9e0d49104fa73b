"""Several real nodes behind real nginx, configured by docs/operators.md's multi-node block.

The block is read from the doc and rendered by :func:`tools.nginxconf.cluster_block`
(``make cluster`` runs the same), so the doc cannot drift from what the tests
run. Each node is a :class:`tests.node.Node` started with its own ``BROKER_NODE_ID``.

nginx logs every request's upstream (``$request_method|$uri|$upstream_addr|$status``) to
``upstream.log``, so a test can tell which node served what.
"""

from __future__ import annotations

import ssl
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.node import Node, free_port
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

        try:
            for i in range(DOC_NODES):
                self.nodes.append(Node(self.directory / f"node{i + 1}", mutate=behind_proxy).start())
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

    def served(self) -> list[tuple[str, str, str, int]]:
        """Every request nginx has logged: (method, path, upstream address, status)."""
        if not self.upstream_log.exists():
            return []
        rows = (line.split("|") for line in self.upstream_log.read_text().splitlines())
        return [(method, uri, upstream, int(status)) for method, uri, upstream, status in rows]

    def stop(self) -> None:
        """Stop nginx, then every node, each by PID."""
        if self.nginx is not None:
            self.nginx.stop()
        for node in self.nodes:
            node.stop()
