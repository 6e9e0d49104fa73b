"""How a publish waits for its engine: :func:`broker.router.positions.settle`.

Why: every publish with history runs the engine's ``append`` through
``settle`` (no Deferred of its own). Memory and SQLite never suspend; the
Redis engine awaits Deferreds (its turn in the group commit, the script
call) and some of them fail on purpose (``NOSCRIPT`` the first time a script
runs, caught and answered with ``EVAL``). These tests fire the Deferreds by
hand, no reactor, and check the coroutine gets each result and each failure
where it awaited it, and that the outcome reaches ``done`` or ``failed`` once.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from broker.router.positions import settle


class Outcome:
    def __init__(self) -> None:
        self.done: list[Any] = []
        self.failed: list[Failure] = []

    def run(self, coroutine: Any) -> None:
        settle(coroutine, self.done.append, self.failed.append)


def test_a_coroutine_that_never_suspends_is_done_at_once() -> None:
    async def append() -> str:
        return "stored"

    outcome = Outcome()
    outcome.run(append())
    assert (outcome.done, outcome.failed) == (["stored"], [])


def test_each_awaited_result_is_handed_in() -> None:
    first: Deferred[int] = Deferred()
    second: Deferred[int] = Deferred()

    async def append() -> int:
        return await first + await second

    outcome = Outcome()
    outcome.run(append())
    assert outcome.done == []
    first.callback(2)
    assert outcome.done == []
    second.callback(40)
    assert (outcome.done, outcome.failed) == ([42], [])


def test_a_failure_caught_by_the_coroutine_goes_on_from_where_it_awaited() -> None:
    evalsha: Deferred[str] = Deferred()
    eval_: Deferred[str] = Deferred()

    async def script() -> str:
        try:
            return await evalsha
        except LookupError as error:  # NOSCRIPT: the engine runs EVAL instead
            return f"{error}, then " + await eval_

    outcome = Outcome()
    outcome.run(script())
    evalsha.errback(LookupError("NOSCRIPT"))
    assert outcome.done == [] and outcome.failed == []
    eval_.callback("EVAL")
    assert (outcome.done, outcome.failed) == (["NOSCRIPT, then EVAL"], [])


def test_a_failure_not_caught_is_the_outcome_and_no_unhandled_error() -> None:
    waiter: Deferred[str] = Deferred()

    async def append() -> str:
        return await waiter

    outcome = Outcome()
    outcome.run(append())
    waiter.errback(ConnectionError("Redis went away"))
    assert outcome.done == []
    assert len(outcome.failed) == 1
    assert outcome.failed[0].check(ConnectionError)
    assert str(outcome.failed[0].value) == "Redis went away"
    # the failure went to the coroutine: the Deferred holds none to log as unhandled
    assert waiter.called and waiter.result is None


def test_a_deferred_that_already_fired_resumes_at_once() -> None:
    ready: Deferred[str] = Deferred()
    ready.callback("answered")

    async def append() -> str:
        return await ready

    outcome = Outcome()
    outcome.run(append())
    assert (outcome.done, outcome.failed) == (["answered"], [])
