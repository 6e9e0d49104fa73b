"""Token sessions: whose grants a session carries, and when its token ends it.

Why: a session authenticated with a per-user token (role ``user``,
:mod:`broker.core.tokens`) carries that token's grants, and must not outlive the
token — a token that expired at 10:05 must not keep a browser subscribed at
11:00. :class:`UserSessions` is the bookkeeping: session id -> grants and the
moment the session must end (the token's ``exp`` plus the node's leeway,
``tokens.leeway``). The router adapter (:mod:`broker.router.expiry`) asks it
how long a joined session has left, sets a timer, and ends the session with
``broker.error.token_expired`` when it fires. Pure: both clocks are
injectable, no Twisted, no crossbar.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from broker.core.grants import Grants

#: Seconds a token-authenticated session may take from authentication to joining.
PENDING_TIMEOUT: Final = 60.0


@dataclass
class _UserSession:
    authid: str
    grants: Grants
    authenticated_at: float
    expires_at: float
    leeway: float
    joined: bool = False


class UserSessions:
    """Session id -> the grants of the token it authenticated with, and when it must end.

    An entry is added when ``broker.authenticate`` accepts a token (crossbar
    passes the id the session will have), marked joined on
    ``wamp.session.on_join`` and removed on ``wamp.session.on_leave``. A
    session that authenticated but never joined (it disconnected before
    WELCOME) gets no ``on_leave``: such entries are dropped after
    :data:`PENDING_TIMEOUT`, so the map stays bounded by the live sessions.

    ``clock`` (monotonic) times the pending sessions; ``now`` (the wall clock,
    as a token's ``exp`` is) says when a session's token has ended.
    """

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, now: Callable[[], float] = time.time
    ) -> None:
        self._sessions: dict[int, _UserSession] = {}
        self._clock = clock
        self._now = now

    def add(self, session_id: int, authid: str, grants: Grants, expires_at: float, leeway: float) -> None:
        """Remember ``session_id``'s grants until its token's ``expires_at`` (epoch seconds)
        plus ``leeway``, and forget stale pending sessions."""
        now = self._clock()
        stale = [
            sid
            for sid, entry in self._sessions.items()
            if not entry.joined and now - entry.authenticated_at > PENDING_TIMEOUT
        ]
        for sid in stale:
            del self._sessions[sid]
        self._sessions[session_id] = _UserSession(authid, grants, now, expires_at, leeway)

    def joined(self, session_id: object) -> float | None:
        """``session_id`` completed its opening handshake: keep it until it leaves.

        Returns the seconds it has left before its token ends it (0 if that
        moment has passed), or ``None`` if it is not a token session.
        """
        entry = self._sessions.get(session_id) if isinstance(session_id, int) else None
        if entry is None:
            return None
        entry.joined = True
        return self.remaining(session_id)

    def remaining(self, session_id: object) -> float | None:
        """Seconds until ``session_id``'s token ends it (0 if due), ``None`` if it is not a
        joined token session (it left, or never joined)."""
        entry = self._sessions.get(session_id) if isinstance(session_id, int) else None
        if entry is None or not entry.joined:
            return None
        return max(0.0, entry.expires_at + entry.leeway - self._now())

    def expiry_message(self, session_id: object) -> str | None:
        """Why ``session_id`` is ended, for the client (``None`` if not a token session)."""
        entry = self._sessions.get(session_id) if isinstance(session_id, int) else None
        if entry is None:
            return None
        expired = datetime.fromtimestamp(entry.expires_at, UTC).isoformat().replace("+00:00", "Z")
        return (
            f"token expired at {expired} (this node allows {entry.leeway:g} s of leeway): "
            "sign in again with a fresh token"
        )

    def left(self, session_id: object) -> None:
        """``session_id`` is gone: its grants go with it."""
        if isinstance(session_id, int):
            self._sessions.pop(session_id, None)

    def grants_for(self, session_id: object, authid: object) -> Grants | None:
        """The grants of ``session_id`` if it authenticated as ``authid`` with a token."""
        entry = self._sessions.get(session_id) if isinstance(session_id, int) else None
        if entry is None or entry.authid != authid:
            return None
        return entry.grants

    def __len__(self) -> int:
        return len(self._sessions)
