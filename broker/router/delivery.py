"""Local delivery: the one place where stored events, positions set, reach this node's subscribers.

Why a place of its own: the next milestone shares history between nodes
through an engine (Redis), and an event another node appended must reach the
subscribers here exactly as a local one does. :meth:`LocalDelivery.deliver`
is that point: it hands the batch to :func:`broker.router.crossbar.publish.deliver`,
which dispatches each event as crossbar would (matching, ``wamp.``-free topics
only, chunked EVENTs, the slow-subscriber bound, delivery metrics) as a
publish of Broker's own session, undisclosed, and returns the publication ids
the HTTP API reports — without a PUBLISH round trip or a Deferred per event
while ``extra.fast_path`` is on.
:meth:`LocalDelivery.feed` is what an engine's
:meth:`~broker.history.HistoryStore.subscribe` calls with a batch another
process appended; the HTTP publish API (:mod:`broker.router.publish_api`)
delivers its whole batch through :meth:`LocalDelivery.deliver` after one
append. A WAMP publish keeps its own publisher, options and acknowledgement,
so the position hook (:mod:`broker.router.positions`) dispatches it through
the same crossbar call (:func:`broker.router.crossbar.publish.dispatch`)
with the original PUBLISH.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from time import perf_counter
from typing import Any, NamedTuple

from broker.history import POSITION_KEY, Appended
from broker.router.crossbar import publish
from broker.router.crossbar.publish import NodePublisher


class Outgoing(NamedTuple):
    """One event to deliver: ``kwargs`` carry its position under ``POSITION_KEY`` when it has one
    (a named tuple: made once per event of every batch, at half a frozen dataclass's cost)."""

    topic: str
    args: list[Any]
    kwargs: dict[str, Any]
    #: what follows the details in its JSON EVENT frame, if already written
    #: (:func:`broker.history.eventtext.wire_tail`); None: the frame is written whole
    text: str | None = None


def outgoing(appended: Appended) -> list[Outgoing]:
    """The events of a stored batch, each with its position in its kwargs (if it has one: an event
    of a topic without history, passed on by a shared engine, has none, as on a single node)."""
    return [
        Outgoing(
            event.topic,
            list(event.args),
            dict(event.kwargs) if position is None else {**event.kwargs, POSITION_KEY: position},
        )
        for event, position in zip(appended.events, appended.positions(), strict=True)
    ]


class LocalDelivery:
    """Dispatches events to the subscribers of this node, as Broker's own session (``session``)."""

    def __init__(self, session: Any) -> None:
        # an in-router component's transport is crossbar's RouterApplicationSession
        self._broker = session._transport._router._broker
        self._publisher = NodePublisher(session)

    def deliver(self, events: Sequence[Outgoing], received: float, checked: bool = False) -> list[int]:
        """Dispatch ``events`` in order; their publication ids.

        Each is counted in ``broker_publishes_total`` and its deliveries and
        latency (from ``received``, a ``perf_counter`` time) as any publish.
        Raises ``ApplicationError`` if crossbar refused one (the ones before
        it went out). ``checked``: :meth:`refusal` found none of their topics
        refused, in this reactor turn, so they are not asked again.
        """
        return publish.deliver(self._broker, self._publisher, events, received, checked)

    def refusal(self, topics: Iterable[str]) -> str | None:
        """Why crossbar would refuse to dispatch one of ``topics`` (an invalid URI for the realm's
        ``uri_check``, ``wamp.`` for an untrusted role), or None; asked before storing."""
        return publish.topic_refusal(self._broker, self._publisher, topics)

    def feed(self, appended: Appended) -> None:
        """Deliver a batch another process appended (the engine's feed, see ``HistoryStore.subscribe``)."""
        self.deliver(outgoing(appended), perf_counter())
