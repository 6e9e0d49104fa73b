"""``eager``: a coroutine that does not wait is done at once; one that waits goes on as under
``ensureDeferred``, with every result and error it waits for (no reactor: Deferreds fired by hand)."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet import defer

from broker.router.eager import eager


def outcome(d: defer.Deferred[Any]) -> list[Any]:
    seen: list[Any] = []
    d.addCallbacks(seen.append, lambda failure: seen.append(failure.value))
    return seen


def test_a_coroutine_that_does_not_wait_is_done_before_eager_returns() -> None:
    ran: list[str] = []

    async def inner() -> int:
        ran.append("inner")
        return 2

    async def publish() -> int:
        return await inner() + 1

    d = eager(publish())
    assert ran == ["inner"] and outcome(d) == [3]


def test_an_error_without_waiting_is_a_failed_deferred() -> None:
    async def refuse() -> None:
        raise ValueError("refused")

    (error,) = outcome(eager(refuse()))
    assert isinstance(error, ValueError) and str(error) == "refused"


def test_a_coroutine_that_waits_gets_each_result_and_error_it_waits_for() -> None:
    first: defer.Deferred[int] = defer.Deferred()
    second: defer.Deferred[int] = defer.Deferred()
    third: defer.Deferred[int] = defer.Deferred()
    steps: list[Any] = []

    async def engine() -> int:
        steps.append(await first)
        try:
            await second
        except KeyError as error:
            steps.append(f"caught {error}")
        steps.append(await third)
        return sum(s for s in steps if isinstance(s, int))

    d = eager(engine())
    seen = outcome(d)
    assert (steps, seen) == ([], [])
    first.callback(10)
    assert steps == [10]
    second.errback(KeyError("gone"))
    assert steps == [10, "caught 'gone'"]
    third.callback(5)
    assert steps == [10, "caught 'gone'", 5] and seen == [15]


def test_an_error_after_waiting_fails_the_deferred() -> None:
    waited: defer.Deferred[int] = defer.Deferred()

    async def engine() -> int:
        await waited
        raise RuntimeError("after the wait")

    seen = outcome(eager(engine()))
    waited.callback(1)
    assert len(seen) == 1 and isinstance(seen[0], RuntimeError)


@pytest.mark.parametrize("fires_first", [True, False])
def test_an_already_fired_deferred_is_awaited_as_usual(fires_first: bool) -> None:
    ready: defer.Deferred[str] = defer.succeed("now") if fires_first else defer.Deferred()

    async def engine() -> str:
        return await ready + "!"

    seen = outcome(eager(engine()))
    if not fires_first:
        ready.callback("later")
    assert seen == ["now!" if fires_first else "later!"]


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, SystemExit])
def test_an_interrupt_without_waiting_propagates(interrupt: type[BaseException]) -> None:
    async def stopped() -> None:
        raise interrupt()

    with pytest.raises(interrupt):
        eager(stopped())


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, SystemExit])
def test_an_interrupt_a_wait_ends_with_is_not_handed_to_the_coroutine(
    interrupt: type[BaseException],
) -> None:
    waited: defer.Deferred[int] = defer.Deferred()
    caught: list[BaseException] = []

    async def engine() -> int:
        try:
            return await waited
        except (KeyboardInterrupt, SystemExit) as error:
            caught.append(error)
            return 0

    seen = outcome(eager(engine()))
    waited.errback(interrupt())
    assert caught == [] and len(seen) == 1 and isinstance(seen[0], interrupt)
