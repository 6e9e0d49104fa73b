"""``GET /sse``: Server-Sent Events, resumable by the browser itself (docs/sse.md).

Why in the router process: every event that reaches this node's WAMP
subscribers passes through :func:`broker.router.crossbar.publish.dispatch` (WAMP
publishes) or :func:`~broker.router.crossbar.publish.deliver` (the HTTP API's batches,
and on a cluster the engine's feed of other nodes' events), and :data:`HUB` taps them
there, so a stream sees exactly what a WAMP subscriber on this node sees, cluster-wide
included. A stream
subscribes live first, then reads history (the engine's snapshot read, as
``broker.recover`` does) from the position the browser's ``Last-Event-ID``
(or ``?since=``) names, and releases the live events it held past the last
replayed cursor (:class:`broker.core.sse.LiveGate`): gapless, no duplicates.

Everything is refused before the stream starts, as JSON with the error's URI
and status (:mod:`broker.errors`): a foreign ``Origin`` (403, counted
``ForeignOrigin``), a bad request (400), a bad token (401), a topic the
caller may not subscribe to (403). Then: keep-alive comments, the end at a
token's ``exp + leeway``, the slow-subscriber bound WebSockets have, and the
``broker_sse_*`` series on ``/metrics``.
"""

from __future__ import annotations

import json
import time
from typing import Any, Final, cast

from prometheus_client import Counter, Gauge
from twisted.internet import defer, reactor, task
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from broker.core import sse
from broker.core.backpressure import slow_subscriber
from broker.core.grants import Grants
from broker.core.tokens import USER_ROLE, verify
from broker.core.uris import is_reserved
from broker.errors import (
    BrokerError,
    ConfigError,
    InvalidToken,
    MethodNotAllowed,
    NotAuthorized,
    NotReady,
    TokenExpired,
)
from broker.history import POSITION_KEY, HistoryStore
from broker.history.recovery import MAX_EVENTS, answer, recovery_outcome
from broker.router import metrics
from broker.router.counters import REGISTRY
from broker.router.crossbar import backpressure, cors
from broker.router.crossbar import publish as crossbar_publish
from broker.router.crossbar.context import Clock
from broker.router.positions import HISTORY_UNAVAILABLE
from broker.router.state import STATE

_log = Logger(namespace="broker.sse")

#: Why a stream ended (``broker_sse_closes_total{reason}``).
CLIENT, SLOW, EXPIRED, UNAVAILABLE, GAP = (
    "client",
    "slow",
    "token_expired",
    "history_unavailable",
    "delivery_gap",
)
#: The slow-subscriber limit before the node's settings are known (the shipped one).
DEFAULT_MAX_BUFFER: Final = 1048576

CONNECTIONS = Gauge("broker_sse_connections", "Server-Sent Events streams open now.", registry=REGISTRY)
EVENTS = Counter(
    "broker_sse_events",
    "Events written to Server-Sent Events streams, by kind: replayed (from history) or live.",
    ["kind"],
    registry=REGISTRY,
)
CLOSES = Counter(
    "broker_sse_closes",
    "Server-Sent Events streams ended, by reason: client, slow, token_expired, history_unavailable, "
    "delivery_gap.",
    ["reason"],
    registry=REGISTRY,
)


