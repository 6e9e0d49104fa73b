"""The pure parts of Broker's metrics: bounded namespace labels and a lock-free latency histogram.

Why a cap: every distinct label value is a time series of its own in
Prometheus, and a topic's namespace (its first URI component) is chosen by
whoever publishes. A backend that publishes to ``u1.x``, ``u2.x``, ... would
otherwise create series without bound and take the monitoring down with it.
:class:`NamespaceLabels` hands out at most ``limit`` distinct labels, first
come first served, then :data:`OTHER`.

Why a histogram of our own: the latency is observed once per publication on
the router's hot path, and the router is single-threaded (Twisted's reactor),
so a list increment is enough; prometheus-client's ``Histogram`` takes a lock
per observation. :mod:`broker.router.metrics` exposes it at scrape time.

Nothing here imports Twisted or crossbar, so it is unit-tested directly.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Final

#: The label of the router's meta events (``wamp.session.on_join``, ...): always itself, never capped.
META_NAMESPACE: Final = "wamp"
#: The label of every namespace beyond the cap.
OTHER: Final = "_other"
#: How many distinct namespaces get a label of their own unless ``metrics.max_namespaces`` says otherwise.
DEFAULT_MAX_NAMESPACES: Final = 100

#: Upper bounds (seconds) of the publish-to-delivery latency buckets: 0.1 ms to 10 s, then +Inf.
LATENCY_BUCKETS: Final = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


class NamespaceLabels:
    """Topic -> the ``namespace`` label value, with at most ``limit`` distinct namespaces.

    The first ``limit`` namespaces seen keep their name for the life of the
    process; later ones are all :data:`OTHER`. :data:`META_NAMESPACE` is always
    labelled as itself and does not count against the limit. Only admitted
    namespaces are remembered, so memory stays bounded too.
    """

    def __init__(self, limit: int = DEFAULT_MAX_NAMESPACES) -> None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit must be a positive integer, not {limit!r}")
        self.limit = limit
        self._labels: dict[str, str] = {META_NAMESPACE: META_NAMESPACE}

    def label(self, topic: str) -> str:
        """The label for ``topic``'s namespace."""
        namespace = topic.partition(".")[0]  # the first URI component: orders for orders.eu.42
        label = self._labels.get(namespace)
        if label is not None:
            return label
        if len(self._labels) - 1 < self.limit:  # - 1: the meta namespace is free
            self._labels[namespace] = namespace
            return namespace
        return OTHER

    def admitted(self) -> list[str]:
        """The namespaces that have a label of their own (the meta namespace excluded), in order."""
        return [name for name in self._labels if name != META_NAMESPACE]


class LatencyHistogram:
    """Cumulative-bucket histogram of seconds, for one thread (the router's reactor)."""

    def __init__(self, bounds: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        if not bounds or list(bounds) != sorted(set(bounds)):
            raise ValueError("bounds must be strictly increasing and non-empty")
        self.bounds = bounds
        #: Observations per bucket (not cumulative); the last is above every bound (+Inf).
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, seconds: float, count: int = 1) -> None:
        """Count ``count`` observations of ``seconds`` (a bound includes its own value, as
        Prometheus' ``le`` does)."""
        self.counts[bisect_left(self.bounds, seconds)] += count
        self.sum += seconds * count

    @property
    def count(self) -> int:
        """How many observations there were."""
        return sum(self.counts)

    def cumulative(self) -> list[tuple[str, int]]:
        """``[(le, observations <= le), ..., ("+Inf", count)]`` as Prometheus exposes them."""
        buckets = []
        total = 0
        for bound, observed in zip((*map(repr, self.bounds), "+Inf"), self.counts, strict=True):
            total += observed
            buckets.append((bound, total))
        return buckets
