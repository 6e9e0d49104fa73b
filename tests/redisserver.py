"""A real redis-server for tests, and a blocking stdlib link to it that never suspends.

Why: the contract suites drive engines with :func:`tests.engines.settle`,
which needs coroutines that complete without suspending. :class:`SocketLink`
implements :class:`broker.engines.redis.RedisLink` over a plain socket, so
the Redis engine's coroutines run to their end in one step against a real
Redis. Its log reader is the exception: :meth:`SocketLink.pump` runs one
``XREAD`` of it at a time, so a test decides when another node's batches
arrive. The Twisted link the node uses (:mod:`broker.router.redislink`) is
tested by the two-node end-to-end tests.
"""

from __future__ import annotations

import hashlib
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Coroutine, Generator, Sequence
from pathlib import Path
from typing import Any

from broker.history import RedisAddress
from tests.node import free_port


class RedisServer:
    """``redis-server`` on a free port (or ``port``: a restart), stopped by PID.

    No persistence by default (a restart is an empty Redis); ``persistence=True`` is AOF
    with ``appendfsync always`` in ``workdir``, so a restart in the same ``workdir`` comes
    back with every write Redis acknowledged, even after :meth:`kill`.
    """

    def __init__(self, workdir: Path, port: int | None = None, persistence: bool = False) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed: `make test` installs it (apt)")
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.log = workdir / "redis.log"
        options = ["--bind", "127.0.0.1", "--save", ""]
        options += (
            ["--appendonly", "yes", "--appendfsync", "always"] if persistence else ["--appendonly", "no"]
        )
        files = ["--dir", str(workdir), "--logfile", str(self.log)]
        self.proc = subprocess.Popen([binary, "--port", str(self.port), *options, *files])
        deadline = time.monotonic() + 10
        while True:
            try:
                if SocketLink.raw(self.port, "PING") == "PONG":
                    return
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not start: {self.log.read_text(errors='replace')}")
            time.sleep(0.02)

    def kill(self) -> None:
        """``kill -9`` the server by its PID (and reap it): nothing flushed, nothing said."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        """Stop the server by its PID (and wait for it)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class _Pause:
    """An awaitable that suspends once: where :meth:`SocketLink.pump` regains control."""

    def __await__(self) -> Generator[None, None, None]:
        yield None


class _Future:
    """A future for the engine's queued appends: awaiting it suspends (like :class:`_Pause`) until
    it is resolved, so a test resumes each waiting coroutine itself."""

    def __init__(self) -> None:
        self.done = False
        self._value: Any = None
        self._error: BaseException | None = None

    def __await__(self) -> Generator[None, None, Any]:
        while not self.done:
            yield None
        if self._error is not None:
            raise self._error
        return self._value

    def resolve(self, value: Any) -> None:
        """Done with ``value``."""
        self.done, self._value = True, value

    def fail(self, error: BaseException) -> None:
        """Done with ``error``."""
        self.done, self._error = True, error


class _Connection:
    """One blocking RESP2 connection."""

    def __init__(self, address: RedisAddress, timeout: float) -> None:
        self._sock = socket.create_connection((address.host, address.port), timeout=timeout)
        self._file = self._sock.makefile("rb")
        if address.db:
            self.command("SELECT", str(address.db))

    def send(self, *args: str) -> None:
        """Send one command without reading its reply."""
        parts = [f"*{len(args)}\r\n".encode()]
        for arg in args:
            data = arg.encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
        self._sock.sendall(b"".join(parts))

    def reply(self) -> Any:
        """The next reply (an error reply raises RuntimeError)."""
        reply = self._read()
        if isinstance(reply, RuntimeError):
            raise reply
        return reply

    def command(self, *args: str) -> Any:
        """Send one command and read its reply."""
        self.send(*args)
        return self.reply()

    def _read(self) -> Any:
        line = self._file.readline()
        if not line:
            raise ConnectionError("Redis closed the connection")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            return RuntimeError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind in (b"$", b"*") and int(rest) < 0:
            return None
        if kind == b"$":
            return self._file.read(int(rest) + 2)[:-2].decode()
        if kind == b"*":
            return [self._read() for _ in range(int(rest))]
        raise ConnectionError(f"unexpected reply {line!r}")

    def close(self) -> None:
        """Close the socket."""
        self._sock.close()


