"""Positions on every event: Broker's hook in front of crossbar's PUBLISH handling.

Crossbar dispatches a PUBLISH only when someone is subscribed (or it must be
acknowledged), and its own event store is broken (see docs/positions.md).
:func:`process_publish` runs in front of crossbar's
``Broker.processPublish`` (installed by :mod:`broker.router.crossbar.publish`):
it authorizes the publish, once, the history engine appends it (a batch of
one), which issues its position, and the position travels to every
subscriber in the event's keyword arguments under :data:`POSITION_KEY` —
then crossbar dispatches with that same authorization, without checking the
topic again (:func:`broker.router.crossbar.publish.dispatch_checked`). A publish crossbar refuses
for its topic before it authorizes anything (an invalid URI for the realm's
``uri_check``, ``wamp.`` for an untrusted role) gets crossbar's ERROR first,
as from crossbar: nothing authorized, stored or counted
(:func:`broker.router.crossbar.publish.refuse_topic`). It covers every WAMP
publisher alike: backends, the CLI, in-router components. The HTTP API
appends and delivers its batches itself (:mod:`broker.router.publish_api`,
:mod:`broker.router.delivery`), with the same checks. A position a client
put in its own kwargs is dropped, never forwarded. If the store fails the publish is refused with
``broker.error.history_unavailable`` rather than delivered without a position,
and once Broker's component has left (the node is stopping: SIGTERM, Ctrl-C)
every publish to a topic with history is refused with ``broker.error.not_ready``:
the store is closed, and an acknowledged event must be one that recovery can
return. The refusal's message is the engine's when it says whether the event
was stored (the Redis engine: not stored, for certain, or "may have been
stored" after a call that went unanswered: :func:`refusal`). On a cluster
node (a shared engine, ``HistoryStore.shared``) a topic without history is
appended too (:func:`retention_of`: ``NO_HISTORY``, no position), so the
other nodes deliver it from the shared log; this node dispatches it once the
append has answered, and refuses it like a topic with history when the engine
fails or the node stops. An event that would not fit
the node's message limit once its position is added, as a live EVENT or as
a recovery answer of its own (:func:`broker.history.recovery.check_deliverable`),
is refused before it is stored, with ``broker.error.too_large`` (counted ``EventTooLarge``):
accepted, it would be dropped for every subscriber and unrecoverable.
Every authorized publish, with history or without, is counted in
``broker_publishes_total``, its deliveries and their latency (from this hook
on) in ``broker_deliveries_total`` and ``broker_delivery_latency_seconds``,
a refused one in ``broker_rejections_total{reason="NotAuthorized"}``, and one the
engine could not store in ``broker_rejections_total{reason="history_unavailable"}``
(:mod:`broker.router.metrics`).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from time import perf_counter
from typing import Any, cast

from autobahn.wamp import message
from twisted.logger import Logger
from twisted.python.failure import Failure

from broker.core.uris import is_reserved
from broker.errors import HistoryUnavailable, NotReady, PayloadTooLarge
from broker.history import NO_HISTORY, POSITION_KEY, Appended, Retention, new_event
from broker.history.eventtext import args_json, wire_tail
from broker.history.policy import retention_for
from broker.history.recovery import check_deliverable
from broker.router import metrics
from broker.router.crossbar import publish as crossbar_publish
from broker.router.crossbar.protocol import inbound_size
from broker.router.state import STATE

#: The rejection reason of a publish refused for its size (``broker_rejections_total``).
EVENT_TOO_LARGE = "EventTooLarge"
#: The error of a publish whose event the history engine could not store.
HISTORY_UNAVAILABLE = "broker.error.history_unavailable"
#: Its rejection reason (``broker_rejections_total``; the HTTP API's is ``http_`` + it).
HISTORY_UNAVAILABLE_REASON = "history_unavailable"
#: Its message (the HTTP API answers it too).
NOT_STORED = "the event could not be stored, so it was not published"
#: The message of a publish refused because the node is stopping.
STOPPING = "the node is stopping: publish again once it is back"

_log = Logger(namespace="broker.positions")


def _strip(publish: Any) -> dict[str, Any]:
    kwargs = dict(publish.kwargs or {})
    kwargs.pop(POSITION_KEY, None)
    return kwargs


def _refuse(router: Any, session: Any, publish: Any, uri: str, reason: str) -> None:
    """Answer an acknowledged PUBLISH with ERROR ``uri``; an unacknowledged one is dropped.

    Through ``router.send``, as crossbar answers: counted, and skipped for a
    publisher that has left meanwhile (an engine that answered late).
    """
    if publish.acknowledge:
        router.send(session, message.Error(message.Publish.MESSAGE_TYPE, publish.request, uri, args=[reason]))


def _deliverable(
    router: Any, session: Any, publish: Any, kwargs: dict[str, Any], epoch: str | None, encoded: int | None
) -> bool:
    """Whether the event fits the node's message limit with its position (``epoch`` None: the
    topic keeps no history; ``encoded``: the size of the message it came in, if known); if not,
    the publish is refused with ``broker.error.too_large``."""
    if publish.payload is not None:  # an end-to-end encrypted payload: crossbar forwards it as is
        return True
    details = {"transaction_hash": publish.transaction_hash} if publish.transaction_hash else None
    limit = STATE.message_limit
    try:
        check_deliverable(publish.topic, publish.args or [], kwargs, epoch, limit, details, encoded)
    except PayloadTooLarge as error:
        STATE.count_rejection(EVENT_TOO_LARGE)
        _refuse(router, session, publish, error.wamp_uri, str(error))
        return False
    return True


def retention_of(topic: str) -> Retention | None:
    """What an event on ``topic`` is appended with: its history policy's retention, or on a node
    whose engine is shared (Redis) ``NO_HISTORY`` for a topic without history, which the other
    nodes then deliver from the shared log; None: it is not appended (a topic without history on
    a single node, or a reserved one: crossbar's and Broker's own events stay on their node)."""
    retention = retention_for(STATE.history_policies, topic)
    if retention is None and STATE.shared_history and not is_reserved(topic):
        return NO_HISTORY
    return retention


def refusal(failure: Failure, topic: str) -> str:
    """The message of a publish the history engine did not store: a shared engine's own
    (:class:`~broker.errors.HistoryUnavailable`: not stored, or
    :class:`~broker.errors.HistoryUnanswered`: it may have been), else :data:`NOT_STORED`
    (another engine's errors vary; any of them means "not stored")."""
    error = failure.value
    if isinstance(error, HistoryUnavailable):
        _log.warn("refusing a publish to {topic}: {error}", topic=topic, error=str(error))
        return str(error)
    _log.failure("history store failed; refusing a publish to {topic}", failure, topic=topic)
    return NOT_STORED


def process_publish(self: Any, session: Any, publish: Any) -> None:
    """Crossbar's ``Broker.processPublish``, with positions: authorize once, store, dispatch."""
    received = perf_counter()  # the start of broker_delivery_latency_seconds
    if crossbar_publish.refuse_topic(self, session, publish):
        return  # crossbar's first checks (a strict realm's URI rule, wamp.): nothing stored or counted
    encoded = inbound_size(session)
    appended_with = retention_of(publish.topic)
    if STATE.stopping and appended_with is not None:
        # a topic with history, or any on a cluster node: the other nodes could no longer get it
        # (not crossbar's own meta events, which it publishes as it stops)
        _refuse(self._router, session, publish, NotReady.wamp_uri, STOPPING)
        return
    store = STATE.history
    retention = None
    if store is not None and publish.payload is None:
        retention = appended_with
    history = None if retention is None else store
    # a topic without history on a cluster node is appended (so every node delivers it) unpositioned
    positioned = retention is not None and retention.max_events > 0
    if retention is None:
        if publish.kwargs and POSITION_KEY in publish.kwargs:
            publish.kwargs = _strip(publish)

    def authorized(authorization: dict[str, Any]) -> None:
        if not authorization.get("allow"):
            STATE.count_rejection(metrics.NOT_AUTHORIZED)
            crossbar_publish.dispatch(self, session, publish, authorization)  # crossbar answers the refusal
            return
        kwargs = _strip(publish) if retention is not None else dict(publish.kwargs or {})
        epoch = history.epoch if history is not None and positioned else None
        if not _deliverable(self._router, session, publish, kwargs, epoch, encoded):
            return
        # every authorized publish, with history or without
        publication = metrics.count_publish(publish.topic, received)
        if history is None or retention is None:
            metrics.dispatch(
                publication, crossbar_publish.dispatch_checked, self, session, publish, authorization
            )
            return

        # its args written to JSON once, for an engine that keeps text and its JSON EVENT frames
        text = args_json(publish.args)

        def stored(appended: Appended) -> None:
            position = appended.positions()[0]
            publish.kwargs = kwargs if position is None else {**kwargs, POSITION_KEY: position}
            tail = None if text is None else wire_tail(publish.args, text, publish.kwargs)
            # the origin dispatches it here, once (exclude_me, acknowledge: crossbar's, as ever);
            # the other nodes deliver it from the shared log
            metrics.dispatch(
                publication, crossbar_publish.dispatch_checked, self, session, publish, authorization, tail
            )

        def not_stored(failure: Failure) -> None:
            STATE.count_rejection(HISTORY_UNAVAILABLE_REASON)
            _refuse(self._router, session, publish, HISTORY_UNAVAILABLE, refusal(failure, publish.topic))

        stored_args = type(publish.args) is list  # else the engine's text is of list(args or [])
        batch = [
            new_event(
                publish.topic, list(publish.args or []), kwargs, retention, text if stored_args else None
            )
        ]
        # memory and SQLite never suspend: stored() runs before this returns; Redis resumes it
        # when its append is answered (no Deferred of its own either way)
        settle(history.append(batch), stored, not_stored)

    def failed(failure: Failure) -> None:
        crossbar_publish.dispatch(self, session, publish, failure)  # crossbar answers the failure itself

    cached = crossbar_publish.cached_authorization(self._router, session, publish.topic)
    if cached is not None:  # what Router.authorize would answer from its cache, without its Deferreds
        authorized(cached)
        return
    authorization = self._router.authorize(
        session, publish.topic, "publish", options=publish.marshal_options()
    )
    authorization.addCallbacks(authorized, failed)


def settle(
    coroutine: Coroutine[Any, Any, Any],
    done: Callable[[Any], None],
    failed: Callable[[Failure], None],
    result: Any = None,
) -> None:
    """Run ``coroutine`` now, then ``done(result)`` or ``failed(failure)``: what
    ``Deferred.fromCoroutine(coroutine).addCallbacks(done, failed)`` does, without a Deferred
    of its own. If it awaits a Deferred, it resumes when that fires, with its result sent in
    (a failure thrown in) as Twisted's own coroutine runner does: the awaited Deferred's
    ``__await__`` cannot read a failure while its callbacks run."""
    try:
        if isinstance(result, Failure):
            waiting = coroutine.throw(cast(BaseException, result.value))
        else:
            waiting = coroutine.send(result)
    except StopIteration as finished:
        done(finished.value)
        return
    except Exception:  # the engine's error, whatever it is: the publish is refused, not lost
        failed(Failure())
        return

    def resume(result: Any) -> None:
        settle(coroutine, done, failed, result)  # the coroutine has the result: the Deferred keeps None

    waiting.addBoth(resume)


def install() -> None:
    """Send every PUBLISH through :func:`process_publish` (once the history engine is open).

    The reach-in that makes crossbar call the route is installed with every
    other patch, by :func:`broker.router.crossbar.install`.
    """
    crossbar_publish.route(process_publish)
