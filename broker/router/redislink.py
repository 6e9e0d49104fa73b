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
  simply reads on from the last cursor it took, which is all it listens on;
  a reader that reads but no longer sees its node's probes gets a fresh
  connection (:meth:`TwistedRedisLink.reset_reader`);
- a connection whose call timed out is thrown away and the next call opens a
  fresh one: after a Redis that hung (SIGSTOP, a partition) txredisapi 1.6
  aborts the connection and then answers every later call on that handler
  with ``ConnectionError("Not connected")``, for good, even once Redis
  answers again (measured: tests/test_cluster_outage.py); an error *reply*
  from Redis (``ResponseError``) keeps the connection;
- its reconnect backoff grows to 10 s (``RedisFactory.maxDelay``, read at each
  attempt), so a node could stay refusing publishes for 10 s after Redis is
  back: each connection's factory gets :data:`RECONNECT_MAX_DELAY` instead;
- a call that timed out waiting for a connection was never sent
  (:class:`~broker.engines.redis_wire.NotSent`: Redis did nothing), one that
  timed out after it was sent may have run: the engine tells its publishers
  which; so a script call first takes the connection (bounded), then sends
  ``EVALSHA`` on it with the script's digest computed once;
- txredisapi's own reply parser (without hiredis) pauses the transport and
  waits for the reactor's next turn after every bulk string of a reply (a log
  read of 512 entries took over 5,000 reactor turns), and its command builder
  makes several calls per argument, so each connection's protocol reads and
  writes RESP with :mod:`broker.router.resp` instead.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import txredisapi
from twisted.internet import defer
from twisted.internet import reactor as _reactor
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure

from broker.engines.redis_wire import ErrorReply, Future, NotSent, RedisLink
from broker.errors import RedisProtocolError
from broker.history import RedisAddress
from broker.router import resp
from broker.router.crossbar import sendnow

_log = Logger(namespace="broker.redis")

#: The longest pause between two attempts to reconnect to Redis (s): once it is back, a node
#: stores and delivers again within about this long.
RECONNECT_MAX_DELAY = 1.0


class TwistedRedisLink:
    """Two lazy txredisapi connections: one for scripts (pipelined, in order), one for the log reader."""

    def __init__(self, address: RedisAddress, timeout: float, reactor: Any = _reactor) -> None:
        self._address = address
        self._timeout = timeout
        self._reactor = reactor
        self._commands = self._connect(timeout)
        self._reader: Any = None
        #: each script's SHA-1, computed once
        self._digests: dict[str, str] = {}

    def _connect(self, reply_timeout: float) -> Any:
        address = self._address
        connection = txredisapi.lazyConnection(
            address.host,
            address.port,
            dbid=address.db,
            password=address.password,
            username=address.username,
            convertNumbers=False,
            connectTimeout=self._timeout,
            replyTimeout=reply_timeout,
        )
        factory = getattr(connection, "_factory", None)  # txredisapi 1.6's RedisFactory
        if factory is not None:
            factory.protocol = _Protocol  # before it connects: the reactor's next turn at the soonest
            factory.maxDelay = RECONNECT_MAX_DELAY
            factory.initialDelay = min(factory.initialDelay, RECONNECT_MAX_DELAY / 4)
            ready = getattr(factory, "deferred", None)  # a lazy connection's "connected": nobody waits
            if ready is not None:  # on it, so a failed first connection would log "Unhandled error"
                ready.addErrback(lambda failure: None)
        return connection

    def _bounded(self, deferred: Deferred[Any], seconds: float) -> Deferred[Any]:
        # replyTimeout only counts once a command is sent; this also bounds the wait for a connection

        def late(failure: Failure) -> None:  # Twisted's says "(1.1, 'Deferred')"; the log says this
            failure.trap(defer.TimeoutError)
            raise TimeoutError(f"Redis did not answer within {seconds:g} s")

        return deferred.addTimeout(seconds, self._reactor).addErrback(late)

    async def _protocol(self, connection: Any, seconds: float) -> Any:
        """``connection``'s connected protocol: at once if it has one, else the next within ``seconds``."""
        pending = connection._factory.connectionQueue.pending  # txredisapi 1.6: its connected protocols
        if pending and pending[0].connected:
            return pending[0]
        return await self._bounded(connection._factory.getConnection(peek=True), seconds)

    async def script(self, source: str, keys: Sequence[str], args: Sequence[str]) -> Any:
        """EVALSHA ``source`` (EVAL on NOSCRIPT), within the timeout: :class:`NotSent` if no
        connection came in time, :class:`ErrorReply` for Redis's error reply."""
        connection = self._commands
        started = self._reactor.seconds()
        try:
            try:
                protocol = await self._protocol(connection, self._timeout)
            except Exception as error:
                why = f"within {self._timeout:g} s" if isinstance(error, TimeoutError) else f"({error})"
                raise NotSent(f"no connection to Redis {why}") from error
            sha = self._digests.get(source)
            if sha is None:
                sha = self._digests[source] = hashlib.sha1(source.encode()).hexdigest()  # noqa: S324
            left = max(self._timeout - (self._reactor.seconds() - started), 0.001)
            try:
                return await protocol.call(["EVALSHA", sha, len(keys), *keys, *args], left)
            except txredisapi.ResponseError as error:
                if not str(error).startswith("NOSCRIPT"):
                    raise
            left = max(self._timeout - (self._reactor.seconds() - started), 0.001)
            return await protocol.call(["EVAL", source, len(keys), *keys, *args], left)
        except txredisapi.ResponseError as error:
            raise ErrorReply(str(error)) from error
        except Exception:
            if self._commands is connection:  # the first of its calls to fail replaces it
                self._commands = self._connect(self._timeout)
                _drop(connection)
            raise

    async def block_read(self, stream: str, after: str, count: int, block_ms: int) -> Any:
        """One ``XREAD BLOCK`` on the reader's own connection, within the block time plus the timeout."""
        if self._reader is None:
            self._reader = self._connect(block_ms / 1000 + self._timeout)
        reader = self._reader
        try:
            protocol = await self._protocol(reader, block_ms / 1000 + 2 * self._timeout)
            command = ["XREAD", "BLOCK", str(block_ms), "COUNT", str(count), "STREAMS", stream, after]
            return await protocol.call(command, block_ms / 1000 + self._timeout)
        except txredisapi.ResponseError:
            raise
        except Exception:
            if self._reader is reader:  # the next read opens a fresh connection
                self._reader = None
                _drop(reader)
            raise

    def reset_reader(self) -> None:
        """Drop the reader's connection (its probe did not come back): the next read opens another."""
        reader, self._reader = self._reader, None
        if reader is not None:
            _drop(reader)

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

    def future(self) -> Future:
        """A :class:`Deferred`-backed future on the reactor."""
        return _Future()

    def close(self) -> None:
        """Disconnect both connections (the reader's wait ends with an error it ignores)."""
        for connection in (self._commands, self._reader):
            if connection is not None:
                connection.disconnect()