class Stream:
    """One open ``GET /sse`` response: its subscriptions, held live events, keep-alive and end."""

    def __init__(self, request: Request, wanted: sse.StreamRequest, keepalive: float) -> None:
        self.request = request
        self.wanted = wanted
        self.gate: sse.LiveGate[bytes] = sse.LiveGate()
        self.closed = False
        self._timers: list[Any] = []
        self._keepalive = task.LoopingCall(self._write, sse.KEEPALIVE)
        self._keepalive_seconds = keepalive

    def start(self, ends_at: float | None) -> None:
        """Send the headers and ``retry:``, hold live events, then replay (see :meth:`replay`)."""
        CONNECTIONS.inc()
        HUB.add(self)
        self.request.notifyFinish().addBoth(lambda _: self.close(CLIENT))
        self._write(f"retry: {sse.RETRY_MS}\n\n".encode())
        self._keepalive.start(self._keepalive_seconds, now=False)
        if ends_at is not None:
            message = "the token expired: reconnect with a fresh one"
            ending = sse.frame(sse.CLOSED, {"error": TokenExpired.wamp_uri, "message": message})
            delay = max(0.0, ends_at - time.time())
            self._timers.append(cast(Clock, reactor).callLater(delay, self._end, EXPIRED, ending))

    async def replay(self, store: HistoryStore) -> None:
        """Replay what the stream's position missed, or say ``unrecoverable``; then ``ready``, live."""
        since = self.wanted.since
        epoch, after = since if since is not None else ("", 0)
        while not self.closed:
            wanted = MAX_EVENTS + 1 if since is not None else 0
            snapshot = await store.read(self.wanted.wants, after, wanted)
            if since is None:
                metrics.count_recovery("position")
                self.go_live(snapshot.epoch, snapshot.cursor)
                return
            page = answer(snapshot, epoch, after)
            metrics.count_recovery(recovery_outcome(epoch, page))  # as broker.recover counts, per page
            if page["unrecoverable"]:
                reason = {"reason": page["reason"], "epoch": page["epoch"], "cursor": page["cursor"]}
                self._write(sse.frame(sse.UNRECOVERABLE, reason, sse.event_id(page["epoch"], page["cursor"])))
                self.go_live(page["epoch"], page["cursor"])
                return
            for entry in page["events"]:
                cursor = entry["position"]["cursor"]
                EVENTS.labels("replayed").inc()
                self._write(sse.frame(sse.EVENT, entry, sse.event_id(epoch, cursor)))
                after = cursor
            if not page["more"]:
                self.go_live(page["epoch"], page["cursor"])
                return

    def go_live(self, epoch: str, cursor: int) -> None:
        """The replay covered everything up to ``cursor``: say ``ready``, release the held events."""
        if self.closed:
            return
        self._write(sse.frame(sse.READY, {"epoch": epoch, "cursor": cursor}, sse.event_id(epoch, cursor)))
        for held in self.gate.open(cursor):
            EVENTS.labels("live").inc()
            self._write(held)

    def live(self, cursor: int | None, data: bytes) -> None:
        """A live event for this stream: sent now, or held until the replay is done."""
        for out in self.gate.live(cursor, data, len(data)):
            EVENTS.labels("live").inc()
            self._write(out)
        limit = backpressure_limit()
        if self.gate.held_bytes > limit:  # held while the replay is read: the same bound
            self._let_go(slow_subscriber(self.gate.held_bytes, limit) or "")

    def _write(self, data: bytes) -> None:
        if self.closed:
            return
        self.request.write(data)
        reason = backpressure.slow_stream(self.request.transport, backpressure_limit())
        if reason is not None:
            self._let_go(reason)

    def _let_go(self, reason: str) -> None:
        """Drop a slow stream's connection now, freeing what waits for it; counted and logged once."""
        if self.closed:
            return
        _log.warn(
            "closing SSE stream of {peer}: {reason}", peer=self.request.getClientAddress(), reason=reason
        )
        STATE.count_rejection("SlowSubscriber")
        self._end(SLOW, None, abort=True)

    def _end(self, reason: str, last: bytes | None, abort: bool = False) -> None:
        """End the response (after ``last``, if any), counted under ``reason``."""
        if self.closed:
            return
        if last is not None:
            self.request.write(last)
        self.close(reason)
        transport = self.request.transport
        if abort and transport is not None:
            transport.abortConnection()
        elif not self.request.finished:
            self.request.finish()

    def close(self, reason: str) -> None:
        """Forget the stream (its client left, or :meth:`_end`), counted once under ``reason``."""
        if self.closed:
            return
        self.closed = True
        HUB.discard(self)
        CONNECTIONS.dec()
        CLOSES.labels(reason).inc()
        if self._keepalive.running:
            self._keepalive.stop()
        for timer in self._timers:
            if timer.active():
                timer.cancel()


def backpressure_limit() -> int:
    """The slow-subscriber limit of the node's settings (``slow_subscriber.max_buffer_bytes``)."""
    session = STATE.session
    settings = getattr(session, "settings", None)
    return settings.slow_subscriber.max_buffer_bytes if settings is not None else DEFAULT_MAX_BUFFER


class Hub:
    """The open streams, and the tap on delivery that hands each of them its events."""

    def __init__(self) -> None:
        self.streams: set[Stream] = set()
        self._index: sse.StreamIndex[Stream] = sse.StreamIndex()

    def add(self, stream: Stream) -> None:
        """A stream opened: it gets the events it asked for from now on."""
        self.streams.add(stream)
        self._index.add(stream, stream.wanted)

    def discard(self, stream: Stream) -> None:
        """A stream closed."""
        self.streams.discard(stream)
        self._index.discard(stream, stream.wanted)

    def dispatched(self, topic: str, args: list[Any], kwargs: dict[str, Any]) -> None:
        """One event delivered on this node (see :func:`broker.router.crossbar.publish.tap`)."""
        if not self.streams or is_reserved(topic):
            return
        data: bytes | None = None
        cursor: int | None = None
        for stream in self._index.wanting(topic):
            if data is None:
                position = kwargs.get(POSITION_KEY)
                rest = {k: v for k, v in kwargs.items() if k != POSITION_KEY}
                entry = sse.event_data(topic, args, rest, position)
                id_ = None
                if isinstance(position, dict):
                    cursor = position.get("cursor")
                    id_ = sse.event_id(position.get("epoch", ""), cursor or 0)
                data = sse.frame(sse.EVENT, entry, id_)
            try:
                stream.live(cursor, data)
            except Exception:  # one broken stream must not stop delivery to the others
                _log.failure("writing to an SSE stream failed")
                stream.close(CLIENT)

    def end_all(self, error: BrokerError) -> int:
        """End every stream with a ``closed`` event naming ``error`` (events this node will never
        deliver: :mod:`broker.router.gaps`); the browsers reconnect and replay from history."""
        streams = list(self.streams)
        for stream in streams:
            stream._end(GAP, sse.frame(sse.CLOSED, {"error": error.wamp_uri, "message": str(error)}))
        return len(streams)


