"""The HTTP publish API's rules, checked in order, without Twisted.

``POST /api/publish`` takes one event ``{"topic", "data", "idempotency_key"?}``
or a batch ``{"events": [{"topic", "data"}, ...], "idempotency_key"?}``.
:meth:`PublishGate.admit` decides, cheapest and least revealing checks first:
method (405), Origin (403: no browser may publish, there is no CORS), content
type (415), size (413), signature and timestamp (401), nonce (409), body
shape and JSON nesting (400), topic URIs (400 ``wamp.error.invalid_uri``), topic grants (403)
and the key's rate limit (429). The router adapter
(:mod:`broker.router.publish_api`) publishes what it admits.

The replay memory and the idempotency answers outlive a restart through a
:class:`Journals` (:mod:`broker.engines.publish_memory`; the node always has
one, whatever its history store); a gate without one, or with a new one,
refuses requests signed before its memory began.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, NamedTuple, Protocol

from broker.core import signing
from broker.core.grants import Grants
from broker.core.idempotency import AnswerJournal, IdempotencyCache
from broker.core.protocol import (
    MAX_JSON_NESTING,
    json_nesting_exceeds,
    lone_surrogate,
    must_walk,
    unsendable,
)
from broker.core.publishers import HttpPublishSettings, PublisherKey
from broker.core.ratelimit import Quota, TokenBucket
from broker.core.replay import NonceCache, NonceJournal
from broker.core.uris import check_uri
from broker.errors import (
    ClientError,
    MethodNotAllowed,
    NotAuthorized,
    PayloadTooLarge,
    RateLimited,
    Unauthenticated,
    UnsupportedMediaType,
)

PUBLISH_PATH: Final = "/api/publish"
_EVENT_KEYS: Final = frozenset({"topic", "data", "idempotency_key"})
_BATCH_KEYS: Final = frozenset({"events", "idempotency_key"})
_FIELDS: Final = frozenset({"topic", "data"})
#: :func:`wire_bound`'s factor: wire bytes per byte of JSON text, at most.
WIRE_PER_TEXT_BYTE: Final = 5


class Event(NamedTuple):
    """One event to publish: ``data`` travels as the event's only argument (a named tuple: made
    once per event of every batch, at half a frozen dataclass's cost)."""

    topic: str
    data: Any


@dataclass(frozen=True)
class Admitted:
    """A request that passed every check."""

    key_id: str
    events: tuple[Event, ...]
    idempotency_key: str | None
    #: SHA-256 of the body, to tell a true repeat from a reused key.
    fingerprint: str
    #: the signed request's nonce, for a cluster-wide claim (see :meth:`PublishGate.nonce_ttl`)
    nonce: str = ""
    #: at most how many bytes of the body's JSON text the events' topics and data came from
    #: (:func:`events_text`), for :func:`wire_bound` (0: unknown, every event is measured)
    text_bytes: int = 0

    @property
    def scope(self) -> tuple[str, str] | None:
        """The idempotency cache key, or None without an idempotency key."""
        return None if self.idempotency_key is None else (self.key_id, self.idempotency_key)


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name.lower())
    if value is None:
        raise Unauthenticated(f"missing {name} header (see docs/http-publish.md for signing)")
    return value


def parse_body(body: bytes, max_batch: int) -> tuple[tuple[Event, ...], str | None]:
    """The events and idempotency key of a request body, or :class:`ClientError` (400)
    (:func:`parse_events`, without its count of events with data)."""
    events, key, _ = parse_events(body, max_batch)
    return events, key


