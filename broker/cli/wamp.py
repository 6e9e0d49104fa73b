"""One-shot WAMP sessions over Twisted for the ``broker`` command line.

Why not Autobahn's ``ApplicationRunner`` or ``Component``: both own the
reactor's lifetime and report connection failures and retries through their
own logging, so a failed ``broker publish`` would print tracebacks or linger.
Here a command makes exactly one connection attempt, every way it can fail
becomes a :class:`~broker.errors.BrokerError` with a one-line message, and the
session is left with a WAMP GOODBYE and a WebSocket close, so nothing is left
pending to be reported at exit. Ctrl-C and SIGTERM cancel the running command,
which then leaves cleanly too. Imported lazily: it pulls in Twisted.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Final

from autobahn.twisted.wamp import ApplicationSession
from autobahn.twisted.websocket import WampWebSocketClientFactory, WampWebSocketClientProtocol
from autobahn.wamp import auth
from autobahn.wamp.exception import ApplicationError, TransportLost
from autobahn.wamp.serializer import JsonSerializer
from autobahn.wamp.types import (
    Challenge,
    CloseDetails,
    ComponentConfig,
    EventDetails,
    PublishOptions,
    SessionDetails,
    SubscribeOptions,
)
from autobahn.websocket.util import parse_url
from twisted.internet import defer
from twisted.internet import reactor as _reactor
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.error import ConnectError, ConnectionRefusedError, DNSLookupError
from twisted.internet.ssl import optionsForClientTLS
from twisted.python.failure import Failure

from broker.client.wamp import DETAILS_KWARG, RECOVER_TIMEOUT, Gapless, describe_failure
from broker.core.uris import is_reserved
from broker.errors import BrokerError, ConnectionFailed, WampError
from broker.history import POSITION_KEY

#: The global reactor; its interfaces are zope ones, which mypy cannot follow.
reactor: Any = _reactor

#: Seconds allowed to connect and join, and again to leave.
TIMEOUT = 10.0


@dataclass(frozen=True)
class Target:
    """Where and as whom to join: ``secret`` None joins anonymously."""

    url: str
    realm: str
    authid: str | None = None
    secret: str | None = field(default=None, repr=False)
    #: Where ``secret`` came from (``the environment variable BROKER_BACKEND_SECRET``), named
    #: when the router refuses the authentication.
    secret_source: str | None = None

    def __post_init__(self) -> None:
        try:
            parse_url(self.url)
        except ValueError as exc:
            raise BrokerError(f"{exc} ({self.url!r})") from None


#: What ``tail`` hands each event to: ``(topic, args, kwargs)``.
EventSink = Callable[[str, list[Any], dict[str, Any]], None]

#: The ABORT reasons of a refused authentication.
_AUTH_REFUSED: Final = frozenset({"wamp.error.not_authorized", "wamp.error.authentication_failed"})


class _Session(ApplicationSession):
    """Joins as ``target`` says and reports the join and the disconnect as Deferreds."""

    def __init__(self, target: Target) -> None:
        super().__init__(ComponentConfig(realm=target.realm))
        self.target = target
        self.protocol: WampWebSocketClientProtocol | None = None
        self.joined: defer.Deferred[None] = defer.Deferred()
        self.disconnected: defer.Deferred[None] = defer.Deferred()
        #: How the router ended the session (its GOODBYE or ABORT), once it has.
        self.left: CloseDetails | None = None

    def onConnect(self) -> None:
        if self.target.secret is None:
            self.join(self.target.realm, authmethods=["anonymous"])
        else:
            self.join(self.target.realm, authmethods=["wampcra"], authid=self.target.authid)

    def onChallenge(self, challenge: Challenge) -> str:
        if challenge.method != "wampcra" or self.target.secret is None:
            # autobahn answers ABORT wamp.error.cannot_authenticate with this message
            raise BrokerError(f"the router asked for {challenge.method!r} authentication")
        key: str | bytes = self.target.secret
        extra = challenge.extra
        if "salt" in extra:
            key = auth.derive_key(key, extra["salt"], extra.get("iterations"), extra.get("keylen"))
        signature: str = auth.compute_wcs(key, extra["challenge"])
        return signature

    def onJoin(self, details: SessionDetails) -> None:
        self.joined.callback(None)

    def onLeave(self, details: CloseDetails) -> Any:
        self.left = details
        message = details.message or ""
        source = self.target.secret_source
        if not self.joined.called and source is not None and details.reason in _AUTH_REFUSED:
            # which of the secrets (environment, file) to fix
            message += f" (the secret for {self.target.authid!r} came from {source})"
        self.fail(WampError(details.reason or "wamp.close.normal", message))
        return super().onLeave(details)

    def onDisconnect(self) -> None:
        self.fail(ConnectionFailed(f"{self.target.url}: the connection closed"))
        self.disconnected.callback(None)
        super().onDisconnect()

    def fail(self, error: BrokerError) -> None:
        """Fail the join with ``error``, unless it has already succeeded or failed."""
        if not self.joined.called:
            self.joined.errback(error)


def _wamp_error(exc: ApplicationError) -> WampError:
    return WampError(exc.error, " ".join(str(a) for a in exc.args))


async def _join(target: Target) -> _Session:
    """Connect to ``target.url`` and join; the session is joined when this returns."""
    is_secure, host, port, _, _, _ = parse_url(target.url)
    session = _Session(target)
    factory = WampWebSocketClientFactory(lambda: session, url=target.url, serializers=[JsonSerializer()])
    endpoint: Any = HostnameEndpoint(reactor, host, port, timeout=TIMEOUT)
    if is_secure:
        endpoint = wrapClientTLS(optionsForClientTLS(host), endpoint)
    try:
        protocol: WampWebSocketClientProtocol = await endpoint.connect(factory)
    except ConnectionRefusedError:
        raise ConnectionFailed(
            f"cannot connect to {target.url}: connection refused (is the node running?)"
        ) from None
    except (ConnectError, DNSLookupError) as exc:
        raise ConnectionFailed(f"cannot connect to {target.url}: {exc}") from None
    session.protocol = protocol

    def closed(_: object) -> None:
        # fires too when the WebSocket handshake fails, before any session exists
        reason = protocol.wasNotCleanReason or "the connection closed"
        session.fail(ConnectionFailed(f"{target.url}: {reason}"))

    protocol.is_closed.addCallback(closed)
    session.joined.addTimeout(TIMEOUT, reactor)
    try:
        await session.joined
    except defer.TimeoutError:
        protocol.dropConnection(abort=True)
        raise ConnectionFailed(f"{target.url}: no session within {TIMEOUT:g} s") from None
    return session


async def _leave(session: _Session) -> None:
    """Say GOODBYE and wait (briefly) for the connection to close."""
    if session.is_attached():
        session.leave()
    elif session.is_connected():
        session.disconnect()
    else:
        return
    session.disconnected.addTimeout(TIMEOUT, reactor)
    try:
        await session.disconnected
    except defer.TimeoutError:
        if session.protocol is not None:
            session.protocol.dropConnection(abort=True)


@contextlib.asynccontextmanager
async def _joined(target: Target) -> AsyncIterator[Any]:
    """A joined session for one request: WAMP errors and a lost connection as Broker's errors, then leave."""
    session = await _join(target)
    try:
        yield session
    except ApplicationError as exc:
        raise _wamp_error(exc) from None
    except TransportLost:
        raise ConnectionFailed(f"{target.url}: the connection closed") from None
    finally:
        await _leave(session)


