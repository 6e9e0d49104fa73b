"""Server-Sent Events, the pure part: event ids, frames, the request, the replay/live boundary.

Why a module of its own: ``GET /sse`` (:mod:`broker.router.sse`) is a
browser's way in with no client library at all, so everything a browser's
``EventSource`` relies on (the ``id:`` it sends back as ``Last-Event-ID``,
the framing, what a reconnect replays) is decided here, without Twisted, and
tested without a reactor. docs/sse.md is the user's description.

An event id is a position in one compact string, ``<epoch>:<cursor>``
(:func:`event_id`): the epoch (hex, never a colon) and the store-wide cursor
in decimal. A stream replays everything after it, so the seq per topic is
not needed; the ``data:`` JSON carries the whole position anyway.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar
from urllib.parse import parse_qsl, urlencode

from broker.core.uris import MATCH_POLICIES, Match, check_uri, topic_matches
from broker.errors import ClientError, InvalidUri

#: The content type of a stream.
CONTENT_TYPE: Final = b"text/event-stream; charset=utf-8"
#: The comment sent when nothing else was for :data:`KEEPALIVE_SECONDS` (proxies and browsers
#: close an idle response; a dead peer is found by the write).
KEEPALIVE: Final = b": keepalive\n\n"
#: Seconds of silence before a :data:`KEEPALIVE` is sent.
KEEPALIVE_SECONDS: Final = 15.0
#: How long (ms) a browser waits before reconnecting (the stream's first ``retry:`` field).
RETRY_MS: Final = 2000
#: The most topics (``topic=`` parameters) one stream may name.
MAX_TOPICS: Final = 32
#: The query parameter, and the cookie, a user token may come in (EventSource sets no headers).
TOKEN_PARAM: Final = "token"  # noqa: S105 - a parameter name, not a secret
TOKEN_COOKIE: Final = "broker_token"  # noqa: S105 - a cookie name
#: What a token is replaced with in every URL the node logs.
REDACTED: Final = "REDACTED"

#: The ``event:`` names a stream uses (docs/sse.md).
EVENT: Final = "event"
READY: Final = "ready"
UNRECOVERABLE: Final = "unrecoverable"
CLOSED: Final = "closed"

#: The largest cursor a store can issue (SQLite's signed 64-bit integer).
_MAX_CURSOR: Final = 2**63 - 1
_ID = re.compile(r"^([0-9A-Za-z_-]{1,64}):(0|[1-9][0-9]{0,18})$")


def event_id(epoch: str, cursor: int) -> str:
    """The ``id:`` of the position ``(epoch, cursor)``: ``<epoch>:<cursor>``."""
    return f"{epoch}:{cursor}"


def parse_event_id(text: str) -> tuple[str, int]:
    """``(epoch, cursor)`` from an id :func:`event_id` made; anything else is a :class:`ClientError`."""
    found = _ID.match(text)
    if found is None or int(found.group(2)) > _MAX_CURSOR:
        shown = text if len(text) <= 80 else text[:77] + "..."
        raise ClientError(
            f"invalid Last-Event-ID {shown!r}: expected <epoch>:<cursor> as this node sent it in id:"
        )
    return found.group(1), int(found.group(2))


def frame(event: str, data: Any, id_: str | None = None) -> bytes:
    """One event: ``id:`` (if any), ``event:`` and one ``data:`` line of compact JSON, then a blank line.

    JSON never holds a raw newline, so one ``data:`` line always carries it whole.
    """
    lines = [] if id_ is None else [f"id: {id_}"]
    lines += [f"event: {event}", "data: " + json.dumps(data, separators=(",", ":"))]
    return ("\n".join(lines) + "\n\n").encode()


def event_data(topic: str, args: Sequence[Any], kwargs: Mapping[str, Any], position: Any) -> dict[str, Any]:
    """An event's ``data:``: what a recovery answer holds for it (``position`` None: no history)."""
    return {"topic": topic, "args": list(args), "kwargs": dict(kwargs), "position": position}


@dataclass(frozen=True)
class StreamRequest:
    """What a ``GET /sse`` asks for: its subscriptions and where it resumes (None: from now)."""

    topics: tuple[str, ...]
    match: Match
    since: tuple[str, int] | None
    token: str | None

    def wants(self, topic: str) -> bool:
        """Whether an event on ``topic`` belongs to this stream (once, however many topics match)."""
        return any(topic_matches(topic, pattern, self.match) for pattern in self.topics)


def _one(query: Mapping[str, Sequence[str]], name: str) -> str | None:
    values = query.get(name, ())
    if len(values) > 1:
        raise ClientError(f"{name} may be given once, not {len(values)} times")
    return values[0] if values else None