def parse_events(body: bytes, max_batch: int) -> tuple[tuple[Event, ...], str | None, int]:
    """The events, idempotency key and how many events have a ``data`` field, of a request
    body, or :class:`ClientError` (400).

    The body is held to the nesting limit of every WAMP message
    (:data:`broker.core.protocol.MAX_JSON_NESTING`) before it is decoded: deeper
    JSON would be refused over WebSocket, and thousands of levels make the
    decoder raise ``RecursionError``. A batch's checks run once per distinct
    topic (the errors name the first event that fails, as event by event would).
    """
    doc = _decode(body)
    if not isinstance(doc, dict):
        raise ClientError('body must be a JSON object: one event or {"events": [...]}')
    batch = "events" in doc
    if batch:
        extra = sorted(set(doc) - _BATCH_KEYS)
        raw_events = doc["events"]
        if not isinstance(raw_events, list) or not 1 <= len(raw_events) <= max_batch:
            raise ClientError(f"events must be a list of 1 to {max_batch} events")
    else:
        extra = sorted(set(doc) - _EVENT_KEYS)
        raw_events = [{k: v for k, v in doc.items() if k != "idempotency_key"}]
    if extra:
        raise ClientError(f"unknown field {extra[0]!r}")
    key = doc.get("idempotency_key")
    if key is not None and (not isinstance(key, str) or not 1 <= len(key) <= 200):
        raise ClientError("idempotency_key must be a string of 1 to 200 characters")
    events = []
    with_data = 0
    for i, raw in enumerate(raw_events):
        if type(raw) is dict and raw.keys() <= _FIELDS and "topic" in raw:  # the common case
            events.append(Event(raw["topic"], raw.get("data")))
            with_data += len(raw) - 1
            continue
        where = f"events[{i}]: " if batch else ""
        if not isinstance(raw, dict):
            raise ClientError(f"{where}an event must be an object {{topic, data}}")
        unknown = sorted(set(raw) - _FIELDS)
        if unknown:
            raise ClientError(f"{where}unknown field {unknown[0]!r}")
        if "topic" not in raw:
            raise ClientError(f"{where}missing field 'topic'")
        events.append(Event(raw["topic"], raw.get("data")))
        with_data += "data" in raw
    checked: set[str] = set()
    for i, event in enumerate(events):
        topic = event.topic
        if type(topic) is not str or topic not in checked:
            check_uri(topic, what=f"topic of events[{i}]" if batch else "topic")
            checked.add(topic)
    return tuple(events), key, with_data


def _decode(body: bytes) -> Any:
    """The JSON document of ``body`` if it nests no deeper than the limit, else :class:`ClientError`.

    The nesting is that of :func:`~broker.core.protocol.json_nesting_exceeds`
    (brackets outside strings), decided at C speed for most bodies: one with
    few brackets cannot be too deep; otherwise the decoded document's
    containers are walked (for valid JSON they are those brackets), and a
    body that does not decode is scanned, so its error is the same as if it
    had been scanned first.
    """
    few = body.count(b"[") + body.count(b"{") <= MAX_JSON_NESTING
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        if not few and json_nesting_exceeds(body):
            raise ClientError(f"body is JSON nested deeper than {MAX_JSON_NESTING} levels") from None
        raise ClientError(f"body is not valid JSON: {exc}") from None
    if not few and _deeper_than(doc, MAX_JSON_NESTING):
        raise ClientError(f"body is JSON nested deeper than {MAX_JSON_NESTING} levels")
    problem = lone_surrogate(body, doc)
    if problem is None and must_walk(body, "json"):
        problem = unsendable(doc)
    if problem is not None:
        raise ClientError(f"body is not valid: {problem}")
    return doc


def _deeper_than(doc: Any, limit: int) -> bool:
    """Whether decoded JSON nests objects and arrays more than ``limit`` deep (no recursion).

    One level at a time, each the containers inside the one before, gathered by one
    comprehension (a third less time than a stack of pushes and pops, for a batch's events).
    """
    level = [doc] if type(doc) is dict or type(doc) is list else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        level = [
            value
            for node in level
            for value in (node.values() if type(node) is dict else node)
            if type(value) is dict or type(value) is list
        ]
    return False


def events_text(body_bytes: int, count: int, with_data: int = 0) -> int:
    """At most how many bytes of a parsed body of ``body_bytes`` its ``count`` events' topics and
    data take as JSON text, plus one byte per event without ``data`` (so that :func:`wire_bound`
    covers an absent ``data``, a null of 5 bytes on the wire).

    What :func:`parse_body` accepted has, besides those texts, at least ``{"topic":}`` (10 bytes)
    around each event, ``,"data":`` (8) more in each of the ``with_data`` events that have one
    (at most ``count``) and, for more than one, ``{"events":[]}`` (13) and the commas between
    them.
    """
    structure = 9 * count + 9 * min(with_data, count) + (13 + count - 1 if count > 1 else 0)
    return max(body_bytes - structure, 0)