async def publish(target: Target, topic: str, payload: Any) -> dict[str, Any]:
    """Publish ``payload`` as the only positional argument: ``{"topic", "id", "position"}``.

    The acknowledgement carries only the publication id, so the session first
    subscribes to ``topic`` and publishes with ``exclude_me=False``: its own
    event, found by that id, brings the position the node gave it (None for a
    topic without history, or when the session may not subscribe to it, or
    when the event does not arrive within :data:`TIMEOUT`).
    """
    async with _joined(target) as session:
        own: dict[int, defer.Deferred[Any]] = {}
        early: dict[int, Any] = {}

        def on_event(*args: Any, **kwargs: Any) -> None:
            details: EventDetails = kwargs.pop(DETAILS_KWARG)
            position = kwargs.get(POSITION_KEY)
            if details.publication in own and not own[details.publication].called:
                own[details.publication].callback(position)
            else:
                early[details.publication] = position  # before the acknowledgement arrived

        subscribed = False  # a role that may publish here but not subscribe: no position
        if not is_reserved(topic):  # refused to clients: one refusal (the publish's), not two
            with contextlib.suppress(ApplicationError):
                await session.subscribe(on_event, topic, options=SubscribeOptions(details_arg=DETAILS_KWARG))
                subscribed = True
        options = PublishOptions(acknowledge=True, exclude_me=False)
        publication = await session.publish(topic, payload, options=options)
        publication_id: int = publication.id
        position = None
        if publication_id in early:
            position = early[publication_id]
        elif subscribed:
            arrival: defer.Deferred[Any] = defer.Deferred()
            own[publication_id] = arrival
            arrival.addTimeout(TIMEOUT, reactor)
            with contextlib.suppress(defer.TimeoutError):
                position = await arrival
    return {"topic": topic, "id": publication_id, "position": position}


async def call(target: Target, procedure: str, *args: Any) -> Any:
    """Call ``procedure`` once and return its result (``broker reload``)."""
    async with _joined(target) as session:
        return await session.call(procedure, *args)


#: What ``tail`` delivers: ``(topic, args, kwargs)``, the position in ``kwargs[POSITION_KEY]``.
TailEvent = tuple[str, list[Any], dict[str, Any]]


