"""Broker's hook in front of crossbar's PUBLISH handling, and crossbar's dispatch without its authorize.

Upstream: ``crossbar/router/broker.py``, ``Broker.processPublish`` (crossbar
26.10). Crossbar checks the topic URI, matches the subscriptions, authorizes
the publish (``Router.authorize``, skipped when nobody listens and no
acknowledgement is due), validates the payload, then dispatches: one EVENT
per matching subscription, sent to its receivers after the
``eligible``/``exclude`` filters and ``exclude_me``, at most
``event_dispatching_chunk_size`` receivers per reactor turn
(``txaio.call_later`` for the rest), acknowledging with PUBLISHED first.

What Broker does instead: :func:`install` replaces ``Broker.processPublish``
with a trampoline to the hook :func:`route` names
(:func:`broker.router.positions.process_publish`, routed once the history
engine is open), which leaves a publish crossbar refuses for its topic to
crossbar (:func:`refuse_topic`), authorizes every other publish itself, once, stores it in
the history engine and puts its position in the kwargs; then :func:`dispatch` runs crossbar's
original ``processPublish`` with that authorization handed in, so crossbar
does everything it did before (URI checks, matching, refusal answers,
PUBLISHED, chunked EVENT dispatch, the slow-subscriber bound on the
transports, metrics through :mod:`broker.router.metrics`) except asking
the authorizer a second time. The handing-in is one-shot: crossbar's
``processPublish`` calls ``self._router.authorize`` once, synchronously,
before it sends anything, so an instance attribute on the realm's router
answers exactly that call and is removed before any EVENT goes out (a
publish made from an event handler inside the router authorizes normally).
What :mod:`.fastpublish` covers (an allowed publish on an untraced router
without ``retain``, an encrypted payload or payload validation, while
``extra.fast_path`` is on) :func:`dispatch_checked` hands to it instead: the same
steps and answers, no Deferred, and no second check of the topic that
:func:`refuse_topic` passed.

:class:`NodePublisher` is the publisher of events the node dispatches on
its own behalf (the HTTP publish API, events another node appended): it
stands for Broker's own session towards crossbar. :func:`deliver`
dispatches a batch of them through :mod:`.fastpublish` (no PUBLISH message,
Deferred or acknowledgement per event) and returns their publication ids,
which the HTTP answer reports; with the fast path off, through crossbar's
``processPublish``, collecting the publication id it acknowledges.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final, Protocol

from autobahn.wamp import message
from autobahn.wamp.exception import ApplicationError
from crossbar.router.broker import Broker
from twisted.internet import defer
from twisted.python.failure import Failure

from broker.router import metrics
from broker.router.crossbar import fastpublish
from broker.router.crossbar.fastpublish import cached_authorization, enable_fast_path

__all__ = [
    "NodePublisher",
    "cached_authorization",
    "deliver",
    "dispatch",
    "dispatch_checked",
    "enable_fast_path",
    "install",
    "refuse_topic",
    "route",
    "tap",
]

_original: dict[str, Callable[..., Any]] = {}
#: The hook every PUBLISH goes to once set (:func:`route`); crossbar's own handling until then.
_route: dict[str, Callable[[Any, Any, Any], None]] = {}
#: Sees every event :func:`dispatch` hands to crossbar, once it is authorized (:func:`tap`).
_tap: dict[str, Callable[[str, list[Any], dict[str, Any]], None]] = {}


def install() -> None:
    """Put :func:`route`'s hook in front of crossbar's PUBLISH handling, once per process.

    Until a hook is routed to, PUBLISH goes to crossbar's own handling.
    """
    if "processPublish" in _original:
        return
    _original["processPublish"] = Broker.processPublish
    Broker.processPublish = _process_publish  # type: ignore[method-assign]


def route(hook: Callable[[Any, Any, Any], None]) -> None:
    """Send every PUBLISH to ``hook(broker, session, publish)`` from now on (see :func:`dispatch`)."""
    _route["hook"] = hook


def tap(hook: Callable[[str, list[Any], dict[str, Any]], None]) -> None:
    """Call ``hook(topic, args, kwargs)`` with every event :func:`dispatch` or :func:`deliver`
    delivers from now on.

    Every event reaching this node's subscribers passes through one of them
    (WAMP publishes; the HTTP API's and the engine's feed from other nodes), so the
    hook sees each once, position in its kwargs. Not passed: a refused or failed
    authorization, an encrypted payload, and a publish limited to ``eligible``
    sessions (no WAMP session stands behind the hook). ``GET /sse`` is the hook
    (:mod:`broker.router.sse`).
    """
    _tap["hook"] = hook


def _process_publish(self: Any, session: Any, publish: Any) -> None:
    hook = _route.get("hook")
    if hook is None:
        _original["processPublish"](self, session, publish)
    else:
        hook(self, session, publish)


def refuse_topic(broker: Any, session: Any, publish: Any) -> bool:
    """Whether crossbar refuses ``publish`` for its topic before authorizing it (an invalid URI
    for the realm's ``uri_check``, ``wamp.`` for an untrusted role); if so, crossbar's own
    ``processPublish`` has answered it (traced, if the router is), as it always did.

    The position hook asks first: such a publish is neither authorized,
    stored, counted nor handed to :func:`tap`.
    """
    if fastpublish.uri_refusal(broker, session, publish.topic) is None:
        return False
    _original["processPublish"](broker, session, publish)  # it refuses before it authorizes
    return True


def dispatch(
    broker: Any, session: Any, publish: message.Publish, authorization: dict[str, Any] | Failure
) -> None:
    """Run crossbar's own ``processPublish`` with ``authorization`` instead of a second authorize.

    ``authorization`` is what ``Router.authorize`` answered for this publish
    (a dict) or how it failed (a Failure): crossbar answers a refusal or a
    failure itself, exactly as if it had asked.
    """
    router = broker._router

    def answer(who: Any, uri: str, action: str, options: Any = None) -> Any:
        del router.authorize  # one-shot: the next publish asks the authorizer again
        if who is not session or uri != publish.topic or action != "publish":
            return router.authorize(who, uri, action, options)  # not this publish's: ask as usual
        if isinstance(authorization, Failure):
            return defer.fail(authorization)
        return defer.succeed(authorization)

    router.authorize = answer
    try:
        _original["processPublish"](broker, session, publish)
    finally:
        # crossbar may return without authorizing (a bad URI; nobody to tell and no answer due)
        router.__dict__.pop("authorize", None)
    if isinstance(authorization, dict) and authorization.get("allow"):
        _tapped(publish)


def dispatch_checked(
    broker: Any,
    session: Any,
    publish: message.Publish,
    authorization: dict[str, Any],
    text: str | None = None,
) -> None:
    """:func:`dispatch` of a publish whose topic :func:`refuse_topic` passed.

    What Broker's fast dispatch covers
    (:func:`broker.router.crossbar.fastpublish.covers`) it dispatches itself, as
    crossbar would, without the Deferreds and without checking the topic again
    (the topic, the publisher's role and the realm's ``uri_check`` are what
    they were when it was checked); anything else goes to :func:`dispatch`.
    ``text``: what follows the details in the JSON frame of its EVENTs, already
    written (:func:`broker.history.eventtext.wire_tail` of its args and kwargs).
    """
    if not fastpublish.covers(broker, publish, authorization):
        dispatch(broker, session, publish, authorization)
        return
    metrics.TRACKER.run_armed(
        fastpublish.dispatch_checked, broker, session, publish, authorization, None, text
    )
    _tapped(publish)


def _tapped(publish: Any) -> None:
    """Hand an authorized, dispatched event to the :func:`tap` hook (if it is one the hook sees)."""
    hook = _tap.get("hook")
    if hook is not None and publish.payload is None:
        if not (publish.eligible or publish.eligible_authid or publish.eligible_authrole):
            hook(publish.topic, publish.args or [], publish.kwargs or {})


class Event(Protocol):
    """One event the node dispatches itself (:class:`broker.router.delivery.Outgoing`)."""

    @property
    def topic(self) -> str: ...
    @property
    def args(self) -> list[Any]: ...
    @property
    def kwargs(self) -> dict[str, Any]: ...
    @property
    def text(self) -> str | None:
        """What follows the details in its JSON EVENT frame, or None
        (:func:`broker.history.eventtext.wire_tail`)."""


class _NodeEvent:
    """What the fast dispatch reads of a PUBLISH, for an event of the node's own: no options."""

    __slots__ = ("args", "kwargs", "topic")
    request = 0
    acknowledge = False
    exclude_me = None
    eligible = eligible_authid = eligible_authrole = None
    exclude = exclude_authid = exclude_authrole = None
    forward_for = transaction_hash = correlation_id = None
    payload = None
    retain = None

    def __init__(self, topic: str, args: list[Any], kwargs: dict[str, Any]) -> None:
        self.topic = topic
        self.args = args
        self.kwargs = kwargs


def topic_refusal(broker: Any, publisher: NodePublisher, topics: Iterable[str]) -> str | None:
    """Why crossbar would refuse the first of ``topics`` it refuses for ``publisher`` (the
    message of its ``wamp.error.invalid_uri``: the realm's ``uri_check``, ``wamp.`` for an
    untrusted role), or None: asked before a batch is stored, so a refused one never is."""
    for topic in topics:
        reason = fastpublish.uri_refusal(broker, publisher, topic)
        if reason is not None:
            return reason
    return None


def deliver(
    broker: Any, publisher: NodePublisher, events: Sequence[Event], received: float, checked: bool = False
) -> list[int]:
    """Dispatch the node's own ``events`` in order, as ``publisher``; their publication ids.

    Each is counted in ``broker_publishes_total``, its deliveries and latency
    (from ``received``, a ``perf_counter`` time) as any publish. With the fast
    dispatch on, no PUBLISH message, Deferred or acknowledgement is made per
    event, and each run of events of one namespace is one step of the delivery
    metrics (:func:`broker.router.metrics.count_publishes`: the same counts, the
    run's latency observed once per event when its last EVENT went out); off,
    each goes through crossbar's ``processPublish`` as before. Raises
    ``ApplicationError`` with crossbar's error if one was refused (the ones
    before it went out; every topic is checked before the first is dispatched), unless
    ``checked``: :func:`topic_refusal` passed all of them for ``publisher`` just before
    (what crossbar refuses depends on the realm's ``uri_check`` and the publisher's role
    only, neither of which changes while the realm runs).
    """
    authorization = NodePublisher.AUTHORIZATION
    if not events:
        return []
    if not fastpublish.covers(broker, _NodeEvent(events[0].topic, [], {}), authorization):
        return _deliver_each(broker, publisher, events, received)
    refused, reason = (len(events), None) if checked else _first_refused(broker, publisher, events)
    ids: list[int] = []
    sent = broker._router._message_stats["sent"]
    start = 0
    while start < refused:
        label = metrics.label_of(events[start].topic)
        end = start + 1
        while end < refused and metrics.label_of(events[end].topic) == label:
            end += 1
        publication = metrics.count_publishes(events[start].topic, received, end - start)
        metrics.TRACKER.run(publication, sent, _dispatch_run, broker, publisher, events[start:end], ids)
        start = end
    if reason is not None:
        raise ApplicationError(ApplicationError.INVALID_URI, reason)
    return ids


def _first_refused(broker: Any, publisher: NodePublisher, events: Sequence[Event]) -> tuple[int, str | None]:
    """The index of the first of ``events`` crossbar would refuse for its topic, and why (each
    topic asked once); ``len(events)`` and None if it would refuse none."""
    reasons: dict[str, str | None] = {}
    for i, event in enumerate(events):
        topic = event.topic
        if topic not in reasons:
            reasons[topic] = fastpublish.uri_refusal(broker, publisher, topic)
        if reasons[topic] is not None:
            return i, reasons[topic]
    return len(events), None


def _dispatch_run(broker: Any, publisher: NodePublisher, run: Sequence[Event], ids: list[int]) -> None:
    """Dispatch ``run`` (topics crossbar accepts), each as :func:`dispatch_checked` would;
    append their publication ids to ``ids``."""
    authorization = NodePublisher.AUTHORIZATION
    hook = _tap.get("hook")
    matched: dict[str, list[Any]] = {}  # once per topic of the run (fastpublish.matches)
    for event in run:
        note = _NodeEvent(event.topic, event.args, event.kwargs)
        ids.append(fastpublish.dispatch_checked(broker, publisher, note, authorization, matched, event.text))
        if hook is not None:  # as _tapped: a node event has no payload, no eligible list
            hook(note.topic, note.args or [], note.kwargs or {})


def _deliver_each(
    broker: Any, publisher: NodePublisher, events: Sequence[Event], received: float
) -> list[int]:
    """:func:`deliver` through crossbar's ``processPublish``, one event at a time."""
    ids = []
    authorization = NodePublisher.AUTHORIZATION
    for event in events:
        publication = metrics.count_publish(event.topic, received)
        publish = publisher.prepare(event.topic, event.args, event.kwargs)
        metrics.dispatch(publication, dispatch, broker, publisher, publish, authorization)
        ids.append(publisher.publication(publish))
    return ids


class _Acknowledgements:
    """The transport of :class:`NodePublisher`: keeps crossbar's answers by request id."""

    def __init__(self) -> None:
        self.answers: dict[int, message.Published | message.Error] = {}

    def send(self, msg: Any) -> None:
        if isinstance(msg, (message.Published, message.Error)):
            self.answers[msg.request] = msg


class NodePublisher:
    """The publisher crossbar sees for an event the node dispatches itself: Broker's own session.

    It carries that session's identity (id, authid, role ``broker``, realm)
    for crossbar's bookkeeping, and a transport of its own that only keeps
    crossbar's answers (PUBLISHED or ERROR). Publishers stay undisclosed, as
    for Broker's session before; no subscriber is this object, so every
    subscriber receives the event.
    """

    #: What crossbar's static ``broker`` role answers for an application topic: allowed, undisclosed.
    AUTHORIZATION: Final[dict[str, Any]] = {"allow": True, "disclose": False, "cache": True}

    def __init__(self, session: Any) -> None:
        self._session_id = session._session_id
        self._authid = session._authid
        self._authrole = session._authrole
        self._realm = session._realm
        self._transport = _Acknowledgements()
        self._request = 0

    def prepare(self, topic: str, args: list[Any], kwargs: dict[str, Any]) -> message.Publish:
        """An acknowledged PUBLISH of one event, to hand to :func:`dispatch` with :attr:`AUTHORIZATION`."""
        self._request = self._request % 2**53 + 1
        return message.Publish(self._request, topic, args=args, kwargs=kwargs, acknowledge=True)

    def publication(self, publish: message.Publish) -> int:
        """The publication id crossbar acknowledged ``publish`` with, once dispatched.

        Raises ``ApplicationError`` with crossbar's error if it refused it.
        """
        answer = self._transport.answers.pop(publish.request, None)
        if isinstance(answer, message.Published):
            return int(answer.publication)
        if isinstance(answer, message.Error):
            raise ApplicationError(answer.error, *(answer.args or []))
        raise ApplicationError(
            ApplicationError.INVALID_ARGUMENT, f"the router did not dispatch {publish.topic!r}"
        )
