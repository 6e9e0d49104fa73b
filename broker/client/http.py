"""The blocking publisher, over :mod:`http.client`.

Why :mod:`http.client` rather than requests or httpx: the SDK installs into any
backend (a Django venv, a cron job) without adding dependencies, and httpx's
``idna>=2.8`` cannot share a venv with crossbar's ``idna==2.5`` pin. One
connection per attempt: there is no pool to go stale between publishes, and a
:class:`Publisher` holds no mutable state, so threads may share one.
"""

from __future__ import annotations

import http.client
import random
import ssl
import time
from collections.abc import Callable, Iterable
from typing import Any

from broker.client.core import RESPONSE_LIMIT, TRANSPORT_ERRORS, Call, Endpoint, PublisherBase, Response
from broker.client.wire import Event, Published


def post(
    endpoint: Endpoint, body: bytes, headers: dict[str, str], timeout: float, context: ssl.SSLContext | None
) -> Response:
    """Send one request and read its answer; raises one of TRANSPORT_ERRORS if that fails.

    ``timeout`` bounds the connect and each read; ``context`` is used for https.
    """
    connection = (
        http.client.HTTPSConnection(endpoint.host, endpoint.port, timeout=timeout, context=context)
        if endpoint.scheme == "https"
        else http.client.HTTPConnection(endpoint.host, endpoint.port, timeout=timeout)
    )
    try:
        connection.request("POST", endpoint.path, body=body, headers=headers)
        response = connection.getresponse()
        data = response.read(RESPONSE_LIMIT)
        return Response(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
    finally:
        connection.close()


class Publisher(PublisherBase):
    """Publishes events to a Broker node over its HTTP API, blocking until acknowledged.

    ``url`` is the node's base URL (``http://127.0.0.1:8080``); ``key_id`` and
    ``secret`` are a publisher key from the node's config. A call that gets no
    answer or a 503 is retried up to ``retries`` times, after a delay drawn
    uniformly from ``[0, min(max_backoff, backoff * 2**n))`` (at least the node's
    ``Retry-After``), with the same idempotency key, so the node publishes it
    once. ``timeout`` bounds the connect and each read of one attempt. ``sleep``
    and ``rng`` (a draw from ``[0, 1)``) are injectable for tests.

    Every failure raises a :class:`~broker.client.errors.PublishError` subclass;
    a 4xx is never retried.
    """

    def __init__(
        self,
        url: str,
        key_id: str,
        secret: str,
        *,
        timeout: float = 10.0,
        retries: int = 5,
        backoff: float = 0.2,
        max_backoff: float = 5.0,
        sleep: Callable[[float], object] = time.sleep,
        rng: Callable[[], float] = random.random,
    ) -> None:
        super().__init__(
            url,
            key_id,
            secret,
            timeout=timeout,
            retries=retries,
            backoff=backoff,
            max_backoff=max_backoff,
            rng=rng,
        )
        self._sleep = sleep

    def publish(self, topic: str, data: Any, idempotency_key: str | None = None) -> Published:
        """Publish ``data`` (any JSON value) to ``topic``; subscribers receive ``args == [data]``.

        Without ``idempotency_key`` a fresh one is generated for this call.
        """
        return self._run(self._single(topic, data, idempotency_key))[0]

    def publish_many(self, events: Iterable[Event], idempotency_key: str | None = None) -> list[Published]:
        """Publish 1 to 100 events in order, as one request; ``events`` are ``(topic, data)``
        tuples or ``{"topic": ..., "data": ...}`` mappings."""
        return self._run(self._batch(events, idempotency_key))

    def _run(self, call: Call) -> list[Published]:
        outcome: list[Published] | float
        while True:
            try:
                response = post(
                    call.endpoint, call.body, call.headers(), self.settings.timeout, self.ssl_context
                )
            except TRANSPORT_ERRORS as exc:
                outcome = call.lost(exc)
            else:
                outcome = call.answered(response)
            if isinstance(outcome, list):
                return outcome
            self._sleep(outcome)
