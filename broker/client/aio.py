"""The asyncio publisher, over :func:`asyncio.open_connection`.

Why a hand-written HTTP/1.1 exchange: the stdlib has no asyncio HTTP client,
and the SDK takes no dependencies (see :mod:`broker.client`). The exchange is
the smallest that is correct against any HTTP/1.1 server: one request with
``Content-Length`` and ``Connection: close``, and a response body framed by
``Content-Length``, chunked encoding, or the end of the connection. Malformed
answers raise :mod:`http.client`'s exceptions, so both publishers classify
failures alike.
"""

from __future__ import annotations

import asyncio
import http.client
import io
import random
import ssl
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from broker.client.core import RESPONSE_LIMIT, TRANSPORT_ERRORS, Call, Endpoint, PublisherBase, Response
from broker.client.wire import Event, Published


def encode_request(endpoint: Endpoint, body: bytes, headers: dict[str, str]) -> bytes:
    """The bytes of one POST request."""
    lines = [
        f"POST {endpoint.path} HTTP/1.1",
        f"Host: {endpoint.host_header}",
        *(f"{name}: {value}" for name, value in headers.items()),
        f"Content-Length: {len(body)}",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + body


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    while len(body) < RESPONSE_LIMIT:
        size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
        if size == 0:
            break
        take = min(size, RESPONSE_LIMIT - len(body))
        body += await reader.readexactly(take)
        if take == size:
            await reader.readexactly(2)  # the CRLF after the chunk
    return bytes(body)


async def _read_to_eof(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    while len(body) < RESPONSE_LIMIT and (chunk := await reader.read(RESPONSE_LIMIT - len(body))):
        body += chunk
    return bytes(body)


async def read_response(reader: asyncio.StreamReader) -> Response:
    """Read one HTTP/1.x response (at most RESPONSE_LIMIT bytes of body).

    Raises :class:`http.client.HTTPException` if it is cut short or malformed.
    """
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        status_line, _, header_block = head.partition(b"\r\n")
        version, _, rest = status_line.partition(b" ")
        status = rest.partition(b" ")[0]
        if not version.startswith(b"HTTP/1.") or not (status.isdigit() and len(status) == 3):
            raise http.client.BadStatusLine(status_line.decode("latin-1"))
        headers = {k.lower(): v for k, v in http.client.parse_headers(io.BytesIO(header_block)).items()}
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = await _read_chunked(reader)
        elif "content-length" in headers:
            body = await reader.readexactly(min(int(headers["content-length"]), RESPONSE_LIMIT))
        else:
            body = await _read_to_eof(reader)
    except asyncio.IncompleteReadError as exc:
        raise http.client.IncompleteRead(exc.partial) from exc
    except (asyncio.LimitOverrunError, ValueError) as exc:
        raise http.client.HTTPException(f"malformed response: {exc}") from exc
    return Response(int(status), headers, body)


async def post(
    endpoint: Endpoint, body: bytes, headers: dict[str, str], timeout: float, context: ssl.SSLContext | None
) -> Response:
    """Send one request and read its answer within ``timeout`` seconds in all; raises one
    of TRANSPORT_ERRORS if that fails. ``context`` is used for https."""
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(endpoint.host, endpoint.port, ssl=context)
        try:
            writer.write(encode_request(endpoint, body, headers))
            await writer.drain()
            return await read_response(reader)
        finally:
            writer.close()


class AsyncPublisher(PublisherBase):
    """The asyncio twin of :class:`~broker.client.Publisher`: same arguments, same
    retries and exceptions; ``sleep`` defaults to :func:`asyncio.sleep` and
    ``timeout`` bounds each whole attempt. Tasks may share one."""

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
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
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

    async def publish(self, topic: str, data: Any, idempotency_key: str | None = None) -> Published:
        """Publish ``data`` (any JSON value) to ``topic``; see :meth:`Publisher.publish`."""
        return (await self._run(self._single(topic, data, idempotency_key)))[0]

    async def publish_many(
        self, events: Iterable[Event], idempotency_key: str | None = None
    ) -> list[Published]:
        """Publish 1 to 100 events in order, as one request; see :meth:`Publisher.publish_many`."""
        return await self._run(self._batch(events, idempotency_key))

    async def _run(self, call: Call) -> list[Published]:
        outcome: list[Published] | float
        while True:
            try:
                response = await post(
                    call.endpoint, call.body, call.headers(), self.settings.timeout, self.ssl_context
                )
            except TRANSPORT_ERRORS as exc:
                outcome = call.lost(exc)
            else:
                outcome = call.answered(response)
            if isinstance(outcome, list):
                return outcome
            await self._sleep(outcome)
