"""The SDK's exceptions, and which one an HTTP answer becomes.

Why its own small hierarchy rather than :mod:`broker.errors`: a caller of the
publish API needs one exception per thing it can react to (fix the request,
fix the credentials, slow down, try later), named after the HTTP answer, and
nothing else. The mapping from an answer to an exception is a pure function,
so it is tested without sockets::

    PublishError                 status, error (URI), message
    ├── BadRequest               400  broker.error.bad_request, wamp.error.invalid_uri;
    │                                 also raised before sending (status None)
    ├── Unauthenticated          401  broker.error.unauthenticated
    ├── Forbidden                403  wamp.error.not_authorized
    ├── Replayed                 409  broker.error.replay
    ├── TooLarge                 413  broker.error.too_large
    ├── UnsupportedMediaType     415  broker.error.unsupported_media_type
    ├── IdempotencyMismatch      422  broker.error.idempotency_mismatch
    ├── RateLimited              429  broker.error.rate_limited, retry_after
    └── Unavailable              503  broker.error.not_ready or history_unavailable, retry_after,
                                      after the retries;
                                      or the node could not be reached (status None), cause

Any other answer (405, 500, a body that is not the API's JSON) is a plain
:class:`PublishError` carrying the status.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from broker.client.retry import parse_retry_after

#: How much of an unexpected body an error message quotes.
QUOTE_LIMIT = 200


class PublishError(Exception):
    """A publish failed. ``status`` is the HTTP status (None if no answer was received),
    ``error`` the error URI the node sent (None if it sent none), ``message`` the reason."""

    def __init__(self, message: str, *, status: int | None = None, error: str | None = None) -> None:
        self.message = message
        self.status = status
        self.error = error
        prefix = " ".join(part for part in (f"HTTP {status}" if status else "", error or "") if part)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class BadRequest(PublishError):
    """The request is malformed or a topic is not a valid URI; sending it again fails again."""


class Unauthenticated(PublishError):
    """The node rejected the signature: unknown key, wrong secret, or a clock outside the window."""


class Forbidden(PublishError):
    """The key may not publish to this topic."""


class Replayed(PublishError):
    """The node has already seen this request's nonce."""


class TooLarge(PublishError):
    """The request body exceeds the node's limit."""


class UnsupportedMediaType(PublishError):
    """The node accepts only ``application/json``."""


class IdempotencyMismatch(PublishError):
    """The idempotency key was already used for a different body."""


class RateLimited(PublishError):
    """The key exceeded its rate limit; ``retry_after`` is the node's hint in seconds (or None)."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status=status, error=error)
        self.retry_after = retry_after


class Unavailable(PublishError):
    """The node was not ready (503) or not reachable, through every retry.

    ``retry_after`` is the node's last hint in seconds (or None); ``cause`` is the
    last connection error (None if the node answered 503).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error: str | None = None,
        retry_after: float | None = None,
        cause: BaseException | None = None,
    ) -> None:
        super().__init__(message, status=status, error=error)
        self.retry_after = retry_after
        self.cause = cause


_BY_STATUS: dict[int, type[PublishError]] = {
    400: BadRequest,
    401: Unauthenticated,
    403: Forbidden,
    409: Replayed,
    413: TooLarge,
    415: UnsupportedMediaType,
    422: IdempotencyMismatch,
}


def quote(body: bytes) -> str:
    """The start of an unexpected body, for an error message."""
    text = body[:QUOTE_LIMIT].decode("utf-8", "replace")
    return repr(text + ("..." if len(body) > QUOTE_LIMIT else ""))


def error_from_response(status: int, headers: Mapping[str, str], body: bytes) -> PublishError:
    """The exception for a non-200 answer (``headers`` keyed by lower-case name).

    The class follows the status; ``error`` and ``message`` come from the API's
    ``{"error": ..., "message": ...}`` body when there is one (a proxy in between
    may answer with HTML: then ``error`` is None and the message quotes the body).
    """
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    if (
        isinstance(parsed, dict)
        and isinstance(parsed.get("error"), str)
        and isinstance(parsed.get("message"), str)
    ):
        error: str | None = parsed["error"]
        message: str = parsed["message"]
    else:
        error, message = None, f"unexpected response {quote(body)}"
    if status == 429:
        retry_after = parse_retry_after(headers.get("retry-after"))
        return RateLimited(message, status=status, error=error, retry_after=retry_after)
    if status == 503:
        retry_after = parse_retry_after(headers.get("retry-after"))
        return Unavailable(message, status=status, error=error, retry_after=retry_after)
    return _BY_STATUS.get(status, PublishError)(message, status=status, error=error)
