"""Lean WAMP-over-WebSocket subscribers for load: thousands of connections per process.

Why not autobahn or ``websockets``: holding 20,000+ idle subscribed
connections, or receiving 50k events/s on one shared core, the client must
cost far less than the router it measures. Each connection here is one
``asyncio.Protocol`` that speaks just enough: the HTTP upgrade, a JSON HELLO
(anonymous), one SUBSCRIBE, then it counts EVENT frames and answers pings
(Broker's node pings every 10 s and drops a peer that does not answer).
Client frames use an all-zero mask, which RFC 6455 allows (the key must be
present, its value is the client's choice), so no payload is XOR-ed.

A :class:`Fleet` is a group of such processes driven from the parent over
pipes: open more connections, wait until every connection has seen N events,
read counters, close. Connections spread their source addresses over
127.0.0.2..; each source address has its own 28k ephemeral ports.
"""

from __future__ import annotations

import asyncio
import base64
import json
import multiprocessing
import os
import resource
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

OP_TEXT, OP_CLOSE, OP_PING, OP_PONG = 0x1, 0x8, 0x9, 0xA
HELLO, WELCOME, SUBSCRIBED, EVENT = 1, 2, 33, 36

#: Handshakes in flight per process: enough to keep the router busy, few enough
#: that a connection's HELLO never waits behind thousands of others.
IN_FLIGHT = 64


def raise_nofile() -> int:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit (inherited by children)."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def frame(opcode: int, payload: bytes) -> bytes:
    """One final client frame, masked with the zero key."""
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    return header + b"\0\0\0\0" + payload


class Refused(Exception):
    """The router refused or closed a connection; the message says how."""


class Subscriber(asyncio.Protocol):
    """One connection: handshake, HELLO, SUBSCRIBE to ``topic``, then count events."""

    def __init__(self, request: bytes, topic: str) -> None:
        self.request = request
        self.topic = topic
        self.buffer = b""
        self.upgraded = False
        self.transport: asyncio.Transport | None = None
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.events = 0
        self.last_event_at = 0.0
        self.closed: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = self.closed or f"connection lost ({exc!r})"
        if not self.ready.done():
            self.ready.set_exception(Refused(self.closed))

    def send(self, msg: list[Any]) -> None:
        assert self.transport is not None
        self.transport.write(frame(OP_TEXT, json.dumps(msg).encode()))

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.upgraded:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            status = self.buffer[: self.buffer.find(b"\r\n")]
            if b" 101 " not in status:
                self.fail(f"handshake refused: {status.decode('latin-1')}")
                return
            self.upgraded = True
            self.buffer = self.buffer[end + 4 :]
            self.send([HELLO, "app", {"roles": {"subscriber": {}}}])
        self.read_frames()

    def read_frames(self) -> None:
        buf = self.buffer
        pos = 0
        while len(buf) - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            n, start = b1 & 0x7F, pos + 2
            if n == 126:
                if len(buf) - pos < 4:
                    break
                n, start = struct.unpack_from("!H", buf, pos + 2)[0], pos + 4
            elif n == 127:
                if len(buf) - pos < 10:
                    break
                n, start = struct.unpack_from("!Q", buf, pos + 2)[0], pos + 10
            if len(buf) < start + n:
                break
            self.on_frame(b0 & 0x0F, buf[start : start + n])
            pos = start + n
        self.buffer = buf[pos:]

    def on_frame(self, opcode: int, payload: bytes) -> None:
        assert self.transport is not None
        if opcode == OP_TEXT:
            if self.ready.done():  # subscribed: everything from now on is an EVENT
                self.events += 1
                self.last_event_at = time.monotonic()
                return
            kind = json.loads(payload)[0]
            if kind == WELCOME:
                self.send([32, 1, {}, self.topic])
            elif kind == SUBSCRIBED:
                self.ready.set_result(None)
            else:
                self.fail(f"WAMP answer {payload[:120]!r}")
        elif opcode == OP_PING:
            self.transport.write(frame(OP_PONG, payload))
        elif opcode == OP_CLOSE:
            code = struct.unpack_from("!H", payload)[0] if len(payload) >= 2 else None
            self.fail(f"closed by the router ({code} {payload[2:].decode('utf-8', 'replace')})")

    def fail(self, reason: str) -> None:
        self.closed = reason
        if not self.ready.done():
            self.ready.set_exception(Refused(reason))
        if self.transport is not None:
            self.transport.abort()


