"""``broker tail --from``'s recovery (the shared :class:`~broker.client.wamp.Gapless` loop):
pages until ``more`` is false, and every failure (an ERROR, no answer in time, an answer of
the wrong shape) ends the tail with a message naming the position, never a tail that carries
on past the gap."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from autobahn.wamp.exception import ApplicationError
from twisted.internet import defer, task

from broker.cli import wamp as wampclient
from broker.client.wamp import DETAILS_KWARG, RECOVER_TIMEOUT, Gapless
from broker.errors import BrokerError
from broker.history import POSITION_KEY


def page(*cursors: int, more: bool = False) -> dict[str, Any]:
    events = [
        {
            "topic": "public.t",
            "args": [c],
            "kwargs": {},
            "position": {"epoch": "E", "seq": c, "cursor": c},
        }
        for c in cursors
    ]
    return {"unrecoverable": False, "events": events, "more": more, "epoch": "E", "cursor": 99}


class Session:
    """Answers each call with the next outcome: an answer, an exception, or None (never)."""

    def __init__(self, *outcomes: Any) -> None:
        self.outcomes = list(outcomes)
        self.asked: list[int] = []

    def call(self, procedure: str, topic: str, **kwargs: Any) -> defer.Deferred[Any]:
        self.asked.append(kwargs["after"])
        outcome = self.outcomes.pop(0)
        if outcome is None:
            return defer.Deferred()
        if isinstance(outcome, Exception):
            return defer.fail(outcome)
        return defer.succeed(outcome)


@dataclass
class EventDetails:
    topic: str | None = None


def run(session: Session, clock: task.Clock | None = None) -> tuple[list[Any], defer.Deferred[None]]:
    printed: list[Any] = []

    def deliver(events: list[wampclient.TailEvent]) -> None:
        printed.extend(args[0] for _, args, _ in events)

    gapless = Gapless(
        session,
        "public.t",
        "exact",
        deliver,
        wampclient._tail_event,
        ("E", 10),
        clock=clock or task.Clock(),
        describe=wampclient._recovery_problem,
    )
    # arrived during the recovery: held, then printed
    gapless.on_event("live", **{DETAILS_KWARG: EventDetails("public.t"), POSITION_KEY: {"cursor": 50}})
    return printed, defer.ensureDeferred(wampclient.resume(gapless, lambda: False))


def failure_of(d: defer.Deferred[None]) -> BaseException:
    failures: list[Any] = []
    d.addErrback(failures.append)
    assert failures, "the recovery should have failed"
    return failures[0].value  # type: ignore[no-any-return]


def test_pages_until_more_is_false_then_live_events() -> None:
    session = Session(page(11, 12, more=True), page(13, more=True), page(14))
    printed, d = run(session)
    assert d.called and printed == [11, 12, 13, 14, "live"]
    assert session.asked == [10, 12, 13]


@pytest.mark.parametrize(
    ("outcome", "message"),
    [
        (
            ApplicationError("wamp.error.invalid_argument", "too big"),
            "cannot resume from E:10: recovery failed: wamp.error.invalid_argument: too big "
            "(events after E:12 were not printed)",
        ),
        (
            {"events": []},
            "cannot resume from E:10: recovery failed: the answer is not a broker.recover answer "
            "(events after E:12 were not printed)",
        ),
        (
            page(more=True),
            "cannot resume from E:10: recovery failed: the answer says more but holds no event "
            "(events after E:12 were not printed)",
        ),
    ],
    ids=["error", "not-an-answer", "more-without-events"],
)
def test_a_failed_recovery_ends_the_tail_naming_the_position(outcome: Any, message: str) -> None:
    printed, d = run(Session(page(11, 12, more=True), outcome))
    error = failure_of(d)
    assert isinstance(error, BrokerError) and str(error) == message
    assert printed == [11, 12]  # nothing past the gap, the held live event neither


def test_no_answer_in_time_ends_the_tail() -> None:
    clock = task.Clock()
    printed, d = run(Session(page(11, more=True), None), clock)
    assert not d.called
    clock.advance(RECOVER_TIMEOUT)
    error = failure_of(d)
    assert str(error) == (
        "cannot resume from E:10: recovery failed: no answer within 10 s (events after E:11 were not printed)"
    )
    assert printed == [11]
