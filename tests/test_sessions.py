"""Token sessions without a node: the session map (:mod:`broker.core.sessions`) and the expiry
timers (:mod:`broker.router.expiry`) on ``twisted.internet.task.Clock``."""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.task import Clock

from broker.core.grants import Grants
from broker.core.sessions import PENDING_TIMEOUT, UserSessions
from broker.errors import TokenExpired
from broker.router.expiry import TokenExpiry

GRANTS = Grants({"user": ()})
EXP = 1_800_000_000.0  # 2027-01-15T08:00:00Z


def test_user_sessions_follow_join_and_leave() -> None:
    clock = [0.0]
    users = UserSessions(clock=lambda: clock[0], now=lambda: EXP - 100)
    users.add(1, "42", GRANTS, EXP, 30)
    assert users.grants_for(1, "42") is GRANTS
    assert users.grants_for(1, "43") is None  # a session id with another authid is not this session
    assert users.remaining(1) is None  # not joined yet: no deadline runs
    assert users.joined(1) == 130  # exp + leeway - now
    users.add(2, "43", GRANTS, EXP, 30)  # never joins
    clock[0] = PENDING_TIMEOUT + 1
    users.add(3, "44", GRANTS, EXP, 30)  # adding forgets stale pending sessions, never joined ones
    assert users.grants_for(1, "42") is GRANTS
    assert users.grants_for(2, "43") is None
    users.left(1)
    users.left(99)
    assert users.grants_for(1, "42") is None
    assert users.joined(1) is None  # gone, or never a token session
    assert len(users) == 1


def test_a_session_past_its_token_has_no_time_left() -> None:
    now = [EXP + 29.5]
    users = UserSessions(now=lambda: now[0])
    users.add(1, "42", GRANTS, EXP, 30)
    assert users.joined(1) == 0.5
    now[0] = EXP + 31
    assert users.remaining(1) == 0
    assert users.expiry_message(1) == (
        "token expired at 2027-01-15T08:00:00Z (this node allows 30 s of leeway): "
        "sign in again with a fresh token"
    )
    assert users.expiry_message(2) is None


class Expiry:
    """A :class:`TokenExpiry` on a fake reactor whose wall clock is the reactor's (or ``wall``)."""

    def __init__(self, wall: Callable[[], float] | None = None) -> None:
        self.reactor = Clock()
        self.reactor.advance(EXP - 60)
        self.users = UserSessions(clock=self.reactor.seconds, now=wall or self.reactor.seconds)
        self.ended: list[tuple[int, TokenExpired]] = []
        self.timers = TokenExpiry(self.users, lambda sid, e: self.ended.append((sid, e)), self.reactor)


def test_a_token_session_is_ended_when_its_token_expires_plus_leeway() -> None:
    t = Expiry()
    t.users.add(7, "42", GRANTS, EXP, 5)
    t.timers.joined(7)
    t.reactor.advance(64.9)  # exp + 5 s is 65 s away
    assert t.ended == []
    t.reactor.advance(0.1)
    [(sid, error)] = t.ended
    assert sid == 7
    assert error.wamp_uri == "broker.error.token_expired"
    assert str(error).startswith("token expired at 2027-01-15T08:00:00Z (this node allows 5 s of leeway)")
    assert len(t.timers) == 0


def test_a_session_that_leaves_first_loses_its_timer() -> None:
    t = Expiry()
    t.users.add(7, "42", GRANTS, EXP, 5)
    t.timers.joined(7)
    assert len(t.timers) == 1
    t.timers.left(7)
    assert len(t.timers) == 0 and len(t.users) == 0
    assert t.reactor.getDelayedCalls() == []
    t.reactor.advance(3600)
    assert t.ended == []


def test_only_token_sessions_get_a_timer() -> None:
    t = Expiry()
    t.timers.joined(12345)  # a backend or anonymous session: not in the map
    t.timers.joined("not an id")
    t.timers.left(12345)
    assert len(t.timers) == 0 and t.reactor.getDelayedCalls() == []


def test_a_timer_that_fires_early_waits_for_the_rest() -> None:
    """The reactor's clock and the wall clock can disagree (the wall clock set back)."""
    wall = [EXP - 60]
    t = Expiry(wall=lambda: wall[0])
    t.users.add(7, "42", GRANTS, EXP, 0)
    t.timers.joined(7)
    wall[0] = EXP - 70  # the wall clock was set back: at the timer, 70 s are left
    t.reactor.advance(60)
    assert t.ended == [] and len(t.timers) == 1
    t.reactor.advance(69.9)
    assert t.ended == []
    wall[0] = EXP
    t.reactor.advance(0.1)
    assert [sid for sid, _ in t.ended] == [7]


def test_a_session_joined_past_its_deadline_is_ended_at_once() -> None:
    t = Expiry()
    t.users.add(7, "42", GRANTS, EXP - 61, 0)
    t.timers.joined(7)
    t.reactor.advance(0)
    assert [sid for sid, _ in t.ended] == [7]


def test_a_reconnect_with_a_fresh_token_gets_the_fresh_tokens_deadline() -> None:
    """The JS client's answer to ``token_expired``: a new session, a new ``exp``, its own timer."""
    t = Expiry()
    t.users.add(7, "42", GRANTS, EXP, 5)
    t.timers.joined(7)
    t.reactor.advance(65)  # exp + leeway: the first session is ended
    assert [sid for sid, _ in t.ended] == [7]
    t.timers.left(7)  # the router's on_leave for the ended session
    t.users.add(8, "42", GRANTS, EXP + 300, 5)  # the same user, signed in again with a fresh token
    assert t.users.grants_for(8, "42") is GRANTS and t.users.grants_for(7, "42") is None
    t.timers.joined(8)
    t.reactor.advance(299.9)  # the fresh token's exp + leeway is 300 s away
    assert [sid for sid, _ in t.ended] == [7]
    t.reactor.advance(0.1)
    assert [sid for sid, _ in t.ended] == [7, 8]
    assert len(t.timers) == 0