@dataclass
class _Worker:
    """The state of one client process."""

    url: str
    origin: str
    topic: str
    sources: list[str]
    subscribers: list[Subscriber] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)

    def request(self) -> bytes:
        parts = urlsplit(self.url)
        key = base64.b64encode(os.urandom(16)).decode()
        return (
            f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Protocol: wamp.2.json\r\nOrigin: {self.origin}\r\n\r\n"
        ).encode()

    async def open(self, count: int, timeout: float) -> dict[str, Any]:
        """Open ``count`` more subscribed connections, stopping early once any fails."""
        parts = urlsplit(self.url)
        loop = asyncio.get_running_loop()
        gate = asyncio.Semaphore(IN_FLIGHT)
        failed = asyncio.Event()
        deadline = time.monotonic() + timeout
        opened = 0

        async def one(index: int) -> None:
            nonlocal opened
            async with gate:
                if failed.is_set() or time.monotonic() > deadline:
                    return
                source = self.sources[index % len(self.sources)]
                try:
                    _t, sub = await asyncio.wait_for(
                        loop.create_connection(
                            lambda: Subscriber(self.request(), self.topic),
                            parts.hostname,
                            parts.port,
                            local_addr=(source, 0),
                        ),
                        10,
                    )
                    self.subscribers.append(sub)
                    await asyncio.wait_for(asyncio.shield(sub.ready), 15)
                    opened += 1
                except Refused as exc:
                    self._failed(str(exc))
                    failed.set()
                except OSError as exc:  # TimeoutError included
                    self._failed(f"{type(exc).__name__} (errno {exc.errno})")
                    failed.set()

        start = len(self.subscribers)
        await asyncio.gather(*(one(start + i) for i in range(count)))
        return {"opened": opened, "failures": dict(self.failures)}

    def _failed(self, reason: str) -> None:
        self.failures[reason] = self.failures.get(reason, 0) + 1

    async def wait_event(self, since: float, timeout: float) -> dict[str, Any]:
        """Wait until every live subscriber got an event after ``since`` (a monotonic time, the
        same clock in every process); how many did, and when the last one arrived."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(s.last_event_at >= since for s in self.subscribers if s.closed is None):
                break
            await asyncio.sleep(0.005)
        return self.stats() | {
            "reached": sum(s.last_event_at >= since for s in self.subscribers),
            "last_at": max((s.last_event_at for s in self.subscribers), default=0.0),
        }

    def stats(self) -> dict[str, Any]:
        live = sum(s.closed is None for s in self.subscribers)
        return {
            "live": live,
            "events": sum(s.events for s in self.subscribers),
            "closed": len(self.subscribers) - live,
            "failures": dict(self.failures),
        }

    def close(self) -> None:
        for sub in self.subscribers:
            if sub.transport is not None:
                sub.transport.abort()


def _serve(conn: Any, url: str, origin: str, topic: str, sources: list[str]) -> None:
    raise_nofile()
    worker = _Worker(url, origin, topic, sources)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        commands: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
        loop.add_reader(conn.fileno(), lambda: commands.put_nowait(conn.recv()))
        while True:
            command, *args = await commands.get()
            if command == "open":
                conn.send(await worker.open(*args))
            elif command == "wait_event":
                conn.send(await worker.wait_event(*args))
            elif command == "stats":
                conn.send(worker.stats())
            elif command == "close":
                worker.close()
                conn.send(worker.stats())
                return

    asyncio.run(main())


class Fleet:
    """``processes`` client processes against one WebSocket URL, driven in lock-step.

    ``targets`` (``(url, origin)`` pairs) spreads the processes round-robin over
    several nodes instead: process ``i`` connects to ``targets[i % len(targets)]``.
    """

    def __init__(
        self,
        url: str,
        origin: str,
        topic: str,
        processes: int,
        sources: int = 8,
        targets: Sequence[tuple[str, str]] = (),
    ) -> None:
        ctx = multiprocessing.get_context("spawn")
        addresses = [f"127.0.0.{2 + i}" for i in range(sources)]
        targets = list(targets) or [(url, origin)]
        self.conns = []
        self.procs = []
        for i in range(processes):
            parent, child = ctx.Pipe()
            url_i, origin_i = targets[i % len(targets)]
            proc = ctx.Process(target=_serve, args=(child, url_i, origin_i, topic, addresses), daemon=True)
            proc.start()
            self.conns.append(parent)
            self.procs.append(proc)

    def _all(self, command: tuple[Any, ...], timeout: float) -> list[dict[str, Any]]:
        for conn in self.conns:
            conn.send(command)
        answers = []
        deadline = time.monotonic() + timeout
        for conn in self.conns:
            if not conn.poll(max(0.0, deadline - time.monotonic())):
                raise TimeoutError(f"client process did not answer {command[0]!r} within {timeout:.0f} s")
            answers.append(conn.recv())
        return answers

    def open(self, total: int, timeout: float) -> dict[str, Any]:
        """Open ``total`` more connections spread over the processes; the sum of their answers."""
        n = len(self.conns)
        shares = [total // n + (1 if i < total % n else 0) for i in range(n)]
        for conn, share in zip(self.conns, shares, strict=True):
            conn.send(("open", share, timeout))
        answers = []
        for conn in self.conns:
            if not conn.poll(timeout + 30):
                raise TimeoutError(f"client process did not finish opening within {timeout + 30:.0f} s")
            answers.append(conn.recv())
        failures: dict[str, int] = {}
        for answer in answers:
            for reason, count in answer["failures"].items():
                failures[reason] = failures.get(reason, 0) + count
        return {"opened": sum(a["opened"] for a in answers), "failures": failures}

    def wait_event(self, since: float, timeout: float) -> dict[str, Any]:
        """Wait until every live connection got an event after ``since``; how many, and when
        the last arrived."""
        answers = self._all(("wait_event", since, timeout), timeout + 30)
        return {
            "live": sum(a["live"] for a in answers),
            "reached": sum(a["reached"] for a in answers),
            "last_at": max(a["last_at"] for a in answers),
        }

    def stats(self) -> dict[str, int]:
        """Live and closed connections, and events received, over all processes."""
        answers = self._all(("stats",), 30)
        return {key: sum(a[key] for a in answers) for key in ("live", "closed", "events")}

    def close(self) -> None:
        try:
            self._all(("close",), 30)
        except (TimeoutError, OSError, EOFError):
            pass
        for proc in self.procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
                proc.join()
