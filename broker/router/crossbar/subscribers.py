"""Which client sessions of a router hold a subscription: read from crossbar's broker, never changed.

Why here: crossbar keeps each session's subscriptions in its broker
(``Broker._session_to_subscriptions``, crossbar 26.10), a private map; every
reach into crossbar lives behind this package's door. Used when this node
cannot deliver what the shared history's log lost
(:mod:`broker.router.gaps`): the sessions it reports are the ones that may
have missed events. In-router components (``RouterApplicationSession``,
Broker's own among them) are not clients and are never reported; nor are
subscriptions to the router's ``wamp.`` meta topics.
"""

from __future__ import annotations

from typing import Any

from crossbar.router.session import RouterApplicationSession


def subscribed_sessions(router: Any) -> list[int]:
    """The ids of the client sessions of ``router`` subscribed to at least one application topic."""
    broker = getattr(router, "_broker", None)
    sessions = getattr(broker, "_session_to_subscriptions", {})
    return [
        session._session_id
        for session, subscriptions in list(sessions.items())
        if not isinstance(session, RouterApplicationSession)
        and any(not s.uri.startswith("wamp.") for s in subscriptions)
    ]
