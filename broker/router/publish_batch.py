"""One HTTP publish request's events: checked, appended in one call, delivered, answered.

Why a module of its own: this is the part of ``POST /api/publish`` that
runs per event (:func:`publish_all`), apart from the request handling of
:mod:`broker.router.publish_api`; and its answer lists every event, so it is
encoded here too (:class:`PublishedBody`): ``json.dumps`` of a batch of 100
events' ids and positions was ~5% of the router's time per batch, where one
string template per event, checked to give the same bytes, takes a fifth of it.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from json.encoder import encode_basestring_ascii
from time import perf_counter
from typing import Any, Final

from autobahn.wamp.exception import ApplicationError
from twisted.logger import Logger
from twisted.python.failure import Failure

from broker.core.idempotency import Answer
from broker.core.publishing import Event, wire_bound
from broker.errors import (
    BrokerError,
    HistoryUnanswered,
    IdempotencyMismatch,
    InvalidUri,
    NotReady,
    PayloadTooLarge,
    RateLimited,
    Replayed,
)
from broker.history import POSITION_KEY, Once, Retention, new_event
from broker.history.eventtext import args_json, wire_tail
from broker.history.recovery import check_deliverable
from broker.router.delivery import LocalDelivery, Outgoing
from broker.router.positions import HISTORY_UNAVAILABLE, STOPPING, refusal, retention_of
from broker.router.publish_admit import Admission, first
from broker.router.state import STATE

_log = Logger(namespace="broker.publish_api")

#: What a 503 for an append that may have been stored adds to the engine's message.
RETRY_ONCE = (
    "retry with the same Idempotency-Key to publish it at most once "
    "(without one, a retry may publish it twice)"
)
#: A position's keys, in the order :meth:`broker.history.StoredEvent.position` makes them.
_POSITION_FIELDS: Final = ("epoch", "seq", "cursor")


class PublishedBody(dict[str, Any]):
    """The body of a 200 answer, ``{"published": [{"topic", "id", "position"}, ...]}``, a plain
    dict to everything that reads it (the idempotency cache, its journal), with its JSON
    (``json.dumps(self).encode()``, byte for byte) made once, as :meth:`encoded`."""

    __slots__ = ("_encoded",)

    def __init__(self, published: list[dict[str, Any]], encoded: bytes | None) -> None:
        super().__init__(published=published)
        self._encoded = encoded

    def encoded(self) -> bytes:
        """``json.dumps(self).encode()``: made from the template, or by ``json.dumps`` if an entry
        is not of the shape it covers."""
        if self._encoded is None:
            self._encoded = json.dumps(self).encode()
        return self._encoded


def published_body(
    topics: Sequence[str], ids: Sequence[int], positions: Sequence[dict[str, Any] | None]
) -> PublishedBody:
    """The 200 answer's body for events of ``topics`` published with ``ids`` at ``positions``.

    Its JSON is that of ``json.dumps`` (ASCII, ``", "`` and ``": "``): each string
    quoted once (:func:`json.encoder.encode_basestring_ascii`, what ``json.dumps`` quotes
    with), an integer written as ``int.__repr__``; an id that is no ``int`` or a position
    of any other shape than ``{"epoch": str, "seq": int, "cursor": int}`` leaves the body
    to ``json.dumps``.
    """
    published = []
    texts: list[str] | None = []
    quoted: dict[str, str] = {}
    for topic, id_, position in zip(topics, ids, positions, strict=True):
        published.append({"topic": topic, "id": id_, "position": position})
        if texts is None:
            continue
        name = quoted.get(topic) or quoted.setdefault(topic, encode_basestring_ascii(topic))
        if type(id_) is not int:
            texts = None
        elif position is None:
            texts.append(f'{{"topic": {name}, "id": {id_}, "position": null}}')
        elif (
            type(position) is dict
            and tuple(position) == _POSITION_FIELDS
            and type(epoch := position["epoch"]) is str
            and type(seq := position["seq"]) is int
            and type(cursor := position["cursor"]) is int
        ):
            epoch = quoted.get(epoch) or quoted.setdefault(epoch, encode_basestring_ascii(epoch))
            texts.append(
                f'{{"topic": {name}, "id": {id_}, '
                f'"position": {{"epoch": {epoch}, "seq": {seq}, "cursor": {cursor}}}}}'
            )
        else:
            texts = None
    encoded = None if texts is None else f'{{"published": [{", ".join(texts)}]}}'.encode()
    return PublishedBody(published, encoded)


async def publish_all(
    delivery: LocalDelivery,
    events: tuple[Event, ...],
    once: Once | None = None,
    text_bytes: int = 0,
    admission: Admission | None = None,
) -> tuple[Answer, bool]:
    """Store ``events`` in one append, deliver them in order; the 200 answer lists ids and positions.

    Refused whole, before anything is stored: a topic crossbar would refuse (``InvalidUri``:
    the realm's ``uri_check`` may be stricter than the gate's loose rule), an event too large to deliver
    (``PayloadTooLarge``; events decoded from ``text_bytes`` bytes of JSON whose
    :func:`~broker.core.publishing.wire_bound` fits the message limit all fit, unmeasured),
    a node that is stopping or a history engine that
    fails (``ApplicationError``: ``history_unavailable`` is answered 503 with ``Retry-After``,
    the others 502 with their URI). A 503's message says whether the batch was stored: not,
    for certain, or perhaps (the engine was asked and did not answer in time:
    :data:`RETRY_ONCE`). With ``once`` a shared engine appends the batch at most once per
    idempotency scope on the whole cluster: a scope some node already published under is
    delivered nothing here and answered with the positions stored then and ``id`` null (the
    ids are the first node's); the second value says so (a replay). A reused key with
    another body is ``IdempotencyMismatch``. An ``admission`` still pending is taken with the
    append (:mod:`broker.router.publish_admit`), or alone before a refusal or without one.
    """
    store = STATE.history
    # on a cluster node every event but a reserved topic's is appended, those without history
    # unpositioned (NO_HISTORY), so the other nodes deliver the batch in its order
    by_topic: dict[str, Retention | None] = {}
    retentions = []
    for event in events:
        topic = event.topic
        if topic not in by_topic:
            by_topic[topic] = retention_of(topic)
        retentions.append(by_topic[topic])
    reason = delivery.refusal(by_topic)  # a realm's strict uri_check: refused, not stored
    if reason is not None:
        await first(admission)
        raise InvalidUri(reason)
    epoch = store.epoch if store is not None else None
    epochs = {None if r is None or r.max_events <= 0 else epoch for r in retentions}
    if events and not _all_fit(events, text_bytes, epochs):
        try:
            for event, retention in zip(events, retentions, strict=True):
                positioned = retention is not None and retention.max_events > 0
                _check_deliverable(event, epoch if positioned else None)
        except BrokerError:
            await first(admission)
            raise
    received = perf_counter()  # the start of broker_delivery_latency_seconds
    # each event's [data] written to JSON once, for the store's text and its EVENT frames
    texts = [args_json([e.data]) for e in events]
    batch = [
        new_event(e.topic, [e.data], {}, r, text)
        for e, r, text in zip(events, retentions, texts, strict=True)
        if r is not None
    ]
    positions: list[dict[str, Any] | None] = []
    replayed = False
    if batch or (once is not None and store is not None and store.shared):
        if STATE.stopping or store is None:
            await first(admission)
            raise ApplicationError(NotReady.wamp_uri, STOPPING)
        try:
            if admission is None or admission.done:
                appended = await store.append(batch, once)
            else:
                appended = await admission.append(store, batch, once)
        except (IdempotencyMismatch, Replayed, RateLimited):
            raise
        except HistoryUnanswered as error:  # sent, not answered: it may have been stored
            _log.warn("refusing a batch of {count}: {error}", count=len(batch), error=str(error))
            raise ApplicationError(HISTORY_UNAVAILABLE, f"{error}; {RETRY_ONCE}") from None
        except Exception:  # not stored (the engine's own errors vary; any of them means that)
            raise ApplicationError(
                HISTORY_UNAVAILABLE, refusal(Failure(), batch[0].topic if batch else "")
            ) from None
        positions, replayed = appended.positions(), appended.replayed
    else:  # nothing to append: the nonce and tokens alone
        await first(admission)
    if len(positions) == len(events):  # every event was appended (the common case)
        found = positions
    else:
        issued = iter(positions)
        found = [next(issued) if r is not None else None for r in retentions]
    if replayed:  # published once already, by some node: delivered from there, not again
        again = [{"topic": e.topic, "id": None, "position": p} for e, p in zip(events, found, strict=True)]
        return (200, {"published": again}), True
    out = []
    for e, p, text in zip(events, found, texts, strict=True):
        args, kwargs = [e.data], {} if p is None else {POSITION_KEY: p}
        out.append(Outgoing(e.topic, args, kwargs, None if text is None else wire_tail(args, text, kwargs)))
    ids = delivery.deliver(out, received, checked=True)  # every topic passed refusal() above
    return (200, published_body([e.topic for e in events], ids, found)), False


def _all_fit(events: tuple[Event, ...], text_bytes: int, epochs: set[str | None]) -> bool:
    """Whether every event surely fits the message limit with any of ``epochs``, unmeasured.

    An empty event must fit with :func:`wire_bound` to spare: of the ``text_bytes`` of JSON
    the events' topics and data were decoded from (0: not known,
    :func:`~broker.core.publishing.events_text`), else of all events' JSON text
    (``[topic, data]`` each, in one C call), else of the longest event's.
    """
    limit = STATE.message_limit
    if limit is None:
        return True
    need = max(_empty_needs(epoch) for epoch in epochs)
    if text_bytes and limit - wire_bound(text_bytes) >= need:  # the common case, nothing encoded
        return True
    texts: list[Callable[[], int]] = [
        lambda: len(json.dumps([[e.topic, e.data] for e in events])),
        lambda: max(len(json.dumps([e.topic, e.data])) for e in events),
    ]
    return any(limit - wire_bound(text()) >= need for text in texts)


@functools.lru_cache(maxsize=8)
def _empty_needs(epoch: str | None) -> int:
    """The smallest limit an empty event (``""``, no data) fits with ``epoch``, by
    :func:`check_deliverable`: found once per epoch by bisection (what it refuses at one
    limit it refuses at every smaller one: the sizes it compares do not depend on the limit)."""
    low, high = 0, 1 << 20  # refused at low - 1 (nothing fits a negative limit), fits at high
    while low < high:
        middle = (low + high) // 2
        try:
            check_deliverable("", [], {}, epoch, middle)
        except PayloadTooLarge:
            low = middle + 1
        else:
            high = middle
    return low


def _check_deliverable(event: Event, epoch: str | None) -> None:
    """The position hook's size rule, applied before anything is stored (raises ``PayloadTooLarge``)."""
    check_deliverable(event.topic, [event.data], {}, epoch, STATE.message_limit)