def _tail_event(topic: str, args: list[Any], kwargs: dict[str, Any]) -> TailEvent:
    return topic, args, kwargs


def _recovery_problem(exc: Exception) -> str:
    """A failed ``broker.recover`` call in the words of the command line."""
    if isinstance(exc, ApplicationError):
        return str(_wamp_error(exc))
    if isinstance(exc, defer.TimeoutError):
        return f"no answer within {RECOVER_TIMEOUT:g} s"
    return describe_failure(exc)


async def tail(
    target: Target,
    topic: str,
    match: str,
    on_event: EventSink,
    on_subscribed: Callable[[], None],
    count: int | None = None,
    resume_from: tuple[str, int] | None = None,
) -> None:
    """Subscribe and hand every event to ``on_event``, until ``count`` events or cancelled.

    With ``resume_from = (epoch, cursor)``, first deliver what was published
    after that position (``broker.recover``), then the live events, each once
    and in order; an unrecoverable gap is a :class:`BrokerError`.
    """
    session = await _join(target)
    done: defer.Deferred[None] = defer.Deferred()
    seen = 0
    leaving = False

    def on_lost(_: object) -> None:
        # only while the tail runs: after it ended (a failed recovery), the close is its own
        # leave, and an errback nobody awaits would print "Unhandled error in Deferred"
        if done.called or leaving:
            return
        left = session.left
        if left is not None and left.reason and left.reason != CloseDetails.REASON_DEFAULT:
            # the router said why (GOODBYE broker.error.delivery_gap, ...): say it too
            done.errback(WampError(left.reason, left.message or ""))
        else:
            done.errback(ConnectionFailed(f"{target.url}: the router closed the connection"))

    def deliver(events: list[TailEvent]) -> None:
        nonlocal seen
        for event_topic, args, kwargs in events:
            if done.called:
                return
            try:
                on_event(event_topic, args, kwargs)
            except Exception as exc:  # a failing sink (a closed pipe) ends the tail
                done.errback(exc)
                return
            seen += 1
            if count is not None and seen >= count:
                done.callback(None)

    gapless = Gapless(session, topic, match, deliver, _tail_event, resume_from, describe=_recovery_problem)
    try:
        await gapless.subscribe()
        on_subscribed()
        session.disconnected.addCallback(on_lost)
        await resume(gapless, lambda: done.called)
        await done
    except ApplicationError as exc:
        raise _wamp_error(exc) from None
    finally:
        leaving = True
        await _leave(session)


async def resume(gapless: Gapless[TailEvent], stopped: Callable[[], bool]) -> None:
    """Fill the gap since ``gapless.resume_from`` (until ``stopped()``), or raise a :class:`BrokerError`.

    A recovery that fails for any reason — an ``unrecoverable`` answer, an
    ERROR, no answer within :data:`RECOVER_TIMEOUT`, an answer of the wrong
    shape — names the position, never a tail that carries on past the gap.
    """
    gap = await gapless.recover(stopped)
    if gap is None or gapless.resume_from is None:
        return
    epoch, cursor = gapless.resume_from
    if gap.failure is not None:
        raise BrokerError(
            f"cannot resume from {epoch}:{cursor}: recovery failed: {gap.failure} "
            f"(events after {epoch}:{gap.last} were not printed)"
        )
    now = f"{gap.answer['epoch']}:{gap.answer['cursor']}"
    raise BrokerError(
        f"cannot resume from {epoch}:{cursor}: {gap.answer['reason']}; nothing after "
        f"{epoch}:{gap.last} was printed: run again with --from {now} to go on "
        "from the current position, or without --from"
    )


def run(command: Callable[[], Coroutine[Any, Any, Any]], interrupted: int) -> tuple[int, Any]:
    """Run ``command`` on the reactor: ``(0, result)``, or ``(interrupted, None)``.

    SIGINT and SIGTERM cancel ``command`` (its ``finally`` blocks still run,
    so sessions leave cleanly); a :class:`BrokerError` propagates.
    """
    outcome: list[Any] = []

    def start() -> None:
        shutting_down = False
        running = defer.ensureDeferred(command())
        running.addBoth(outcome.append)

        def finished(_: None) -> None:
            if not shutting_down:
                reactor.stop()

        running.addBoth(finished)

        def before_shutdown() -> defer.Deferred[Any]:
            # a signal stopped the reactor: cancel the command, wait for its cleanup
            nonlocal shutting_down
            shutting_down = True
            running.cancel()
            return running

        reactor.addSystemEventTrigger("before", "shutdown", before_shutdown)

    reactor.callWhenRunning(start)
    reactor.run()
    if not outcome:
        return interrupted, None
    result = outcome[0]
    if isinstance(result, Failure):
        if result.check(defer.CancelledError):
            return interrupted, None
        result.raiseException()
    return 0, result
