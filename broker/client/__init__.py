"""Broker's publisher SDK: publish events to a node over its signed HTTP API.

Stdlib only, on purpose: backends (a Django app, a worker, a cron job) install
``broker`` without extras and must not get crossbar, Twisted or autobahn with
it. crossbar pins ``idna==2.5`` and pulls in web3 and NumPy, and even httpx
(``idna>=2.8``) could not share a venv with that pin; so HTTP is
:mod:`http.client` for :class:`Publisher` and asyncio streams for
:class:`AsyncPublisher`. A service that already runs an autobahn session uses
:func:`broker.client.wamp.publish_acknowledged` instead::

    from broker.client import Publisher, Forbidden

    publisher = Publisher("http://127.0.0.1:8080", "dev", secret)
    published = publisher.publish("public.stock", {"item": "tea", "left": 3})
    published.id  # the router's publication id (None: a retry another cluster node answered)

:func:`mint_token` signs a short-lived per-user token (HS256, stdlib) that a
browser presents to the node as its WAMP ticket; see :mod:`broker.core.tokens`.

Each call is retried on connection failures and 503 with the same idempotency
key, so it publishes at most once; every failure is one
:class:`PublishError` subclass (see :mod:`broker.client.errors`).
"""

from broker.client.aio import AsyncPublisher
from broker.client.errors import (
    BadRequest,
    Forbidden,
    IdempotencyMismatch,
    PublishError,
    RateLimited,
    Replayed,
    TooLarge,
    Unauthenticated,
    Unavailable,
    UnsupportedMediaType,
)
from broker.client.http import Publisher
from broker.client.wire import Published
from broker.core.tokens import mint as mint_token

__all__ = [
    "AsyncPublisher",
    "BadRequest",
    "Forbidden",
    "IdempotencyMismatch",
    "PublishError",
    "Published",
    "Publisher",
    "RateLimited",
    "Replayed",
    "TooLarge",
    "Unauthenticated",
    "Unavailable",
    "UnsupportedMediaType",
    "mint_token",
]