def wire_bound(text_bytes: int) -> int:
    """An upper bound on :func:`broker.history.wiresize.wire_size` of every value (and of the
    sum of all values) decoded from disjoint parts of ``text_bytes`` bytes of JSON text.

    :data:`WIRE_PER_TEXT_BYTE` times the text: per node of a decoded value the
    largest encoding is at most five times the node's own text. A float's
    text has at least 3 characters and takes at most 9 or its ``repr``,
    which outgrows the text the most for ``1e15`` (``1000000000000000.0``, 18
    of 4, 4.5 times); ``true``/``null`` take 5 of 4; a string's quoted form
    never exceeds its text (an escape decodes to no more than it took), and
    its raw bytes plus a binary header exceed it only beyond 255 bytes, by
    at most 7; an integer takes its digits, at most 9 for up to 19 of them;
    a container's punctuation never exceeds its text. Text only adds
    (whitespace, escapes, repeated keys), and any JSON text that decodes to
    the value will do (``json.dumps`` of it, say). So a body whose bound fits
    a limit needs no event measured.
    """
    return WIRE_PER_TEXT_BYTE * text_bytes


class Journals(Protocol):
    """Durable storage for the gate's replay memory and idempotency answers."""

    @property
    def nonces(self) -> NonceJournal:
        """Where accepted nonces are written."""

    @property
    def answers(self) -> AnswerJournal:
        """Where idempotency keys and their answers are written."""


