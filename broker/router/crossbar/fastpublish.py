"""Broker's own dispatch of an authorized PUBLISH: crossbar's ``processPublish`` without its Deferreds.

Upstream: ``crossbar/router/broker.py``, ``Broker.processPublish`` (crossbar
26.10). Once the position hook has authorized and stored a publish, crossbar's
handling of it still costs a Deferred for the authorization it is handed, a
``txaio`` future per subscription, a ``gather`` of them and a closure per
dispatch chunk, and a ``Router.send`` per EVENT that looks its counter up by
class name: about a third of the router's time per publish at N=1 (see the
per-publish split of ``make bench``). What Broker does instead, for the
common case (:func:`covers`): :func:`dispatch_checked` does the same steps
synchronously, in crossbar's order and with crossbar's answers —

* the topic URI check (strict or loose, as the realm's ``uri_check``) and the
  ``wamp.`` restriction for every role but ``trusted``, with crossbar's
  ``wamp.error.invalid_uri`` errors and messages (:func:`uri_refusal`), asked
  once, before the publish is authorized or stored: by the position hook for a
  WAMP publish (:func:`broker.router.crossbar.publish.refuse_topic`, which
  leaves a refused one to crossbar), for every topic of an HTTP batch before
  its first event is stored; the dispatch does not ask again (the topic, the
  publisher's role and the realm's ``uri_check`` are what they were then);
* nothing to do when nobody listens and no acknowledgement is due;
* a publication id as ``util.id()`` draws it (uniform in [1, 2**53]), crossbar's disclosure rules
  (``disclose``, ``wamp.``/``crossbar.`` topics, ``forward_for``);
* the receivers of each matching subscription through crossbar's own
  ``_filter_publish_receivers`` (``eligible``/``exclude`` and their
  ``authid``/``authrole`` variants), ``exclude_me``;
* for a run of an HTTP batch, each topic matched once (:func:`matches`: what
  matching every event gives, since only an in-router component can change the
  subscriptions within the run, and its topics are matched every time);
* PUBLISHED before any EVENT (on a JSON transport already serialized, as
  autobahn would, without a JSON encoder made for it), one ``message.Event`` per subscription (the
  topic in it for a pattern subscription; its slots set as its constructor sets them, without
  re-asserting the types of what was validated when received: :func:`new_event`), sent to
  every receiver of that subscription as the same object;
* at most ``event_dispatching_chunk_size`` receivers per reactor turn, the
  rest in later turns (``txaio.call_later`` through the delivery tracker, so
  ``broker_deliveries_total`` and the latency stay right); a receiver that
  has vanished by its turn is skipped, and ``PayloadExceededError`` is logged
  for that receiver only;
* the router's message counters (``Router._message_stats["sent"]``).

Everything else takes crossbar's original: a traced router, traffic tracing,
an event store, ``retain``, an end-to-end encrypted payload, a realm with a
type inventory or an authorization with ``validate``, a refused
authorization, and all of it while ``extra.fast_path`` is false
(:func:`enable_fast_path`). Each EVENT goes out through ``Router.send``, which
:mod:`.frames` makes the fast write and the router's counters.
Tests: ``tests/test_fast_publish.py``, ``tests/test_fast_shortcuts.py`` (the chunk sender).
"""

from __future__ import annotations

from random import getrandbits as _getrandbits
from typing import Any, Final

from autobahn.exception import PayloadExceededError
from autobahn.wamp import message
from autobahn.wamp.message import _URI_PAT_LOOSE_NON_EMPTY, _URI_PAT_STRICT_NON_EMPTY
from autobahn.wamp.serializer import JsonObjectSerializer
from crossbar.router import broker as crossbar_broker
from crossbar.router.session import RouterApplicationSession
from twisted.logger import Logger

from broker.router.crossbar import frames

_log = Logger(namespace="broker.publish")
_state = {"on": True}
_EXACT: Final = message.Subscribe.MATCH_EXACT


