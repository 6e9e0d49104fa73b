"""Several real nodes behind real nginx, configured by docs/operators.md's multi-node block.

The block is read from the doc (the fenced ``nginx`` block after
:data:`MARKER`), so the doc cannot drift from what the tests run. What is
substituted, each found where the doc has it or the test fails naming it:
the listening address, the public name, the certificate (or, without one,
the TLS lines, for plain HTTP on one machine), and per node ``i`` of the doc's
three its address (``10.0.0.i:8080``, in ``broker_nodes`` and in
``broker_node_i``) and its id (``node-i`` in the map). Each node is a
:class:`tests.node.Node` started with its own ``BROKER_NODE_ID``.

nginx logs every request's upstream (``$request_method|$uri|$upstream_addr|$status``) to
``upstream.log``, so a test can tell which node served what.
"""

from __future__ import annotations

import re
import ssl
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.node import Node, free_port
from tests.test_reverse_proxy import DOC, PUBLIC_NAME, Nginx, self_signed

MARKER = "<!-- tests/test_cluster_longpoll.py runs the next block -->"
#: How many nodes the doc's block has (addresses 10.0.0.1-3, ids node-1..3).
DOC_NODES = 3
#: What nginx logs per request, in ``upstream.log``.
UPSTREAM_LOG_FORMAT = "log_format broker_upstream '$request_method|$uri|$upstream_addr|$status';\n"


class DocDrift(AssertionError):
    """The doc's block lacks something the harness substitutes (the message names it)."""


def doc_cluster_block(doc: Path = DOC) -> str:
    """The fenced nginx block right after :data:`MARKER` in docs/operators.md."""
    found = re.search(re.escape(MARKER) + r"\s*```nginx\n(.*?)```", doc.read_text(), re.S)
    if found is None:
        raise DocDrift(f"{doc}: no ```nginx block after {MARKER!r}")
    return found.group(1)


def _replace(block: str, old: str, new: str, count: int = 1) -> str:
    if block.count(old) != count:
        raise DocDrift(f"the doc's multi-node nginx block should contain {old!r} {count} time(s)")
    return block.replace(old, new)


def cluster_block(
    nodes: list[tuple[str, int]],
    listen: str,
    cert: tuple[Path, Path] | None = None,
    upstream_log: Path | None = None,
) -> str:
    """The doc's block for ``nodes`` (each ``(BROKER_NODE_ID, port on 127.0.0.1)``), listening on
    ``listen`` (``127.0.0.1:8080``): TLS with ``cert`` (cert, key), else plain HTTP."""
    if len(nodes) != DOC_NODES:
        raise ValueError(f"the doc's block has {DOC_NODES} nodes, not {len(nodes)}")
    block = doc_cluster_block()
    for i, (node_id, port) in enumerate(nodes, start=1):
        block = _replace(block, f"server 10.0.0.{i}:8080;", f"server 127.0.0.1:{port};", count=2)
        block = _replace(block, f"    node-{i}  broker_node_{i};", f"    {node_id}  broker_node_{i};")
    server_name = "server_name localhost;"
    if upstream_log is not None:
        block = UPSTREAM_LOG_FORMAT + block
        server_name += f"\n    access_log {upstream_log} broker_upstream;"
    block = _replace(block, f"server_name {PUBLIC_NAME};", server_name)
    if cert is None:
        block = _replace(block, "listen 443 ssl;", f"listen {listen};")
        block = re.sub(r"\n    ssl_\w+ [^\n]*;", "", block)
    else:
        block = _replace(block, "listen 443 ssl;", f"listen {listen} ssl;")
        block = _replace(block, f"/etc/letsencrypt/live/{PUBLIC_NAME}/fullchain.pem", str(cert[0]))
        block = _replace(block, f"/etc/letsencrypt/live/{PUBLIC_NAME}/privkey.pem", str(cert[1]))
    return block


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
