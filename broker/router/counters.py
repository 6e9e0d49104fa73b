"""Broker's Prometheus registry and its first counters: what :mod:`broker.router.state` counts into.

Why a module of its own: the node's state counts every refusal
(:meth:`broker.router.state.NodeState.count_rejection`) and ``/metrics``
(:mod:`broker.router.metrics`) reads the state at scrape time; with the
registry here, neither imports the other back.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

#: Every Broker series, never prometheus-client's global registry (see :mod:`broker.router.metrics`).
REGISTRY = CollectorRegistry()

# registered in the order /metrics has always listed them (then metrics.py's)
HTTP_PUBLISH_REQUESTS = Counter(
    "broker_http_publish_requests",
    "Requests answered by the HTTP publish API (/api), by HTTP status.",
    ["status"],
    registry=REGISTRY,
)
REJECTIONS = Counter(
    "broker_rejections",
    "Connections, messages and requests Broker refused, by reason (as on /health).",
    ["reason"],
    registry=REGISTRY,
)


def count_rejection(reason: str) -> None:
    """Count one refusal for ``reason`` (called by ``NodeState.count_rejection``)."""
    REJECTIONS.labels(reason).inc()