def enable_fast_path(on: bool) -> None:
    """``extra.fast_path``: False sends every publish through crossbar's original dispatch."""
    _state["on"] = on


def enabled() -> bool:
    """Whether the fast dispatch is on (``extra.fast_path``)."""
    return _state["on"]


def covers(broker: Any, publish: Any, authorization: Any) -> bool:
    """Whether :func:`dispatch_checked` dispatches ``publish`` exactly as crossbar would (see the module)."""
    if not _state["on"] or type(authorization) is not dict or not authorization.get("allow"):
        return False
    router = broker._router
    return not (
        router._is_traced
        or router._trace_traffic
        or router._inventory
        or broker._event_store is not None
        or publish.retain
        or publish.payload is not None
        or authorization.get("validate") is not None
    )


def cached_authorization(router: Any, session: Any, topic: str) -> dict[str, Any] | None:
    """What ``Router.authorize`` would answer a publish from ``session`` to ``topic`` from its
    cache, without a Deferred (None: not cached, ask it)."""
    if not _state["on"] or session._authrole not in router._roles:
        return None
    return router._authorization_cache.get((session._realm, session._authrole, topic, "publish"))  # type: ignore[no-any-return]


def uri_refusal(broker: Any, session: Any, topic: str) -> str | None:
    """Why crossbar's ``processPublish`` refuses a publish of ``session`` to ``topic`` before it
    authorizes anything (its ``wamp.error.invalid_uri`` message), or None.

    The topic URI against the realm's ``uri_check`` (strict or loose), then
    ``wamp.`` for every role but ``trusted``.
    """
    strict = broker._option_uri_strict
    if not (_URI_PAT_STRICT_NON_EMPTY if strict else _URI_PAT_LOOSE_NON_EMPTY).match(topic):
        return f"publish with invalid topic URI '{topic}' (URI strict checking {strict})"
    if session._authrole is not None and session._authrole != "trusted" and topic.startswith("wamp."):
        return f"publish with restricted topic URI '{topic}'"
    return None


def _answer(router: Any, session: Any, reply: Any) -> None:
    router.send(session, reply)  # no correlation_* fields: only a traced router reads them


def _acknowledge(router: Any, session: Any, publish: Any, publication: int) -> None:
    reply = message.Published(publish.request, publication)
    serializer = getattr(getattr(session._transport, "_serializer", None), "_serializer", None)
    if type(serializer) is JsonObjectSerializer and not serializer._batched:
        # what autobahn's JSON serializer writes for it, without a JSON encoder made per message
        reply._serialized[serializer] = b"[%d,%d,%d]" % (
            message.Published.MESSAGE_TYPE,
            publish.request,
            publication,
        )
    _answer(router, session, reply)


def dispatch_checked(
    broker: Any,
    session: Any,
    publish: Any,
    authorization: dict[str, Any],
    matched: dict[str, list[Any]] | None = None,
    text: str | None = None,
) -> int:
    """Dispatch an authorized ``publish`` of ``session``, whose topic :func:`uri_refusal` passed,
    as crossbar's ``processPublish`` would: its publication id. Only for what :func:`covers`.

    ``matched``: the subscriptions already matched to each topic in this reactor turn
    (:func:`matches`), for a run of events dispatched one after the other. ``text``: what
    follows the details in the JSON frame of its EVENTs, already written
    (:func:`broker.history.eventtext.wire_tail`; :func:`new_event`).
    """
    subscriptions = None if matched is None else matches(broker, publish.topic, matched)
    return _dispatch(broker, broker._router, session, publish, authorization, subscriptions, text)


