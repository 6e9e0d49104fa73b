"""Positions on every event: Broker's hook in front of crossbar's PUBLISH handling.

Crossbar dispatches a PUBLISH only when someone is subscribed (or it must be
acknowledged), and its own event store is broken (see docs/positions.md).
This module wraps ``crossbar.router.broker.Broker.processPublish``: once the
publish is authorized, the history store appends it, which issues its
position, and the position travels to every subscriber in the event's
keyword arguments under :data:`POSITION_KEY` — then crossbar dispatches as
usual (Broker's own HTTP API gets the position back through
``STATE.issued_positions``). It covers every publisher alike: the HTTP API (Broker's own session),
backends over WAMP, the CLI. A position a client put in its own kwargs is
dropped, never forwarded. If the store fails the publish is refused with
``broker.error.history_unavailable`` rather than delivered without a position,
and once Broker's component has left (the node is stopping: SIGTERM, Ctrl-C)
every publish to a topic with history is refused with ``broker.error.not_ready``:
the store is closed, and an acknowledged event must be one that recovery can
return. An event that would not fit the node's message limit once its
position is added, as a live EVENT or as a recovery answer of its own
(:func:`broker.history.recovery.check_deliverable`), is refused before it is
stored, with ``broker.error.too_large`` (counted ``EventTooLarge``):
accepted, it would be dropped for every subscriber and unrecoverable.
Every authorized publish, with history or without, is counted in
``broker_publishes_total``, its deliveries and their latency (from this hook
on) in ``broker_deliveries_total`` and ``broker_delivery_latency_seconds``,
and a refused one in ``broker_rejections_total{reason="NotAuthorized"}``
(:mod:`broker.router.metrics`).
"""

from __future__ import annotations

from time import perf_counter
from typing import Any

from autobahn.wamp import message
from crossbar.router.broker import Broker
from twisted.logger import Logger

from broker.errors import NotReady, PayloadTooLarge
from broker.history import POSITION_KEY
from broker.history.policy import retention_for
from broker.history.recovery import check_deliverable
from broker.router import metrics
from broker.router.state import STATE

#: The role of Broker's own in-process session, whose position requests are honoured.
BROKER_ROLE = "broker"

#: The rejection reason of a publish refused for its size (``broker_rejections_total``).
EVENT_TOO_LARGE = "EventTooLarge"

_log = Logger(namespace="broker.positions")
_original: dict[str, Any] = {}


def _strip(publish: Any) -> dict[str, Any]:
    kwargs = dict(publish.kwargs or {})
    kwargs.pop(POSITION_KEY, None)
    return kwargs


def _refuse(session: Any, publish: Any, uri: str, reason: str) -> None:
    """Answer an acknowledged PUBLISH with ERROR ``uri``; an unacknowledged one is dropped."""
    if publish.acknowledge:
        session._transport.send(
            message.Error(message.Publish.MESSAGE_TYPE, publish.request, uri, args=[reason])
        )


def _deliverable(session: Any, publish: Any, kwargs: dict[str, Any], epoch: str | None) -> bool:
    """Whether the event fits the node's message limit with its position (``epoch`` None: the
    topic keeps no history); if not, the publish is refused with ``broker.error.too_large``."""
    if publish.payload is not None:  # an end-to-end encrypted payload: crossbar forwards it as is
        return True
    details = {"transaction_hash": publish.transaction_hash} if publish.transaction_hash else None
    try:
        check_deliverable(publish.topic, publish.args or [], kwargs, epoch, STATE.message_limit, details)
    except PayloadTooLarge as error:
        STATE.count_rejection(EVENT_TOO_LARGE)
        _refuse(session, publish, error.wamp_uri, str(error))
        return False
    return True


def _process_publish(self: Any, session: Any, publish: Any) -> None:
    received = perf_counter()  # the start of broker_delivery_latency_seconds
    original = _original["processPublish"]
    if STATE.stopping and retention_for(STATE.history_policies, publish.topic) is not None:
        # a topic with history (not crossbar's own meta events, which it publishes as it stops)
        _refuse(session, publish, NotReady.wamp_uri, "the node is stopping: publish again once it is back")
        return
    store = STATE.history
    retention = None
    if store is not None and publish.payload is None:
        retention = retention_for(STATE.history_policies, publish.topic)
    if retention is None:
        if publish.kwargs and POSITION_KEY in publish.kwargs:
            publish.kwargs = _strip(publish)

    # Broker's own session (the HTTP API) asks for the position back by passing a token
    wanted = (publish.kwargs or {}).get(POSITION_KEY) if session._authrole == BROKER_ROLE else None

    def authorized(authorization: dict[str, Any]) -> None:
        allowed = bool(authorization.get("allow"))
        if not allowed:
            STATE.count_rejection(metrics.NOT_AUTHORIZED)
            original(self, session, publish)  # crossbar answers the refusal itself
            return
        kwargs = _strip(publish) if retention is not None else dict(publish.kwargs or {})
        if not _deliverable(session, publish, kwargs, store.epoch if retention is not None else None):
            return
        # every authorized publish, with history or without
        publication = metrics.count_publish(publish.topic, received)
        if retention is not None:
            try:
                event = store.append(publish.topic, list(publish.args or []), kwargs, retention)
            except Exception:  # the store's own errors vary by engine; any of them means "not stored"
                _log.failure("history store failed; refusing publish to {topic}", topic=publish.topic)
                _refuse(
                    session,
                    publish,
                    "broker.error.history_unavailable",
                    "the event could not be stored, so it was not published",
                )
                return
            position = event.position(store.epoch)
            publish.kwargs = {**kwargs, POSITION_KEY: position}
            if isinstance(wanted, str):
                STATE.issued_positions[wanted] = position
        metrics.dispatch(publication, original, self, session, publish)  # counts its deliveries

    def failed(_failure: Any) -> None:
        original(self, session, publish)  # crossbar answers the authorization failure itself

    authorization = self._router.authorize(
        session, publish.topic, "publish", options=publish.marshal_options()
    )
    authorization.addCallbacks(authorized, failed)


def install() -> None:
    """Put the hook in front of crossbar's PUBLISH handling, once per process."""
    if "processPublish" in _original:
        return
    _original["processPublish"] = Broker.processPublish
    Broker.processPublish = _process_publish  # type: ignore[method-assign]