class PublishGate:
    """Admits or refuses publish requests; holds the replay, idempotency and rate state.

    Without ``journals`` nothing survives the process, so requests signed
    before the gate was created are refused (they could be replays). With
    ``cluster_rate_limits`` (a history engine shared by several nodes) the
    gate takes no tokens itself: the engine keeps one bucket per key for the
    cluster (:meth:`quota`), and a bucket of this node's could refuse what the
    cluster's would accept.
    """

    def __init__(
        self,
        settings: HttpPublishSettings,
        publishers: Mapping[str, PublisherKey],
        journals: Journals | None = None,
        clock: Callable[[], float] = time.time,
        cluster_rate_limits: bool = False,
    ) -> None:
        self.cluster_rate_limits = cluster_rate_limits
        self.settings = settings
        self.publishers = publishers
        self.grants = Grants({key_id: key.topics for key_id, key in publishers.items()})
        self.nonces = NonceCache(
            settings.timestamp_window,
            settings.nonce_capacity,
            clock,
            journal=None if journals is None else journals.nonces,
            # timestamps are whole seconds: this one's start may be signed now, but no earlier
            # process can have accepted a request in it (a node takes longer to start)
            not_before=math.floor(clock()),
        )
        self.idempotency = IdempotencyCache(
            settings.idempotency_window,
            settings.idempotency_capacity,
            clock,
            journal=None if journals is None else journals.answers,
        )
        self.buckets = {
            key_id: TokenBucket(key.rate_limit.per_second, key.rate_limit.burst, clock)
            for key_id, key in publishers.items()
            if key.rate_limit is not None
        }

    def reconfigure(self, settings: HttpPublishSettings, publishers: Mapping[str, PublisherKey]) -> None:
        """Take over new limits and keys (a live reload), keeping what the gate remembers.

        The replay memory (nonces) and the idempotency cache survive, so a
        request accepted before the reload cannot be replayed after it, and a
        key whose rate limit is unchanged keeps its bucket (its current fill).
        """
        self.settings = settings
        self.publishers = publishers
        self.grants = Grants({key_id: key.topics for key_id, key in publishers.items()})
        self.nonces.window, self.nonces.capacity = settings.timestamp_window, settings.nonce_capacity
        self.idempotency.window = settings.idempotency_window
        self.idempotency.capacity = settings.idempotency_capacity
        old = self.buckets
        self.buckets = {}
        for key_id, key in publishers.items():
            if key.rate_limit is None:
                continue
            bucket = old.get(key_id)
            rate, burst = key.rate_limit.per_second, key.rate_limit.burst
            if bucket is None or (bucket.rate, bucket.burst) != (rate, burst):
                bucket = TokenBucket(rate, burst, self.nonces.clock)
            self.buckets[key_id] = bucket

    def admit(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes, hold_nonce: bool = False
    ) -> Admitted:
        """Check one request (``headers`` keyed in lower case); raise the first error found.

        Its nonce is on disk when this returns, or with ``hold_nonce`` when
        :meth:`commit_nonces` next returns: the request must not go on before."""
        if method != "POST":
            raise MethodNotAllowed(f"{method} is not allowed on {PUBLISH_PATH}: use POST")
        if "origin" in headers:
            raise NotAuthorized("browsers may not publish: requests with an Origin header are refused")
        media_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type != "application/json":
            got = repr(media_type) if media_type else "missing"
            raise UnsupportedMediaType(f"Content-Type must be application/json, not {got}")
        limit = self.settings.max_body_bytes
        if len(body) > limit:
            raise PayloadTooLarge(f"body of {len(body)} bytes is over the limit of {limit}")
        key_id, nonce, fingerprint = self._authenticate(method, path, headers, body, hold_nonce)
        events, idempotency_key, with_data = parse_events(body, self.settings.max_batch)
        allowed: set[str] = set()
        for event in events:
            if event.topic not in allowed:
                if not self.grants.allows(key_id, "publish", event.topic):
                    raise NotAuthorized(f"publisher key {key_id!r} may not publish to {event.topic!r}")
                allowed.add(event.topic)
        bucket = None if self.cluster_rate_limits else self.buckets.get(key_id)
        if bucket is not None:
            wait = bucket.take(len(events))
            if wait:
                raise RateLimited(f"publisher key {key_id!r} is over its rate limit", retry_after=wait)
        text = events_text(len(body), len(events), with_data)
        return Admitted(key_id, events, idempotency_key, fingerprint, nonce, text)

    def quota(self, admitted: Admitted) -> Quota | None:
        """What the cluster's bucket must give ``admitted`` (None: this gate took the tokens, or the
        key has no rate limit)."""
        key = self.publishers.get(admitted.key_id)
        limit = None if key is None else key.rate_limit
        if not self.cluster_rate_limits or limit is None:
            return None
        return Quota(limit.per_second, limit.burst, len(admitted.events))

    def commit_nonces(self) -> None:
        """Write the nonces :meth:`admit` held to the journal, in one write (its error propagates)."""
        self.nonces.commit()

    def settle_nonce(self, admitted: Admitted, claimed: bool) -> None:
        """The held nonce of ``admitted`` claimed by the shared engine, or else written now
        (:meth:`broker.core.replay.NonceCache.settle`)."""
        self.nonces.settle(admitted.key_id, admitted.nonce, claimed)

    def nonce_ttl(self) -> float:
        """How long (s) a nonce claimed beyond this node must be kept: a timestamp up to one
        window ahead of now is accepted, and stays acceptable one window after it."""
        return 2 * self.nonces.window

    def _authenticate(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes, hold: bool = False
    ) -> tuple[str, str, str]:
        """The key id, nonce and body SHA-256 (hex) of a correctly signed request not yet seen
        by this node."""
        key_id = _header(headers, signing.HEADER_KEY)
        timestamp = _header(headers, signing.HEADER_TIMESTAMP)
        nonce = _header(headers, signing.HEADER_NONCE)
        claimed = _header(headers, signing.HEADER_SIGNATURE)
        key = self.publishers.get(key_id)
        if key is None:
            raise Unauthenticated(f"unknown publisher key {key_id[:64]!r}")
        if not timestamp.isdigit():
            raise Unauthenticated(f"{signing.HEADER_TIMESTAMP} must be integer Unix seconds")
        body_sha256 = hashlib.sha256(body).hexdigest()
        if not signing.verify(key.secret, key_id, method, path, timestamp, nonce, body, claimed, body_sha256):
            raise Unauthenticated("signature does not match (docs/http-publish.md gives the canonical form)")
        self.nonces.check_timestamp(int(timestamp))
        self.nonces.remember(key_id, nonce, int(timestamp), hold)
        return key_id, nonce, body_sha256