def matches(broker: Any, topic: str, matched: dict[str, list[Any]]) -> list[Any]:
    """The subscriptions matching ``topic`` (crossbar's ``match_observations``), matched once per
    topic of ``matched``, the cache of one run of events dispatched in one reactor turn.

    Why that is what matching each event would give: crossbar's subscription map only changes
    when a SUBSCRIBE or UNSUBSCRIBE is processed or a session leaves. A client's message is
    read in a reactor turn of its own, never inside the run; what changes it synchronously
    within the run is an in-router component (its transport crossbar's
    ``RouterApplicationSession``, which hands it each EVENT at once) reacting to an EVENT.
    So a topic one of whose receivers is an in-router component is matched anew every time
    and empties the cache (its EVENT may change the map for any topic). A subscription left or
    emptied within the run needs nothing: its receivers are read live when an event is sent
    (:func:`_dispatch`), and a session gone by then is skipped (:func:`_send_chunk`).
    """
    subscriptions = matched.get(topic)
    if subscriptions is None:
        subscriptions = broker._subscription_map.match_observations(topic)
        if any(
            isinstance(r._transport, RouterApplicationSession) for s in subscriptions for r in s.observers
        ):
            matched.clear()
        else:
            matched[topic] = subscriptions
    return subscriptions


def _dispatch(
    broker: Any,
    router: Any,
    session: Any,
    publish: Any,
    authorization: dict[str, Any],
    subscriptions: list[Any] | None = None,
    text: str | None = None,
) -> int:
    topic = publish.topic
    if subscriptions is None:
        subscriptions = broker._subscription_map.match_observations(topic)
    publication = _getrandbits(53) + 1  # util.id(): uniform in [1, 2**53], in one call
    if not subscriptions and not publish.acknowledge:
        return publication  # crossbar sends nothing either (the id is only the node's to report)
    publisher = publisher_authid = publisher_authrole = forward_for = None
    if authorization["disclose"] or topic.startswith(("wamp.", "crossbar.")):
        if publish.forward_for:
            first = publish.forward_for[0]
            publisher, publisher_authid, publisher_authrole = (
                first["session"],
                first["authid"],
                first["authrole"],
            )
            me = {"session": session._session_id, "authid": session._authid, "authrole": session._authrole}
            forward_for = [*publish.forward_for, me]
        else:
            publisher, publisher_authid, publisher_authrole = (
                session._session_id,
                session._authid,
                session._authrole,
            )
    me_also = publish.exclude_me is False
    filtered = (
        publish.eligible
        or publish.eligible_authid
        or publish.eligible_authrole
        or publish.exclude
        or publish.exclude_authid
        or publish.exclude_authrole
    )
    targets = []
    for subscription in subscriptions:
        receivers = subscription.observers
        if filtered:
            receivers = broker._filter_publish_receivers(receivers, publish)
        if len(receivers) - (1 if broker in receivers else 0):
            targets.append((subscription, receivers))
    if publish.acknowledge:
        _acknowledge(router, session, publish, publication)
    chunk_size = broker._options.event_dispatching_chunk_size
    internal = (session._session_id, session._authid, session._authrole)
    for subscription, receivers in targets:
        msg = new_event(
            subscription.id,
            publication,
            publish.args,
            publish.kwargs,
            publisher,
            publisher_authid,
            publisher_authrole,
            None if subscription.match == _EXACT else topic,
            publish.transaction_hash,
            forward_for,
            text,
        )
        msg._router_internal = internal  # crossbar's router links read it (the correlation_* only tracing)
        pending = [r for r in receivers if me_also or r != session]
        if pending:
            _send_chunk(router, msg, pending, chunk_size, subscription.id)
    return publication


