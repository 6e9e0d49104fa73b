"""``POST /api/publish`` bodies over the limit are refused as they arrive, not after reading them.

Raw sockets, because an HTTP client library sends the whole body before it
reads the answer: these tests watch how much the node lets a client send.
"""

from __future__ import annotations

import json
import socket
import threading
import uuid
from typing import Any

import pytest

from broker.core import signing
from tests.node import PUBLISHER_SECRET, Node
from tests.test_publish_api import request

pytestmark = pytest.mark.node

LIMIT = 65536
MIB = 1024 * 1024
TOO_LARGE = "broker.error.too_large"


def connect(node: Node, send_buffer: int | None = None) -> socket.socket:
    sock = socket.socket()
    if send_buffer is not None:  # a small client buffer: what the client sent is what the node took
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", node.port))
    return sock


def head(headers: dict[str, str]) -> bytes:
    lines = ["POST /api/publish HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_answer(sock: socket.socket) -> tuple[int, dict[str, str], Any]:
    """Read one answer to its end of stream: (status, headers, JSON body)."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    status_line, _, rest = data.partition(b"\r\n")
    header_block, _, body = rest.partition(b"\r\n\r\n")
    headers = {k.lower(): v for k, v in (line.split(": ", 1) for line in header_block.decode().split("\r\n"))}
    if headers.get("transfer-encoding") == "chunked":
        decoded = b""
        while not body.startswith(b"0\r\n"):
            size, _, body = body.partition(b"\r\n")
            decoded, body = decoded + body[: int(size, 16)], body[int(size, 16) + 2 :]
        body = decoded
    return int(status_line.split()[1]), headers, json.loads(body)


def chunked(data: bytes, size: int = 16384) -> bytes:
    pieces = [
        b"%x\r\n%s\r\n" % (len(data[i : i + size]), data[i : i + size]) for i in range(0, len(data), size)
    ]
    return b"".join(pieces) + b"0\r\n\r\n"


def body_of(topic: str, size: int) -> bytes:
    """A valid single-event body of exactly ``size`` bytes."""
    empty = json.dumps({"topic": topic, "data": ""}).encode()
    return json.dumps({"topic": topic, "data": "x" * (size - len(empty))}).encode()


def batch_of(topic: str, size: int, events: int = 32) -> bytes:
    """A valid batch body of exactly ``size`` bytes: ``events`` events, each small enough to be
    deliverable (a single event of ``size`` bytes is not, once its position is added)."""
    empty = json.dumps({"events": [{"topic": topic, "data": ""} for _ in range(events)]}).encode()
    spare = size - len(empty)
    sizes = [spare // events + (1 if n < spare % events else 0) for n in range(events)]
    body = json.dumps({"events": [{"topic": topic, "data": "x" * n} for n in sizes]}).encode()
    assert len(body) == size
    return body


@pytest.mark.parametrize("expect", [False, True])
def test_a_declared_256_mib_body_is_refused_before_it_is_sent(node: Node, expect: bool) -> None:
    """The headers alone get the 413 (never ``100 Continue``), and the connection ends."""
    with connect(node) as sock:
        sock.sendall(
            head({"Content-Length": str(256 * MIB), **({"Expect": "100-continue"} if expect else {})})
        )
        status, headers, body = read_answer(sock)  # not one byte of the body was sent
    assert (status, headers["content-type"], headers["connection"]) == (413, "application/json", "close")
    assert body == {"error": TOO_LARGE, "message": f"body of {256 * MIB} bytes is over the limit of {LIMIT}"}


def test_a_chunked_stream_is_cut_at_the_limit(node: Node) -> None:
    """256 MiB in chunks, no length: the node answers and stops reading long before the end."""
    sent = [0]
    ended: list[BaseException] = []
    chunk = b"%x\r\n%s\r\n" % (16384, b"x" * 16384)

    with connect(node, send_buffer=16384) as sock:
        sock.sendall(head({"Transfer-Encoding": "chunked"}))

        def stream() -> None:
            try:
                while sent[0] < 256 * MIB:
                    sock.sendall(chunk)
                    sent[0] += 16384
            except OSError as exc:  # reset by the node once it stopped reading
                ended.append(exc)

        sender = threading.Thread(target=stream, daemon=True)
        sender.start()
        status, headers, body = read_answer(sock)
        sent_when_answered = sent[0]
        sender.join(timeout=30)
    assert (status, headers["content-type"]) == (413, "application/json")
    assert body == {"error": TOO_LARGE, "message": f"body is over the limit of {LIMIT} bytes"}
    assert not sender.is_alive() and ended, "the node kept reading the stream"
    assert sent_when_answered < 256 * MIB
    assert sent[0] < 8 * MIB  # the limit, plus what the kernels' socket buffers held (~0.25 MiB)


def test_a_body_exactly_at_the_limit_is_published(node: Node) -> None:
    """A batch of exactly the limit, with a declared length and chunked: both are published
    (seq 1-32 and 33-64 of a new topic)."""
    topic = f"public.limit.{uuid.uuid4().hex[:8]}"
    declared = batch_of(topic, LIMIT)
    status, answer, _ = request(node, declared)
    assert status == 200, answer
    assert answer["published"][0]["position"]["seq"] == 1
    streamed = batch_of(topic, LIMIT)
    with connect(node) as sock:
        signed = signing.sign_headers("dev", PUBLISHER_SECRET, "POST", "/api/publish", streamed)
        sock.sendall(
            head({"Transfer-Encoding": "chunked", "Connection": "close", **signed}) + chunked(streamed)
        )
        status, _, answer = read_answer(sock)
    assert status == 200, answer
    assert answer["published"][0]["position"]["seq"] == 33


def test_one_chunked_byte_over_the_limit_is_refused(node: Node) -> None:
    streamed = body_of("public.limit", LIMIT + 1)
    with connect(node) as sock:
        signed = signing.sign_headers("dev", PUBLISHER_SECRET, "POST", "/api/publish", streamed)
        sock.sendall(head({"Transfer-Encoding": "chunked", **signed}) + chunked(streamed))
        status, _, body = read_answer(sock)
    # refused by the channel as it counted, not by the API after reading it all
    assert status == 413
    assert body == {"error": TOO_LARGE, "message": f"body is over the limit of {LIMIT} bytes"}
    assert request(node, body_of("public.limit", 100))[0] == 200  # the next publisher is served
