"""Every error Broker raises, in one small hierarchy.

Each error carries the WAMP error URI a WAMP client sees and the HTTP status an
HTTP client sees, so adapters (router components, HTTP resources, the CLI) map
errors the same way everywhere. The tree separates the caller's fault from ours::

    BrokerError
    ├── ClientError                   the caller sent something wrong (4xx)
    │   ├── InvalidUri                wamp.error.invalid_uri            400
    │   ├── NotAuthorized             wamp.error.not_authorized         403
    │   │   ├── InvalidToken          wamp.error.not_authorized         401
    │   │   └── TokenExpired          broker.error.token_expired        401
    │   ├── ProtocolViolation         wamp.error.protocol_violation     400
    │   ├── HelloTimeout              broker.error.hello_timeout        408
    │   ├── Unauthenticated           broker.error.unauthenticated      401
    │   ├── MethodNotAllowed          broker.error.method_not_allowed   405
    │   ├── UnknownTransport          broker.error.unknown_transport    404
    │   ├── Replayed                  broker.error.replay               409
    │   ├── PayloadTooLarge           broker.error.too_large            413
    │   ├── UnsupportedMediaType      broker.error.unsupported_media_type 415
    │   ├── IdempotencyMismatch       broker.error.idempotency_mismatch 422
    │   ├── IdempotencyUnknown        broker.error.idempotency_unknown  409
    │   ├── RateLimited               broker.error.rate_limited         429
    │   └── PresenceNotEnabled        broker.error.presence_not_enabled 404
    ├── ConfigError                   the operator's config is wrong; names its JSON path
    ├── ServerError                   our fault or not ready (5xx)
    │   ├── NotReady                  broker.error.not_ready            503
    │   ├── DeliveryGap               broker.error.delivery_gap         503
    │   ├── PresenceUnavailable       broker.error.presence_unavailable 503
    │   ├── RedisProtocolError        broker.error.internal             500  a reply no Redis sends
    │   └── HistoryUnavailable        broker.error.history_unavailable  503  not stored
    │       └── HistoryUnanswered     broker.error.history_unavailable  503  maybe stored
    ├── NotAdmitted                   a shared engine refused a request's nonce or tokens in its append
    ├── ConnectionFailed              (client side) the router could not be reached
    └── WampError                     (client side) the router answered with a WAMP error
"""

from __future__ import annotations


class BrokerError(Exception):
    """Base of every error Broker raises on purpose."""

    wamp_uri = "broker.error.internal"
    http_status = 500


class ClientError(BrokerError):
    """The caller sent something wrong; retrying the same input will fail again."""

    wamp_uri = "broker.error.bad_request"
    http_status = 400


class InvalidUri(ClientError):
    """A topic, procedure or pattern is not a valid WAMP URI."""

    wamp_uri = "wamp.error.invalid_uri"
    http_status = 400


class NotAuthorized(ClientError):
    """The caller's role has no grant for this action on this URI."""

    wamp_uri = "wamp.error.not_authorized"
    http_status = 403


class InvalidToken(NotAuthorized):
    """A user token is malformed, forged, expired, for another audience or grants too much.

    A subclass of :class:`NotAuthorized` because that is what a WAMP client
    sees (``ABORT wamp.error.not_authorized`` with the message); the message
    says which check failed, so a developer can tell an expired token from a
    misconfigured secret.
    """

    wamp_uri = "wamp.error.not_authorized"
    http_status = 401


class TokenExpired(NotAuthorized):
    """A joined session's token expired (past the node's leeway): the router ends the session.

    The client sees ``GOODBYE broker.error.token_expired`` with the message,
    then the transport closes; it should sign in again with a fresh token. A
    token that has already expired at sign-in is an :class:`InvalidToken`.
    """

    wamp_uri = "broker.error.token_expired"
    http_status = 401


class ProtocolViolation(ClientError):
    """The peer broke the WAMP protocol (for example a second HELLO)."""

    wamp_uri = "wamp.error.protocol_violation"
    http_status = 400


class HelloTimeout(ClientError):
    """A transport connected but did not complete the WAMP opening handshake in time."""

    wamp_uri = "broker.error.hello_timeout"
    http_status = 408


class Unauthenticated(ClientError):
    """A request's signature is missing, wrong, for an unknown key, or too old."""

    wamp_uri = "broker.error.unauthenticated"
    http_status = 401


class MethodNotAllowed(ClientError):
    """The HTTP method is not served on this path."""

    wamp_uri = "broker.error.method_not_allowed"
    http_status = 405