#: Every slot of autobahn's ``message.Event`` (its own and its bases'), as autobahn 26.10 has them.
EVENT_SLOTS: Final = frozenset(
    {
        *("_from_fbs", "_serialized", "_router_internal"),
        *("_correlation_id", "_correlation_uri", "_correlation_is_anchor", "_correlation_is_last"),
        *("_args", "_kwargs", "_payload", "_enc_algo", "_enc_key", "_enc_serializer", "_forward_for"),
        *("_subscription", "_publication", "_publisher", "_publisher_authid", "_publisher_authrole"),
        *("_topic", "_retained", "_transaction_hash", "_x_acknowledged_delivery"),
    }
)
#: Whether the installed ``message.Event`` has exactly those slots (else its constructor is used).
_SLOTS_KNOWN: Final = EVENT_SLOTS == frozenset(
    slot for cls in message.Event.__mro__ for slot in getattr(cls, "__slots__", ())
)


def new_event(
    subscription: int,
    publication: int,
    args: Any,
    kwargs: Any,
    publisher: int | None,
    publisher_authid: str | None,
    publisher_authrole: str | None,
    topic: str | None,
    transaction_hash: str | None,
    forward_for: list[dict[str, Any]] | None,
    text: str | None = None,
) -> message.Event:
    """``message.Event(...)`` of these fields, every slot set as its constructor sets it, without
    the constructor's type assertions (what the router dispatches was validated when it was
    received: a PUBLISH by autobahn's parser, a node event by the HTTP gate); a third of the cost
    of dispatching an event of a batch. The constructor itself if ``message.Event``'s slots are
    not those of :data:`EVENT_SLOTS`. ``text``: the JSON that follows its details in a JSON
    frame (:func:`broker.history.eventtext.wire_tail` of ``args`` and ``kwargs``), kept for
    :mod:`.frames` under :data:`.frames.TAIL` in its ``_serialized`` (only with those slots,
    which :mod:`.frames` reads beside it)."""
    if not _SLOTS_KNOWN:
        return message.Event(
            subscription,
            publication,
            args=args,
            kwargs=kwargs,
            publisher=publisher,
            publisher_authid=publisher_authid,
            publisher_authrole=publisher_authrole,
            topic=topic,
            transaction_hash=transaction_hash,
            forward_for=forward_for,
        )
    msg = _NEW(_EVENT_CLASS)
    msg._from_fbs = msg._router_internal = None
    msg._serialized = {} if text is None else {frames.TAIL: text}
    msg._correlation_id = msg._correlation_uri = msg._correlation_is_anchor = msg._correlation_is_last = None
    msg._args, msg._kwargs, msg._forward_for = args, kwargs, forward_for
    msg._payload = msg._enc_algo = msg._enc_key = msg._enc_serializer = None
    msg._subscription, msg._publication = subscription, publication
    msg._publisher, msg._publisher_authid, msg._publisher_authrole = (
        publisher,
        publisher_authid,
        publisher_authrole,
    )
    msg._topic, msg._transaction_hash = topic, transaction_hash
    msg._retained = msg._x_acknowledged_delivery = None
    return msg


_EVENT_CLASS: Final = message.Event
_NEW: Final = object.__new__


def _send_chunk(router: Any, msg: Any, receivers: list[Any], chunk_size: int, subscription_id: int) -> None:
    """Send ``msg`` to the first ``chunk_size`` of ``receivers`` still there; the rest next turn."""
    chunk, rest = (receivers[:chunk_size], receivers[chunk_size:]) if chunk_size else (receivers, [])
    for receiver in chunk:
        if not (receiver._session_id and receiver._transport):
            continue  # vanished since it was matched
        try:
            router.send(receiver, msg)  # Broker's (:mod:`.frames`): the fast write, the counters
        except PayloadExceededError as error:
            _log.warn(
                "could not dispatch event to receiver {receiver} (subscription_id={subscription_id}, "
                "publication_id={publication_id}): {err}",
                receiver=receiver._session_id,
                subscription_id=subscription_id,
                publication_id=msg.publication,
                err=str(error),
            )
    if rest:
        # txaio as crossbar's broker module sees it: the delivery tracker's proxy follows the chunk
        crossbar_broker.txaio.call_later(0, _send_chunk, router, msg, rest, chunk_size, subscription_id)  # type: ignore[attr-defined]
