"""Events this node can no longer deliver live: its subscribers are told, never left with a gap.

Why: with the Redis engine a node feeds other nodes' events from a shared log
that keeps about ``log_max`` entries. A node whose reader fell further
behind than that finds entries gone (:meth:`broker.engines.redis.RedisStore.subscribe`'s
``lost``); the events are still in their topics' history, but the node cannot
tell which topics they were on. The same holds when Redis came back without
what this node had not delivered yet (a new epoch: ``lost`` with no upper
cursor). So every client session here holding a
subscription (:func:`broker.router.crossbar.subscribers.subscribed_sessions`)
is ended, before anything after the gap is delivered, with GOODBYE
``broker.error.delivery_gap`` (:class:`broker.errors.DeliveryGap`), and
every ``GET /sse`` stream with a ``closed`` event naming it: the
clients reconnect and ``broker.recover`` from their last position, getting
what the history still holds or an explicit ``unrecoverable``. Each gap is
counted in ``broker_delivery_gaps_total``, each session ended in
``broker_rejections_total{reason="DeliveryGap"}``.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter
from twisted.logger import Logger

from broker.errors import DeliveryGap
from broker.router import sse
from broker.router.counters import REGISTRY
from broker.router.crossbar.subscribers import subscribed_sessions
from broker.router.expiry import end_session

_log = Logger(namespace="broker.gaps")

GAPS = Counter(
    "broker_delivery_gaps",
    "Runs of events this node could not deliver live (the shared log lost them before it read them).",
    registry=REGISTRY,
)


def end_subscribers(router: Any, low: int, high: int | None) -> None:
    """Cursors ``low`` to ``high`` (None: the history was reset) will not be delivered here: end
    every subscribed client session of ``router`` (each counted as a ``DeliveryGap`` rejection)."""
    GAPS.inc()
    missed = f"at cursors {low} to {high}" if high is not None else f"from cursor {low} on"
    reset = "" if high is not None else " (the history was reset: a new epoch)"
    error = DeliveryGap(
        f"events {missed} could not be delivered on this node{reset}: "
        "reconnect and recover them (broker.recover)"
    )
    ended = sum(end_session(router, session_id, error) for session_id in subscribed_sessions(router))
    streams = sse.HUB.end_all(error)  # GET /sse streams: each reconnects and replays
    _log.warn(
        "delivery gap {missed}: ended {n} subscribed sessions, {s} SSE streams",
        missed=missed,
        n=ended,
        s=streams,
    )