class UnknownTransport(ClientError):
    """A long-poll request names a transport this node does not hold (closed, expired, or
    opened on another node: :mod:`broker.core.nodeid`)."""

    wamp_uri = "broker.error.unknown_transport"
    http_status = 404


class Replayed(ClientError):
    """A signed request was sent again (its nonce was already used)."""

    wamp_uri = "broker.error.replay"
    http_status = 409


class PayloadTooLarge(ClientError):
    """A request body is over the configured limit."""

    wamp_uri = "broker.error.too_large"
    http_status = 413


class UnsupportedMediaType(ClientError):
    """A request body is not ``application/json``."""

    wamp_uri = "broker.error.unsupported_media_type"
    http_status = 415


class IdempotencyMismatch(ClientError):
    """An idempotency key was reused with a different request body."""

    wamp_uri = "broker.error.idempotency_mismatch"
    http_status = 422


class IdempotencyUnknown(ClientError):
    """An idempotency key's first request was cut off by a restart: its outcome is unknown."""

    wamp_uri = "broker.error.idempotency_unknown"
    http_status = 409


class RateLimited(ClientError):
    """A publisher key is over its rate limit; ``retry_after`` says for how long (seconds)."""

    wamp_uri = "broker.error.rate_limited"
    http_status = 429

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PresenceNotEnabled(ClientError):
    """``broker.presence`` was asked about a topic no ``extra.presence.topics`` pattern enables."""

    wamp_uri = "broker.error.presence_not_enabled"
    http_status = 404


class ConfigError(BrokerError):
    """The node config or Broker's settings are invalid.

    ``path`` is the JSON path of the offending value (``$.workers[0].realms``),
    and the message always starts with it.
    """

    wamp_uri = "broker.error.config"

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}")


class UnpinnedVersion(BrokerError):
    """Crossbar, autobahn, Twisted or txaio is not the version Broker's crossbar patches were
    written for (:mod:`broker.router.crossbar.versions`); the message is one line naming it."""


class ServerError(BrokerError):
    """Something on our side failed; the same request may succeed later."""

    wamp_uri = "broker.error.internal"
    http_status = 500


class NotReady(ServerError):
    """The node has not finished starting (or is shutting down)."""

    wamp_uri = "broker.error.not_ready"
    http_status = 503


class HistoryUnavailable(ServerError):
    """The history engine did not store the event, for certain (it was refused before anything
    was sent to the engine, or the engine refused it): it was not published; the publisher may
    send it again later."""

    wamp_uri = "broker.error.history_unavailable"
    http_status = 503


class HistoryUnanswered(HistoryUnavailable):
    """The history engine was asked to store the event but did not answer in time (or the
    connection was lost first): it may have been stored, and then it is delivered. The same URI
    and status as :class:`HistoryUnavailable` (clients already retry it), another message: a
    retry with the same ``Idempotency-Key`` publishes it at most once."""


class DeliveryGap(ServerError):
    """This node could not deliver some events live (the shared log lost them before it read
    them): the session is ended so that its client reconnects and recovers them."""

    wamp_uri = "broker.error.delivery_gap"
    http_status = 503


class RedisProtocolError(ServerError):
    """Bytes from Redis that are no RESP2 reply it would send (garbage, a bulk string longer
    than Redis allows, arrays nested deeper than any reply Broker asks for): the connection
    cannot be read on, so it is dropped, and every call waiting on it fails with this error
    (Redis may have run them: their publishers are told the batch may have been stored)."""


class PresenceUnavailable(ServerError):
    """The other nodes' presence could not be read from the shared engine (Redis)."""

    wamp_uri = "broker.error.presence_unavailable"
    http_status = 503


class NotAdmitted(BrokerError):
    """A shared engine (Redis) refused a signed request's nonce or rate-limit tokens in the step
    that would have appended its batch, so nothing was appended (:class:`broker.history.Claim`).
    ``wait`` None: some node had already taken the nonce (a replay); else the seconds until the
    publisher key's bucket holds the tokens. The HTTP API answers it as :class:`Replayed` or
    :class:`RateLimited`, exactly as when the engine's ``admit`` refused the request alone."""

    def __init__(self, wait: float | None) -> None:
        super().__init__("the nonce was already taken" if wait is None else f"rate limited for {wait:g} s")
        self.wait = wait


class ConnectionFailed(BrokerError):
    """The router could not be reached, or the connection ended unexpectedly."""

    http_status = 503


class WampError(BrokerError):
    """The router refused a request (or the session) with a WAMP error; ``uri`` names it."""

    def __init__(self, uri: str, message: str) -> None:
        self.uri = uri
        self.message = message
        super().__init__(f"{uri}: {message}" if message else uri)