class _Protocol(txredisapi.BaseRedisProtocol):  # type: ignore[misc]
    """txredisapi's protocol, its replies read by :class:`~broker.router.resp.Replies`, its
    commands written by :func:`~broker.router.resp.command`, and :meth:`call` for the link's
    commands (no pub/sub, no MULTI)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._replies = resp.Replies(txredisapi.ResponseError)

    def dataReceived(self, data: bytes, unpause: bool = False) -> None:
        """Hand on every complete reply received so far; bytes that are no reply fail every call
        waiting on this connection with :class:`~broker.errors.RedisProtocolError` (Redis may
        have run them) and drop it (the next call opens another)."""
        self._replies.feed(data)
        try:
            replies = self._replies.take()
        except RedisProtocolError as error:
            _log.error("dropping the Redis connection: {error}", error=str(error))
            while self.replyQueue.waiting:
                self.replyQueue.put(error)
            self.transport.abortConnection()
            return
        for reply in replies:
            self.replyReceived(reply)

    def _build_command(self, *args: Any, **kwargs: Any) -> bytes:
        """The command's bytes (txredisapi's keyword arguments say nothing about them)."""
        return resp.command(args)

    def call(self, args: Sequence[str | int], seconds: float) -> Deferred[Any]:
        """Send one command now; its reply (an error reply raised as ``ResponseError``).

        What ``execute_command`` does, with one timer instead of its Deferred chain: each call
        keeps its place in the connection's reply queue, also once its caller stopped waiting,
        so no later call gets another's reply; and a call with no reply within ``seconds`` fails
        with every call still waiting on this connection, which is then aborted (txredisapi's
        reply timeout)."""
        if not self.connected:
            raise ConnectionError("Not connected")
        self._write(resp.command(args))
        result: Deferred[Any] = Deferred()
        timer = self.callLater(seconds, self._expire, result, seconds)
        self.replyQueue.get().addCallback(_settle, result, timer)
        return result

    def _write(self, data: bytes) -> None:
        """Send ``data`` now if nothing waits before it in the TCP transport's buffer: one
        ``send``, where ``transport.write`` registers the socket for writing, sends on the
        reactor's next pass and unregisters it (two ``epoll_ctl`` and a pass per command,
        with a call in flight at a time); what the socket does not take, or anything behind
        buffered bytes, goes through the buffer, in order. A lost connection is left to the
        buffered write to find (the reactor then closes it and fails the calls). Twisted's
        private buffer fields are read by the door's :func:`broker.router.crossbar.sendnow.send_now`,
        only on the TCP classes it checked."""
        sendnow.send_now(self.transport, data)

    def _expire(self, result: Deferred[Any], seconds: float) -> None:
        text = f"Redis did not answer within {seconds:g} s"
        result.errback(TimeoutError(text))
        while self.replyQueue.waiting:
            self.replyQueue.put(TimeoutError(text))
        self.transport.abortConnection()


def _settle(reply: Any, result: Deferred[Any], timer: Any) -> None:
    """A reply for :meth:`_Protocol.call` (ignored if its caller's time ran out)."""
    if result.called:
        return
    timer.cancel()
    if isinstance(reply, Exception):
        result.errback(Failure(reply))
    else:
        result.callback(reply)


class _Future:
    """:class:`~broker.engines.redis_wire.Future` over a Deferred (resuming its waiter at once)."""

    def __init__(self) -> None:
        self._deferred: Deferred[Any] = Deferred()

    def __await__(self) -> Any:
        return self._deferred.__await__()

    def resolve(self, value: Any) -> None:
        """Resume the waiter with ``value``."""
        self._deferred.callback(value)

    def fail(self, error: BaseException) -> None:
        """Resume the waiter by raising ``error``."""
        self._deferred.errback(Failure(error))


def _drop(connection: Any) -> None:
    """Disconnect a connection given up on; whatever its disconnect says is of no use."""
    try:
        ensureDeferred(connection.disconnect()).addErrback(lambda failure: None)
    except Exception:  # noqa: S110 - a connection already gone has nothing to close
        pass


def connect(address: RedisAddress, timeout: float) -> RedisLink:
    """The router's :data:`broker.engines.redis.Connect`."""
    return TwistedRedisLink(address, timeout)