def parse_request(
    query: Mapping[str, Sequence[str]], last_event_id: str | None, cookie_token: str | None = None
) -> StreamRequest:
    """The stream a query asks for; :class:`InvalidUri` or :class:`ClientError` (both 400) if bad.

    ``topic`` (at least one, at most :data:`MAX_TOPICS`), ``match`` (``exact``
    by default), ``since`` or else the ``Last-Event-ID`` header (the browser's,
    on a reconnect: it wins over a ``since`` still in the URL), ``token`` or
    else the cookie.
    """
    topics = tuple(query.get("topic", ()))
    if not topics:
        raise ClientError("name at least one topic: /sse?topic=<uri>")
    if len(topics) > MAX_TOPICS:
        raise ClientError(f"at most {MAX_TOPICS} topics per stream, not {len(topics)}")
    match = _one(query, "match") or "exact"
    if match not in MATCH_POLICIES:
        raise InvalidUri(f"invalid match policy {match!r} (expected one of {', '.join(MATCH_POLICIES)})")
    for topic in topics:
        check_uri(topic, match)
    since_text = last_event_id if last_event_id else _one(query, "since")
    since = None if not since_text else parse_event_id(since_text)
    token = _one(query, TOKEN_PARAM) or cookie_token or None
    return StreamRequest(topics, match, since, token)


def redact(uri: bytes) -> bytes:
    """``uri`` with the value of every ``token`` parameter replaced by :data:`REDACTED` (for logs)."""
    path, sep, query = uri.partition(b"?")
    if not sep or TOKEN_PARAM.encode() not in query:
        return uri
    pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
    kept = [(k, REDACTED if k == TOKEN_PARAM else v) for k, v in pairs]
    return path + b"?" + urlencode(kept).encode("latin-1")


T = TypeVar("T")


class LiveGate(Generic[T]):
    """Live events around a replay: held while history is read, then released past its boundary.

    A stream subscribes live first, then reads history; live events that
    arrive meanwhile are held (:meth:`live`). :meth:`open` sets the boundary,
    the last cursor the replay covered: held and later events at or below it
    were in the replay (or before the stream's start) and are dropped, the
    others pass in arrival order; events without a position always pass.
    ``held_bytes`` is what waits, for the slow-subscriber bound.
    """

    def __init__(self) -> None:
        self.boundary: int | None = None
        self.held_bytes = 0
        self._held: list[tuple[int | None, T, int]] = []

    def live(self, cursor: int | None, item: T, size: int = 0) -> list[T]:
        """A live event (``size`` bytes): what to send now."""
        if self.boundary is None:
            self._held.append((cursor, item, size))
            self.held_bytes += size
            return []
        return [item] if cursor is None or cursor > self.boundary else []

    def open(self, boundary: int) -> list[T]:
        """The replay ended at cursor ``boundary``: the held events to send, in arrival order."""
        self.boundary = boundary
        held, self._held, self.held_bytes = self._held, [], 0
        return [item for cursor, item, _ in held if cursor is None or cursor > boundary]


class StreamIndex(Generic[T]):
    """Which open streams want an event on a topic, without asking every stream.

    Streams of exact topics (most of them) sit in a dict by topic, so an event
    costs one lookup however many streams are open; prefix and wildcard
    streams are asked one by one, as crossbar matches its own pattern
    subscriptions. A stream naming several matching topics is answered once.
    """

    def __init__(self) -> None:
        self._exact: dict[str, dict[T, None]] = {}
        self._patterned: dict[T, StreamRequest] = {}

    def add(self, stream: T, wanted: StreamRequest) -> None:
        """Index ``stream`` under what it asked for."""
        if wanted.match != "exact":
            self._patterned[stream] = wanted
            return
        for topic in wanted.topics:
            self._exact.setdefault(topic, {})[stream] = None

    def discard(self, stream: T, wanted: StreamRequest) -> None:
        """Forget ``stream`` (indexed under ``wanted``); nothing if it was not indexed."""
        if wanted.match != "exact":
            self._patterned.pop(stream, None)
            return
        for topic in wanted.topics:
            streams = self._exact.get(topic)
            if streams is not None:
                streams.pop(stream, None)
                if not streams:
                    del self._exact[topic]

    def wanting(self, topic: str) -> list[T]:
        """The streams an event on ``topic`` goes to, each once."""
        exact = self._exact.get(topic)
        found = dict(exact) if exact else {}
        for stream, wanted in self._patterned.items():
            if wanted.wants(topic):
                found[stream] = None
        return list(found)