class SocketLink:
    """A blocking link: a command connection and a reader connection, as the node's link has.

    Each call completes before its coroutine goes on, except a script while
    :attr:`hold_scripts` is set: it is sent, then the coroutine suspends until
    the test resumes it, which then reads the answer (an append in flight).
    """

    def __init__(self, address: RedisAddress, timeout: float = 2.0, block_ms: int | None = 50) -> None:
        self.address = address
        self.timeout = timeout
        #: what a pumped XREAD blocks for, whatever the engine asks (tests stay fast)
        self.block_ms = block_ms
        self.hold_scripts = False
        self._commands = _Connection(address, timeout)
        self._log: _Connection | None = None
        self._reader: Coroutine[Any, Any, None] | None = None
        self.soon: list[Callable[[], None]] = []
        self.closed = False
        self.resets = 0

    @staticmethod
    def raw(port: int, *args: str) -> Any:
        """One command on a fresh connection to ``127.0.0.1:port``."""
        connection = _Connection(RedisAddress("127.0.0.1", port, 0), timeout=1.0)
        try:
            return connection.command(*args)
        finally:
            connection.close()

    def command(self, *args: str) -> Any:
        """One command on the command connection."""
        return self._commands.command(*args)

    # -- RedisLink ------------------------------------------------------------

    async def script(self, source: str, keys: Sequence[str], args: Sequence[str]) -> Any:
        """EVALSHA, loading the script on NOSCRIPT."""
        if self.hold_scripts:
            self._commands.send("EVAL", source, str(len(keys)), *keys, *args)
            await _Pause()
            return self._commands.reply()
        sha = hashlib.sha1(source.encode()).hexdigest()
        try:
            return self.command("EVALSHA", sha, str(len(keys)), *keys, *args)
        except RuntimeError as error:
            if not str(error).startswith("NOSCRIPT"):
                raise
        return self.command("EVAL", source, str(len(keys)), *keys, *args)

    async def block_read(self, stream: str, after: str, count: int, block_ms: int) -> Any:
        """Suspend (until the next :meth:`pump`), then one ``XREAD BLOCK``."""
        await _Pause()
        block = block_ms if self.block_ms is None else self.block_ms
        if self._log is None:
            self._log = _Connection(self.address, self.timeout + block / 1000)
        return self._log.command("XREAD", "BLOCK", str(block), "COUNT", str(count), "STREAMS", stream, after)

    async def sleep(self, seconds: float) -> None:
        """Suspend until the next :meth:`pump`."""
        await _Pause()

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        """Run ``coroutine`` to its first suspension; :meth:`pump` resumes it."""
        self._reader = coroutine
        self._step()

    def call_soon(self, function: Callable[[], None]) -> None:
        """Kept until :meth:`run_soon` (the test's "next turn")."""
        self.soon.append(function)

    def future(self) -> _Future:
        """A future the test's own resumptions drive."""
        return _Future()

    def reset_reader(self) -> None:
        """Close the reader's connection; its next read opens another (counted in :attr:`resets`)."""
        self.resets += 1
        if self._log is not None:
            self._log.close()
            self._log = None

    def close(self) -> None:
        """Close the socket and the reader."""
        self.closed = True
        if self._reader is not None:
            self._reader.close()
        for connection in (self._commands, self._log):
            if connection is not None:
                connection.close()

    # -- driving it ------------------------------------------------------------

    def run_soon(self) -> None:
        """Run what :meth:`call_soon` kept."""
        soon, self.soon = self.soon, []
        for function in soon:
            function()

    def _step(self) -> None:
        assert self._reader is not None, "the engine's reader was never spawned (subscribe)"
        try:
            self._reader.send(None)
        except StopIteration:
            self._reader = None

    def pump(self, times: int = 1) -> None:
        """Resume the reader ``times`` times (each: one XREAD and what it feeds), then the soon calls."""
        for _ in range(times):
            self._step()
        self.run_soon()


#: The session's server, once the ``redis_server`` fixture started it (see tests/conftest.py).
SERVER: RedisServer | None = None


def server() -> RedisServer:
    """The session's redis-server: ask for the ``redis_server`` fixture first."""
    if SERVER is None:
        raise RuntimeError("no redis-server: the test must request the redis_server fixture")
    return SERVER


def store_link(block_ms: int | None = 50) -> SocketLink:
    """A fresh link to the session's server."""
    from broker.history import parse_redis_url

    return SocketLink(parse_redis_url(server().url), block_ms=block_ms)
