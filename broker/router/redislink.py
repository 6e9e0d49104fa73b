"""The Redis engine's link inside the router: txredisapi on Twisted's reactor.

Why a module of its own: :mod:`broker.engines.redis` holds the engine's
logic and no Twisted; this adapter gives it the
:class:`~broker.engines.redis.RedisLink` it speaks through. What txredisapi
needs to be safe here (measured while designing issue 14):

- ``convertNumbers=False``, or a payload ``"123"`` comes back as an int;
- a timeout on every call: while Redis is down txredisapi waits for the
  connection forever, so a publish would hang instead of being refused;
- a connection of its own for the blocking ``XREAD``, so a blocked read never
  delays an append queued behind it;
- after a reconnect nothing is re-established for us: the engine's reader
  simply reads on from the last cursor it took, which is all it listens on.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import txredisapi
from twisted.internet import reactor as _reactor
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.task import deferLater
from twisted.logger import Logger

from broker.engines.redis import RedisLink
from broker.history import RedisAddress

_log = Logger(namespace="broker.redis")


class TwistedRedisLink:
    """Two lazy txredisapi connections: one for scripts (pipelined, in order), one for the log reader."""

    def __init__(self, address: RedisAddress, timeout: float, reactor: Any = _reactor) -> None:
        self._address = address
        self._timeout = timeout
        self._reactor = reactor
        self._commands = self._connect(timeout)
        self._reader: Any = None

    def _connect(self, reply_timeout: float) -> Any:
        address = self._address
        return txredisapi.lazyConnection(
            address.host,
            address.port,
            dbid=address.db,
            password=address.password,
            username=address.username,
            convertNumbers=False,
            connectTimeout=self._timeout,
            replyTimeout=reply_timeout,
        )

    def _bounded(self, deferred: Deferred[Any], seconds: float) -> Deferred[Any]:
        # replyTimeout only counts once a command is sent; this also bounds the wait for a connection
        return deferred.addTimeout(seconds, self._reactor)

    async def script(self, source: str, keys: Sequence[str], args: Sequence[str]) -> Any:
        """EVALSHA ``source`` (txredisapi loads it on NOSCRIPT), within the timeout."""
        return await self._bounded(self._commands.eval(source, list(keys), list(args)), self._timeout)

    async def block_read(self, stream: str, after: str, count: int, block_ms: int) -> Any:
        """One ``XREAD BLOCK`` on the reader's own connection, within the block time plus the timeout."""
        if self._reader is None:
            self._reader = self._connect(block_ms / 1000 + self._timeout)
        command = self._reader.execute_command(
            "XREAD", "BLOCK", str(block_ms), "COUNT", str(count), "STREAMS", stream, after
        )
        return await self._bounded(command, block_ms / 1000 + 2 * self._timeout)

    async def sleep(self, seconds: float) -> None:
        """Resume after ``seconds`` on the reactor."""
        await deferLater(self._reactor, seconds)

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        """Run ``coroutine`` on the reactor; a failure that escapes it is logged."""
        ensureDeferred(coroutine).addErrback(
            lambda failure: _log.failure("Redis background task failed", failure)
        )

    def call_soon(self, function: Callable[[], None]) -> None:
        """Call ``function`` on the reactor's next turn."""
        self._reactor.callLater(0, function)

    def close(self) -> None:
        """Disconnect both connections (the reader's wait ends with an error it ignores)."""
        for connection in (self._commands, self._reader):
            if connection is not None:
                connection.disconnect()


def connect(address: RedisAddress, timeout: float) -> RedisLink:
    """The router's :data:`broker.engines.redis.Connect`."""
    return TwistedRedisLink(address, timeout)
