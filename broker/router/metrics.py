"""``GET /metrics``: Broker's Prometheus metrics, in one registry of its own.

Counters are incremented where things happen (the position hook, the HTTP
publish API, ``STATE.count_rejection``, ``broker.recover``); gauges are read
live at scrape time by :class:`NodeCollector`. Everything lives in
:data:`REGISTRY`, never in prometheus-client's global registry, so only
Broker's series are served (no process or platform collectors).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from twisted.web.resource import Resource

REGISTRY = CollectorRegistry()

PUBLISHES = Counter(
    "broker_publishes",
    "Publishes the router authorized, by namespace (the topic's first URI component).",
    ["namespace"],
    registry=REGISTRY,
)
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
RECOVERIES = Counter(
    "broker_recoveries",
    "broker.recover calls, by outcome: recovered, unrecoverable or refused.",
    ["outcome"],
    registry=REGISTRY,
)


def count_publish(topic: str) -> None:
    """Count one authorized publish to ``topic``."""
    PUBLISHES.labels(topic.split(".", 1)[0]).inc()


def count_http_answer(status: int) -> None:
    """Count one answered HTTP publish API request."""
    HTTP_PUBLISH_REQUESTS.labels(str(status)).inc()


def count_rejection(reason: str) -> None:
    """Count one refusal for ``reason`` (called by ``STATE.count_rejection``)."""
    REJECTIONS.labels(reason).inc()


def count_recovery(outcome: str) -> None:
    """Count one ``broker.recover`` answer: ``recovered``, ``unrecoverable`` or ``refused``."""
    RECOVERIES.labels(outcome).inc()


def router_session_count(session: Any) -> int | None:
    """Sessions joined to the realm of Broker's component ``session`` (None if not reachable).

    An in-router component's transport is crossbar's ``RouterApplicationSession``,
    whose ``_router`` keeps every attached session by id.
    """
    router = getattr(getattr(session, "_transport", None), "_router", None)
    sessions = getattr(router, "_session_id_to_session", None)
    return len(sessions) if isinstance(sessions, dict) else None


class NodeCollector(Collector):
    """Gauges read from the live node at scrape time."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from broker.router.state import STATE  # state imports this module

        sessions = GaugeMetricFamily(
            "broker_sessions", "Sessions joined to the realm, Broker's own component included."
        )
        count = router_session_count(STATE.session)
        if count is not None:
            sessions.add_metric([], count)
        yield sessions
        cursor = GaugeMetricFamily(
            "broker_history_cursor", "The highest history cursor issued (positions' cursor)."
        )
        if STATE.history is not None:
            cursor.add_metric([], STATE.history.cursor())
        yield cursor


REGISTRY.register(NodeCollector())


class MetricsResource(Resource):
    """Mounted at ``/metrics`` in the node config: the Prometheus text exposition."""

    isLeaf = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        Resource.__init__(self)

    def render_GET(self, request: Any) -> bytes:
        request.setHeader(b"content-type", CONTENT_TYPE_LATEST.encode())
        request.setHeader(b"cache-control", b"no-store")
        return generate_latest(REGISTRY)
