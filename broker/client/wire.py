"""The publish API's request and response bodies, built and read without I/O.

Why checked here, before anything is sent: a topic that is not a string, data
that is not JSON, or a batch of the wrong size can never succeed, so the SDK
raises :class:`~broker.client.errors.BadRequest` without a request (and
without spending retries on it). What the node decides (valid URI, allowed
topic, size limit) is left to the node.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from broker.client.errors import BadRequest, PublishError, quote

#: The API path, relative to the node's base URL.
PATH: Final = "/api/publish"

#: The most events one batch may carry.
MAX_EVENTS: Final = 100

#: The error URI of a request refused before sending.
BAD_REQUEST: Final = "broker.error.bad_request"

#: An event given to ``publish_many``: ``(topic, data)`` or ``{"topic": ..., "data": ...}``.
Event = tuple[str, Any] | Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Published:
    """One published event: its topic, the router's publication id, and its position.

    ``position`` is ``{"epoch", "seq", "cursor"}`` (docs/positions.md), or None
    for a topic whose history policy keeps nothing. ``id`` is None in the answer
    to a retry that reached another node of a cluster than the one that
    published (publication ids belong to one node; docs/http-publish.md).
    """

    topic: str
    id: int | None
    position: dict[str, Any] | None = None


def new_idempotency_key() -> str:
    """A fresh idempotency key (uuid4, 32 hex digits)."""
    return uuid.uuid4().hex


def _bad(message: str) -> BadRequest:
    return BadRequest(message, error=BAD_REQUEST)


def _event(topic: object, data: Any) -> dict[str, Any]:
    if not isinstance(topic, str):
        raise _bad(f"topic must be a str, not {type(topic).__name__}")
    return {"topic": topic, "data": data}


def _normalize(event: object) -> dict[str, Any]:
    if isinstance(event, tuple) and len(event) == 2:
        return _event(event[0], event[1])
    if isinstance(event, Mapping):
        if set(event) != {"topic", "data"}:
            raise _bad(f"an event mapping needs exactly the keys 'topic' and 'data', got {sorted(event)}")
        return _event(event["topic"], event["data"])
    raise _bad(f"an event is a (topic, data) tuple or a mapping, not {type(event).__name__}")


def _encode(payload: dict[str, Any], idempotency_key: object) -> bytes:
    if not isinstance(idempotency_key, str) or not idempotency_key:
        raise _bad(f"idempotency_key must be a non-empty str, not {idempotency_key!r}")
    payload["idempotency_key"] = idempotency_key
    try:
        text = json.dumps(payload, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise _bad(f"data is not JSON: {exc}") from exc
    return text.encode("utf-8")


def single_body(topic: object, data: Any, idempotency_key: str) -> bytes:
    """The body publishing one event: ``{"topic", "data", "idempotency_key"}``."""
    return _encode(_event(topic, data), idempotency_key)


def batch_body(events: Iterable[Event], idempotency_key: str) -> tuple[bytes, int]:
    """The body publishing ``events`` in order, and how many events it holds."""
    normalized = [_normalize(event) for event in events]
    if not 1 <= len(normalized) <= MAX_EVENTS:
        raise _bad(f"a batch holds 1 to {MAX_EVENTS} events, not {len(normalized)}")
    return _encode({"events": normalized}, idempotency_key), len(normalized)


def _published(item: Any) -> Published:
    topic, id_, position = item["topic"], item["id"], item.get("position")
    if not isinstance(topic, str) or not isinstance(id_, int | None) or isinstance(id_, bool):
        raise TypeError(f"not a published event: {item!r}")
    if position is not None and not isinstance(position, dict):
        raise TypeError(f"not a position: {position!r}")
    return Published(topic, id_, position)


def parse_published(body: bytes, expected: int) -> list[Published]:
    """The events a 200 answer reports, checked to be ``expected`` many.

    Anything else than ``{"published": [{"topic": str, "id": int | null}, ...]}`` raises
    :class:`PublishError` with status 200: the node may have published, but the
    SDK cannot tell the caller what.
    """
    try:
        published = [_published(item) for item in json.loads(body)["published"]]
    except (ValueError, TypeError, KeyError) as exc:
        raise PublishError(f"unexpected response {quote(body)}", status=200) from exc
    if len(published) != expected:
        raise PublishError(f"expected {expected} published events, got {quote(body)}", status=200)
    return published
