"""``GET /metrics``: Broker's Prometheus metrics, in one registry of its own.

Everything lives in :data:`REGISTRY`, never in prometheus-client's global
registry, so only Broker's series are served (no process or platform
collectors). The metrics, their labels and their meaning are listed in
docs/operators.md.

Why not prometheus-client's ``Counter`` everywhere: publishes, deliveries and
the publish-to-delivery latency are counted on the router's hot path, once per
publication, in the router's only thread (Twisted's reactor). There a dict
increment does the job, while a client ``Counter`` takes a lock and looks its
labels up per increment; those series are plain numbers here, read at scrape
time by :class:`NodeCollector` (the rare events, HTTP answers, rejections and
recoveries, keep the client's counters). Namespaces are capped
(:class:`broker.core.metering.NamespaceLabels`), so a publisher cannot create series
without bound.

Deliveries are counted per publication, not per EVENT: crossbar already counts
every message it hands to a session's transport
(``Router._message_stats["sent"]["event"]``, one dict increment in
``Router.send``), so a publication's deliveries are that counter's growth
while crossbar dispatches it. Crossbar dispatches to at most
``event_dispatching_chunk_size`` (100) receivers per reactor turn and
schedules the rest with ``txaio.call_later``; :class:`DeliveryTracker` replaces
the ``txaio`` that ``crossbar.router.broker`` sees with a proxy whose
``add_callbacks`` and ``call_later`` wrap those dispatch steps, so each one is
measured and the publication is complete when its last step has run. Nothing
is added per EVENT.

What crossbar refuses on its own is counted by
:mod:`broker.router.crossbar.counting`, which also installs the ``txaio`` proxy.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from typing import Any, Final

import txaio
from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from twisted.web.resource import Resource

from broker.core.metering import DEFAULT_MAX_NAMESPACES, META_NAMESPACE, LatencyHistogram, NamespaceLabels
from broker.router.counters import HTTP_PUBLISH_REQUESTS, REGISTRY
from broker.router.state import STATE

#: Rejection reasons counted here (the others are counted where Broker refuses, see docs/operators.md).
AUTHENTICATION_FAILED: Final = "AuthenticationFailed"
NOT_AUTHORIZED: Final = "NotAuthorized"
MESSAGE_TOO_LARGE: Final = "MessageTooLarge"
FOREIGN_ORIGIN: Final = "ForeignOrigin"  # as long-poll counts it (broker.router.crossbar.longpoll_origins)

RECOVERIES = Counter(
    "broker_recoveries",
    "broker.recover calls, by outcome: recovered, unrecoverable, refused, or position (no position yet).",
    ["outcome"],
    registry=REGISTRY,
)

#: Topic -> namespace label, capped; replaced by :func:`configure`.
LABELS = NamespaceLabels(DEFAULT_MAX_NAMESPACES)
#: Authorized publishes and EVENTs handed to transports, by namespace label.
PUBLISHES: dict[str, int] = {}
DELIVERIES: dict[str, int] = {}
#: Publish-to-delivery latency of application publications (not the router's ``wamp.`` meta events).
LATENCY = LatencyHistogram()


def configure(max_namespaces: int) -> None:
    """Set the namespace cap (``metrics.max_namespaces``); labels already handed out stay."""
    LABELS.limit = max_namespaces


class Publication:
    """One authorized publish on its way to subscribers: where it counts, and what is left to do."""

    __slots__ = ("delivered", "label", "pending", "received", "sent", "weight")

    def __init__(self, label: str, received: float, weight: int = 1) -> None:
        self.label = label
        #: how many publishes it stands for: a run of a batch is dispatched as one
        #: (:func:`count_publishes`), and its latency observed once for each
        self.weight = weight
        #: ``time.perf_counter()`` when the PUBLISH reached the position hook.
        self.received = received
        #: crossbar's per-router "sent" message counters, once dispatch starts.
        self.sent: dict[str, int] = {}
        #: Dispatch steps scheduled but not yet run.
        self.pending = 0
        self.delivered = 0


def count_publish(topic: str, received: float) -> Publication:
    """Count one authorized publish to ``topic`` (received at ``received``, ``perf_counter``)."""
    label = LABELS.label(topic)
    PUBLISHES[label] = PUBLISHES.get(label, 0) + 1
    return Publication(label, received)


def count_publishes(topic: str, received: float, count: int) -> Publication:
    """Count ``count`` authorized publishes to topics of ``topic``'s namespace, dispatched in one
    step (one run of a batch, all received at ``received``): their deliveries add up in one
    :class:`Publication`, and its latency is observed ``count`` times when the last is sent."""
    label = LABELS.label(topic)
    PUBLISHES[label] = PUBLISHES.get(label, 0) + count
    return Publication(label, received, count)


def label_of(topic: str) -> str:
    """The namespace label ``topic`` is counted under."""
    return LABELS.label(topic)


#: status -> its child of ``broker_http_publish_requests`` (a label lookup per request cost 3x the inc)
_HTTP_ANSWERS: dict[int, Any] = {}


def count_http_answer(status: int) -> None:
    """Count one answered HTTP publish API request."""
    child = _HTTP_ANSWERS.get(status)
    if child is None:
        child = _HTTP_ANSWERS[status] = HTTP_PUBLISH_REQUESTS.labels(str(status))
    child.inc()


def count_recovery(outcome: str) -> None:
    """Count one ``broker.recover`` answer: ``recovered``, ``unrecoverable``, ``refused`` or ``position``."""
    RECOVERIES.labels(outcome).inc()


class DeliveryTracker:
    """Follows each publication through crossbar's (possibly chunked) dispatch.

    :meth:`dispatch` runs crossbar's ``processPublish`` for a publication;
    the ``txaio`` proxy (:class:`_Txaio`) turns crossbar's authorization
    callback and each later chunk into a *step* of that publication. A step
    measures how many EVENTs crossbar sent while it ran, minus those of any
    publication dispatched inside it (an in-router component may publish from
    an event handler), and the last step records the deliveries and the latency.
    """

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self._clock = clock
        #: The publication whose ``processPublish`` is running and has not reached its callback yet.
        self._arming: Publication | None = None
        #: The publication whose step is running (chunks it schedules belong to it).
        self._current: Publication | None = None
        #: EVENTs already attributed by steps; nested steps' share is subtracted from outer ones.
        self._claimed = 0

    def dispatch(
        self, publication: Publication, process: Callable[..., Any], broker: Any, *args: Any
    ) -> None:
        """Call ``process(broker, *args)`` (crossbar's ``processPublish``) as ``publication``."""
        publication.sent = broker._router._message_stats["sent"]
        outer = self._arming
        self._arming = publication
        try:
            process(broker, *args)
        finally:
            self._arming = outer

    def run_armed(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` as the first step of the publication :meth:`dispatch` is running: Broker's
        fast dispatch (:mod:`broker.router.crossbar.fastpublish`), where crossbar would call back."""
        publication = self._arming
        if publication is None:
            return fn(*args)
        self._arming = None
        publication.pending += 1
        return self._step(publication, fn, *args)

    def run(self, publication: Publication, sent: dict[str, int], fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` as the first step of ``publication`` (``sent``: the router's counters)."""
        publication.sent = sent
        publication.pending += 1
        return self._step(publication, fn, *args)

    def add_callbacks(self, future: Any, callback: Any, errback: Any) -> Any:
        """``txaio.add_callbacks``: crossbar's PUBLISH authorization callback becomes a first step."""
        publication = self._arming
        if publication is not None:
            self._arming = None  # only processPublish's own, the first one after dispatch() began
            publication.pending += 1
            callback = functools.partial(self._step, publication, callback)
        return txaio.add_callbacks(future, callback, errback)  # type: ignore[attr-defined]

    def call_later(self, delay: float, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """``txaio.call_later``: a chunk scheduled by a step belongs to the same publication."""
        publication = self._current
        if publication is None:
            return txaio.call_later(delay, fn, *args, **kwargs)  # type: ignore[attr-defined]
        publication.pending += 1
        return txaio.call_later(  # type: ignore[attr-defined]
            delay, self._step, publication, fn, *args, **kwargs
        )

    def _step(self, publication: Publication, fn: Any, *args: Any, **kwargs: Any) -> Any:
        sent = publication.sent
        before, claimed = sent.get("event", 0), self._claimed
        outer, self._current = self._current, publication
        try:
            return fn(*args, **kwargs)
        finally:
            self._current = outer
            delivered = sent.get("event", 0) - before - (self._claimed - claimed)
            if delivered > 0:
                publication.delivered += delivered
                self._claimed += delivered
            publication.pending -= 1
            if publication.pending == 0 and publication.delivered:
                label = publication.label
                DELIVERIES[label] = DELIVERIES.get(label, 0) + publication.delivered
                if label != META_NAMESPACE:
                    LATENCY.observe(self._clock() - publication.received, publication.weight)


TRACKER = DeliveryTracker()


def dispatch(publication: Publication, process: Callable[..., Any], broker: Any, *args: Any) -> None:
    """Run crossbar's ``processPublish`` for ``publication`` (see :class:`DeliveryTracker`)."""
    TRACKER.dispatch(publication, process, broker, *args)


def _realm_router(session: Any) -> Any:
    """The crossbar ``Router`` of Broker's component ``session`` (an in-router component's
    transport is crossbar's ``RouterApplicationSession``, whose ``_router`` is the realm's)."""
    return getattr(getattr(session, "_transport", None), "_router", None)


def router_session_count(session: Any) -> int | None:
    """Sessions joined to the realm of Broker's component ``session`` (None if not reachable)."""
    sessions = getattr(_realm_router(session), "_session_id_to_session", None)
    return len(sessions) if isinstance(sessions, dict) else None


def router_subscription_counts(session: Any) -> tuple[int, int] | None:
    """``(subscriptions, subscribers)`` in the realm's broker: distinct (topic, match)
    subscriptions and the (session, subscription) pairs under them (None if not reachable)."""
    broker = getattr(_realm_router(session), "_broker", None)
    observations = getattr(getattr(broker, "_subscription_map", None), "_observation_id_to_observation", None)
    if not isinstance(observations, dict):
        return None
    return len(observations), sum(len(o.observers) for o in observations.values())


def _frames_written() -> int:
    from broker.router.crossbar.frames import frames_written  # the router's crossbar, loaded by now

    return frames_written()


def _by_namespace(name: str, documentation: str, counts: dict[str, int]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation, labels=["namespace"])
    for label, value in sorted(counts.items()):
        family.add_metric([label], value)
    return family


class NodeCollector(Collector):
    """Series read at scrape time: the live node's gauges and the hot-path counters."""

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily | HistogramMetricFamily]:
        yield _by_namespace(
            "broker_publishes",
            "Publishes the router authorized, by namespace (the topic's first URI component, capped).",
            PUBLISHES,
        )
        yield _by_namespace(
            "broker_deliveries",
            "EVENT messages handed to subscribers' transports, by the publication's namespace.",
            DELIVERIES,
        )
        yield CounterMetricFamily(
            "broker_fast_frames",
            "EVENT frames written to WebSockets as built once per serializer (the fast path, fast_path).",
            value=_frames_written(),
        )
        yield HistogramMetricFamily(
            "broker_delivery_latency_seconds",
            "From a PUBLISH reaching the router to the last EVENT of it handed to a transport "
            "(publications with at least one receiver, the router's wamp. meta events excepted).",
            buckets=LATENCY.cumulative(),
            sum_value=LATENCY.sum,
        )
        sessions = GaugeMetricFamily(
            "broker_sessions", "Sessions joined to the realm, Broker's own component included."
        )
        count = router_session_count(STATE.session)
        if count is not None:
            sessions.add_metric([], count)
        yield sessions
        subscriptions = GaugeMetricFamily(
            "broker_subscriptions",
            "Distinct subscriptions (topic or pattern, and match) in the realm, Broker's own included.",
        )
        subscribers = GaugeMetricFamily(
            "broker_subscribers", "Sessions subscribed, summed over the subscriptions in the realm."
        )
        counts = router_subscription_counts(STATE.session)
        if counts is not None:
            subscriptions.add_metric([], counts[0])
            subscribers.add_metric([], counts[1])
        yield subscriptions
        yield subscribers
        cursor = GaugeMetricFamily(
            "broker_history_cursor", "The highest history cursor issued (positions' cursor)."
        )
        if STATE.history is not None:
            cursor.add_metric([], STATE.history.cursor())
        yield cursor
        available = GaugeMetricFamily(
            "broker_history_available",
            "1 while the history engine stores and shares events, 0 while it cannot (see /health).",
        )
        if STATE.history is not None:
            available.add_metric([], 0 if STATE.history.problem() else 1)
        yield available


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
