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
from typing import Any, Final, Protocol

from broker.core import signing
from broker.core.grants import Grants
from broker.core.idempotency import AnswerJournal, IdempotencyCache
from broker.core.protocol import MAX_JSON_NESTING, json_nesting_exceeds
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


@dataclass(frozen=True)
class Event:
    """One event to publish: ``data`` travels as the event's only argument."""

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
    """The events and idempotency key of a request body, or :class:`ClientError` (400).

    The body is held to the nesting limit of every WAMP message
    (:data:`broker.core.protocol.MAX_JSON_NESTING`) before it is decoded: deeper
    JSON would be refused over WebSocket, and thousands of levels make the
    decoder raise ``RecursionError``.
    """
    if json_nesting_exceeds(body):
        raise ClientError(f"body is JSON nested deeper than {MAX_JSON_NESTING} levels")
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ClientError(f"body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ClientError('body must be a JSON object: one event or {"events": [...]}')
    if "events" in doc:
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
    for i, raw in enumerate(raw_events):
        where = "" if "events" not in doc else f"events[{i}]: "
        if not isinstance(raw, dict):
            raise ClientError(f"{where}an event must be an object {{topic, data}}")
        unknown = sorted(set(raw) - {"topic", "data"})
        if unknown:
            raise ClientError(f"{where}unknown field {unknown[0]!r}")
        if "topic" not in raw:
            raise ClientError(f"{where}missing field 'topic'")
        events.append(Event(topic=raw["topic"], data=raw.get("data")))
    for i, event in enumerate(events):
        check_uri(event.topic, what=f"topic of events[{i}]" if "events" in doc else "topic")
    return tuple(events), key


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

    def admit(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Admitted:
        """Check one request (``headers`` keyed in lower case); raise the first error found."""
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
        key_id, nonce = self._authenticate(method, path, headers, body)
        events, idempotency_key = parse_body(body, self.settings.max_batch)
        for event in events:
            if not self.grants.allows(key_id, "publish", event.topic):
                raise NotAuthorized(f"publisher key {key_id!r} may not publish to {event.topic!r}")
        bucket = None if self.cluster_rate_limits else self.buckets.get(key_id)
        if bucket is not None:
            wait = bucket.take(len(events))
            if wait:
                raise RateLimited(f"publisher key {key_id!r} is over its rate limit", retry_after=wait)
        return Admitted(key_id, events, idempotency_key, hashlib.sha256(body).hexdigest(), nonce)

    def quota(self, admitted: Admitted) -> Quota | None:
        """What the cluster's bucket must give ``admitted`` (None: this gate took the tokens, or the
        key has no rate limit)."""
        key = self.publishers.get(admitted.key_id)
        limit = None if key is None else key.rate_limit
        if not self.cluster_rate_limits or limit is None:
            return None
        return Quota(limit.per_second, limit.burst, len(admitted.events))

    def nonce_ttl(self) -> float:
        """How long (s) a nonce claimed beyond this node must be kept: a timestamp up to one
        window ahead of now is accepted, and stays acceptable one window after it."""
        return 2 * self.nonces.window

    def _authenticate(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[str, str]:
        """The key id and nonce of a correctly signed request not yet seen by this node."""
        key_id = _header(headers, signing.HEADER_KEY)
        timestamp = _header(headers, signing.HEADER_TIMESTAMP)
        nonce = _header(headers, signing.HEADER_NONCE)
        claimed = _header(headers, signing.HEADER_SIGNATURE)
        key = self.publishers.get(key_id)
        if key is None:
            raise Unauthenticated(f"unknown publisher key {key_id[:64]!r}")
        if not timestamp.isdigit():
            raise Unauthenticated(f"{signing.HEADER_TIMESTAMP} must be integer Unix seconds")
        if not signing.verify(key.secret, key_id, method, path, timestamp, nonce, body, claimed):
            raise Unauthenticated("signature does not match (docs/http-publish.md gives the canonical form)")
        self.nonces.check_timestamp(int(timestamp))
        self.nonces.remember(key_id, nonce, int(timestamp))
        return key_id, nonce