HUB = Hub()


def _error(request: Request, error: BrokerError) -> bytes:
    request.setResponseCode(error.http_status)
    request.setHeader(b"content-type", b"application/json")
    request.setHeader(b"cache-control", b"no-store")
    if isinstance(error, NotReady):
        request.setHeader(b"retry-after", b"1")
    return json.dumps({"error": error.wamp_uri, "message": str(error)}).encode()


def _not_ready(request: Request, error: NotReady) -> bytes:
    """503 JSON, but for an ``EventSource`` (``Accept: text/event-stream``), which would give up
    for good on any status but 200: a stream of one ``closed`` event, so it retries after ``retry:``."""
    if b"text/event-stream" not in (request.getHeader(b"accept") or b""):
        return _error(request, error)
    request.setHeader(b"content-type", sse.CONTENT_TYPE)
    request.setHeader(b"cache-control", b"no-store")
    closing = sse.frame(sse.CLOSED, {"error": error.wamp_uri, "message": str(error)})
    return f"retry: {sse.RETRY_MS}\n\n".encode() + closing


def _may_subscribe(wanted: sse.StreamRequest, role: str, grants: Grants, own: Grants | None) -> None:
    for topic in wanted.topics:
        if grants.allows(role, "subscribe", topic, wanted.match):
            continue
        if own is not None and own.allows(USER_ROLE, "subscribe", topic, wanted.match):
            continue
        who = "this token" if own is not None else "an anonymous stream (no token)"
        raise NotAuthorized(f"{who} may not subscribe to {topic!r} ({wanted.match})")


class SseResource(Resource):
    """Mounted at ``/sse`` in the node config (``extra.keepalive_seconds``: the keep-alive period)."""

    isLeaf = True

    def __init__(self, extra: Any = None, *args: Any, **kwargs: Any) -> None:
        Resource.__init__(self)
        keepalive = (extra or {}).get("keepalive_seconds", sse.KEEPALIVE_SECONDS)
        if isinstance(keepalive, bool) or not isinstance(keepalive, (int, float)) or keepalive <= 0:
            raise ConfigError(
                "$.extra.keepalive_seconds",
                f"keepalive_seconds must be a number of seconds > 0, not {keepalive!r}",
            )
        self.keepalive = float(keepalive)
        crossbar_publish.tap(HUB.dispatched)

    def render(self, request: Request) -> bytes | int:
        if request.method not in (b"GET", b"HEAD"):
            request.setHeader(b"allow", b"GET")
            return _error(request, MethodNotAllowed("/sse answers GET only"))
        return self.render_GET(request)

    def render_GET(self, request: Request) -> bytes | int:
        request.uri = sse.redact(request.uri)  # before anything logs it (the access log, at the end)
        origin = request.getHeader(b"origin")
        if origin is not None and not cors.allowed(origin):
            STATE.count_rejection(metrics.FOREIGN_ORIGIN)
            return _error(request, NotAuthorized(f"origin {origin.decode('latin-1')!r} is not allowed"))
        cors.set_cross_origin_headers(request)
        session, store = STATE.session, STATE.history
        settings = getattr(session, "settings", None)
        if settings is None or store is None or STATE.stopping:
            return _not_ready(request, NotReady("the node is starting or stopping"))
        query = {
            k.decode("latin-1"): [v.decode("utf-8", "replace") for v in vs] for k, vs in request.args.items()
        }
        cookie = request.getCookie(sse.TOKEN_COOKIE.encode())
        header = request.getHeader(b"last-event-id")
        last = header.decode("latin-1") if header is not None else None
        try:
            wanted = sse.parse_request(query, last, cookie.decode("latin-1") if cookie else None)
            role, own, ends_at = "anonymous", None, None
            if wanted.token is not None:
                tokens = settings.tokens
                if tokens is None:
                    raise InvalidToken("token authentication is not configured on this node (extra.tokens)")
                claims = verify(
                    wanted.token, tokens.keys, tokens.audience, leeway=tokens.leeway, max_ttl=tokens.max_ttl
                )
                role, own, ends_at = USER_ROLE, claims.grants(), claims.expires_at + tokens.leeway
            _may_subscribe(wanted, role, settings.grants, own)
        except BrokerError as error:
            STATE.count_rejection(f"sse_{type(error).__name__}")
            return _error(request, error)
        request.setHeader(b"content-type", sse.CONTENT_TYPE)
        request.setHeader(b"cache-control", b"no-store")
        request.setHeader(b"x-accel-buffering", b"no")  # nginx: pass each event on at once
        stream = Stream(request, wanted, self.keepalive)
        stream.start(ends_at)
        d = defer.ensureDeferred(stream.replay(store))
        d.addErrback(self._replay_failed, stream)
        return NOT_DONE_YET

    @staticmethod
    def _replay_failed(failure: Any, stream: Stream) -> None:
        _log.failure("reading history for an SSE stream failed", failure)
        closing = {"error": HISTORY_UNAVAILABLE, "message": "history could not be read: reconnect"}
        stream._end(UNAVAILABLE, sse.frame(sse.CLOSED, closing))
