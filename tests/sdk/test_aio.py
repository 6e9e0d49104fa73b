"""The asyncio publisher's HTTP/1.1 exchange, fed bytes directly (no sockets)."""

from __future__ import annotations

import asyncio
import http.client

import pytest

from broker.client.aio import encode_request, read_response
from broker.client.core import RESPONSE_LIMIT, Endpoint, Response


def read(raw: bytes) -> Response:
    async def main() -> Response:
        reader = asyncio.StreamReader()
        reader.feed_data(raw)
        reader.feed_eof()
        return await read_response(reader)

    return asyncio.run(main())


def test_the_request_bytes() -> None:
    endpoint = Endpoint("http", "::1", 8080, "/api/publish")
    raw = encode_request(endpoint, b'{"a":1}', {"Content-Type": "application/json", "X-Broker-Key": "dev"})
    assert raw == (
        b"POST /api/publish HTTP/1.1\r\nHost: [::1]:8080\r\nContent-Type: application/json\r\n"
        b'X-Broker-Key: dev\r\nContent-Length: 7\r\n\r\n{"a":1}'
    )


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nRetry-After: 3\r\n\r\nbodyEXTRA",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nRetry-After: 3\r\n\r\n"
        b"1;name=value\r\nb\r\n3\r\nody\r\n0\r\nTrailer: x\r\n\r\n",
        b"HTTP/1.0 200\r\nretry-after: 3\r\n\r\nbody",
    ],
    ids=["length", "chunked", "eof"],
)
def test_responses_are_read_in_every_framing(raw: bytes) -> None:
    response = read(raw)
    assert (response.status, response.body) == (200, b"body")
    assert response.headers["retry-after"] == "3"


@pytest.mark.parametrize("framing", [f"Content-Length: {RESPONSE_LIMIT + 10}\r\n", "", "chunked"])
def test_a_body_is_cut_at_the_limit(framing: str) -> None:
    data = b"x" * (RESPONSE_LIMIT + 10)
    if framing == "chunked":
        head, payload = "Transfer-Encoding: chunked\r\n", b"%x\r\n%s\r\n0\r\n\r\n" % (len(data), data)
    else:
        head, payload = framing, data
    response = read(b"HTTP/1.1 200 OK\r\n" + head.encode() + b"\r\n" + payload)
    assert response.body == b"x" * RESPONSE_LIMIT


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b"", http.client.IncompleteRead),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n", http.client.IncompleteRead),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nbody", http.client.IncompleteRead),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nbo", http.client.IncompleteRead),
        (b"SSH-2.0-OpenSSH\r\n\r\n", http.client.BadStatusLine),
        (b"HTTP/1.1 2000 OK\r\n\r\n", http.client.BadStatusLine),
        (b"HTTP/1.1 200 OK\r\nContent-Length: four\r\n\r\nbody", http.client.HTTPException),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", http.client.HTTPException),
        (b"HTTP/1.1 200 OK\r\nX: " + b"y" * (1 << 17) + b"\r\n\r\n", http.client.HTTPException),
    ],
    ids=["nothing", "cut-head", "cut-body", "cut-chunk", "not-http", "bad-status", "bad-length", "bad-chunk",
         "huge-head"],
)  # fmt: skip
def test_malformed_responses_raise_http_client_errors(raw: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        read(raw)
