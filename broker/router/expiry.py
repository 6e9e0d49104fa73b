"""Ending token sessions when their token expires.

Why: crossbar checks a ticket once, at sign-in; a session whose token expired
an hour ago stays open and keeps receiving. :class:`TokenExpiry` sets one
timer per joined token session (Twisted's ``callLater``, the reactor
injected: ``task.Clock`` in tests), for the moment
:class:`broker.core.sessions.UserSessions` says the token ends it (``exp`` plus
``tokens.leeway``), and cancels it when the session leaves first. When it
fires, :func:`end_session` sends ``GOODBYE broker.error.token_expired`` with
the reason and closes the transport after it, so nothing more is routed to
the session whether or not the client answers the GOODBYE (on WebSocket the
send hook, :mod:`broker.router.crossbar.backpressure`, drops what is routed to
a closing peer; on long-poll the router session ends at once and the GOODBYE
waits for the next poll). Broker's JS client fetches a fresh token and
reconnects, recovering what it missed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from crossbar.router.longpoll import WampLongPollResourceSession
from twisted.logger import Logger

from broker.core.sessions import UserSessions
from broker.errors import BrokerError, TokenExpired
from broker.router.crossbar.context import Clock
from broker.router.crossbar.longpoll import end_keeping_transport
from broker.router.state import STATE

_log = Logger(namespace="broker.expiry")


class TokenExpiry:
    """One timer per joined token session; ``end(session_id, error)`` ends a session."""

    def __init__(
        self,
        users: UserSessions,
        end: Callable[[int, TokenExpired], object],
        reactor: Clock | None = None,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor as global_reactor

            reactor = cast(Clock, global_reactor)
        self.users = users
        self._reactor = reactor
        self._end = end
        self._timers: dict[int, Any] = {}

    def joined(self, session_id: object) -> None:
        """``wamp.session.on_join``: a token session gets its timer."""
        remaining = self.users.joined(session_id)
        if remaining is not None and isinstance(session_id, int):
            self._schedule(session_id, remaining)

    def left(self, session_id: object) -> None:
        """``wamp.session.on_leave``: the session and its timer go."""
        self.users.left(session_id)
        timer = self._timers.pop(session_id, None) if isinstance(session_id, int) else None
        if timer is not None and timer.active():
            timer.cancel()

    def _schedule(self, session_id: int, delay: float) -> None:
        self._timers[session_id] = self._reactor.callLater(delay, self._due, session_id)

    def _due(self, session_id: int) -> None:
        self._timers.pop(session_id, None)
        remaining = self.users.remaining(session_id)
        message = self.users.expiry_message(session_id)
        if remaining is None or message is None:
            return  # it left meanwhile
        if remaining > 0:  # the wall clock was set back: not yet
            self._schedule(session_id, remaining)
            return
        self._end(session_id, TokenExpired(message))

    def __len__(self) -> int:
        return len(self._timers)


def end_session(router: Any, session_id: int, error: BrokerError) -> bool:
    """End the router's session ``session_id``: GOODBYE with ``error``, then its transport
    (a token that expired, or events the node could not deliver: :mod:`broker.router.gaps`).

    Returns whether there was such a session to end.
    """
    session = getattr(router, "_session_id_to_session", {}).get(session_id)
    transport = getattr(session, "_transport", None)
    if session is None or transport is None or session._goodbye_sent:
        return False
    STATE.count_rejection(type(error).__name__)
    _log.warn(
        "ending session {session} of user {authid!r}: {uri}: {reason}",
        session=session_id,
        authid=session._authid,
        uri=error.wamp_uri,
        reason=str(error),
    )
    session.leave(error.wamp_uri, str(error))
    if isinstance(transport, WampLongPollResourceSession):
        # as for a protocol violation: the router session ends now, the transport once a poll
        # has delivered the GOODBYE
        end_keeping_transport(transport)
    else:
        transport.close()  # the close frame follows the GOODBYE
    return True
