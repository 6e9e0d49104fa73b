"""What the blocking and the asyncio publisher share: settings, the endpoint, and
one publish call's attempts as a state machine without I/O.

Why a state machine: the retry rules (what is retried, the same idempotency
key on every attempt, a fresh signature per attempt, when to give up) must be
identical for :class:`~broker.client.Publisher` and
:class:`~broker.client.AsyncPublisher`; each only drives :class:`Call` with
its own transport and its own sleep.
"""

from __future__ import annotations

import http.client
import ssl
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import broker
from broker.client import wire
from broker.client.errors import Unavailable, error_from_response
from broker.client.retry import Backoff
from broker.core import signing

#: What a failed attempt to exchange a request and a response raises: refused,
#: reset, timed out, TLS failure, or a response cut short or malformed. Retried.
TRANSPORT_ERRORS: Final = (OSError, http.client.HTTPException)

#: At most this many bytes of a response body are read; a longer one is cut
#: (and then fails to parse as the API's JSON).
RESPONSE_LIMIT: Final = 1 << 20

_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Endpoint:
    """Where the publish API of one node is: scheme, host, port and request path."""

    scheme: str
    host: str
    port: int
    path: str

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        """The endpoint under a node's base URL (``http://127.0.0.1:8080``, maybe with a path
        prefix); ValueError if it is not a plain http(s) URL."""
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
            raise ValueError(f"url must be http:// or https:// with a host, got {url!r}")
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ValueError(f"url must not carry credentials, a query or a fragment, got {url!r}")
        path = parts.path.rstrip("/") + wire.PATH
        if not signing.FIELD_PATTERNS["path"].match(path):
            raise ValueError(f"url path cannot be signed: {path!r}")
        port = parts.port or _DEFAULT_PORTS[parts.scheme]
        return cls(parts.scheme, parts.hostname, port, path)

    @property
    def host_header(self) -> str:
        """The ``Host`` header value: IPv6 literals in brackets, the port unless the default."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == _DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"

    @property
    def url(self) -> str:
        """The full URL of the publish API."""
        return f"{self.scheme}://{self.host_header}{self.path}"


@dataclass(frozen=True)
class Response:
    """An HTTP answer: status, headers keyed by lower-case name, body (at most RESPONSE_LIMIT bytes)."""

    status: int
    headers: Mapping[str, str]
    body: bytes


class Call:
    """The attempts of one publish call: sign each, judge each outcome, and say how long
    to wait before the next, or raise once no retry is left.

    Drive it as::

        while True:
            try:
                response = send(call.endpoint, call.body, call.headers())
            except TRANSPORT_ERRORS as exc:
                outcome = call.lost(exc)
            else:
                outcome = call.answered(response)
            if isinstance(outcome, list):
                return outcome
            sleep(outcome)
    """

    def __init__(self, settings: Settings, body: bytes, expected: int) -> None:
        self.settings = settings
        self.endpoint = settings.endpoint
        self.body = body
        self.expected = expected
        self.attempts = 0

    def headers(self) -> dict[str, str]:
        """The headers of the next attempt, with a fresh nonce and timestamp."""
        self.attempts += 1
        s = self.settings
        return {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": f"broker-client/{broker.__version__}",
            "Connection": "close",
            **signing.sign_headers(s.key_id, s.secret, "POST", self.endpoint.path, self.body),
        }

    def answered(self, response: Response) -> list[wire.Published] | float:
        """The published events of a 200, or the seconds to wait before retrying a 503.

        Raises the mapped :class:`PublishError` for any other answer, and
        :class:`Unavailable` for a 503 when no retry is left.
        """
        if response.status == 200:
            return wire.parse_published(response.body, self.expected)
        error = error_from_response(response.status, response.headers, response.body)
        if not isinstance(error, Unavailable):
            raise error
        return self._retry(error)

    def lost(self, exc: BaseException) -> float:
        """The seconds to wait after an attempt that got no answer (``exc`` is one of
        TRANSPORT_ERRORS); raises :class:`Unavailable` when no retry is left."""
        return self._retry(Unavailable(f"cannot reach {self.endpoint.url}: {exc!r}", cause=exc))

    def _retry(self, failure: Unavailable) -> float:
        retry = self.attempts - 1
        if retry >= self.settings.retries:
            raise Unavailable(
                f"gave up after {self.attempts} attempts; last: {failure.message}",
                status=failure.status,
                error=failure.error,
                retry_after=failure.retry_after,
                cause=failure.cause,
            ) from failure.cause
        return self.settings.backoff.delay(retry, self.settings.rng(), failure.retry_after)


@dataclass(frozen=True)
class Settings:
    """A publisher's fixed settings (see :class:`~broker.client.Publisher` for each)."""

    endpoint: Endpoint
    key_id: str
    secret: str = field(repr=False)
    timeout: float
    retries: int
    backoff: Backoff
    rng: Callable[[], float]

    @classmethod
    def create(
        cls,
        url: str,
        key_id: str,
        secret: str,
        *,
        timeout: float,
        retries: int,
        backoff: float,
        max_backoff: float,
        rng: Callable[[], float],
    ) -> Settings:
        """Validated settings; ValueError names the first bad argument."""
        if not signing.FIELD_PATTERNS["key id"].match(key_id):
            raise ValueError(f"key_id must match {signing.FIELD_PATTERNS['key id'].pattern}, got {key_id!r}")
        if not secret:
            raise ValueError("secret must not be empty")
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0, got {timeout}")
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        return cls(Endpoint.parse(url), key_id, secret, timeout, retries, Backoff(backoff, max_backoff), rng)


class PublisherBase:
    """Settings and body building shared by the blocking and the asyncio publisher."""

    def __init__(
        self,
        url: str,
        key_id: str,
        secret: str,
        *,
        timeout: float,
        retries: int,
        backoff: float,
        max_backoff: float,
        rng: Callable[[], float],
    ) -> None:
        self.settings = Settings.create(
            url,
            key_id,
            secret,
            timeout=timeout,
            retries=retries,
            backoff=backoff,
            max_backoff=max_backoff,
            rng=rng,
        )
        #: The TLS settings for https: the system's trusted CAs, hostname checked.
        self.ssl_context = ssl.create_default_context() if self.settings.endpoint.scheme == "https" else None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.settings.endpoint.url!r}, key_id={self.settings.key_id!r})"

    def _single(self, topic: str, data: Any, idempotency_key: str | None) -> Call:
        key = wire.new_idempotency_key() if idempotency_key is None else idempotency_key
        return Call(self.settings, wire.single_body(topic, data, key), 1)

    def _batch(self, events: Iterable[wire.Event], idempotency_key: str | None) -> Call:
        key = wire.new_idempotency_key() if idempotency_key is None else idempotency_key
        body, count = wire.batch_body(events, key)
        return Call(self.settings, body, count)
