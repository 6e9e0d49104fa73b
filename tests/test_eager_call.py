"""``eager_call``: a coroutine that does not wait ends in a plain call of ``done`` or ``failed``
before it returns; one that waits ends in the same calls once what it waits for fires."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet import defer
from twisted.python.failure import Failure

from broker.router.eager import eager_call


def calls() -> tuple[list[Any], Any, Any]:
    seen: list[Any] = []
    return seen, lambda result: seen.append(("done", result)), lambda f: seen.append(("failed", f.value))


def test_a_coroutine_that_does_not_wait_calls_done_before_returning() -> None:
    async def publish() -> int:
        return 3

    seen, done, failed = calls()
    eager_call(publish(), done, failed)
    assert seen == [("done", 3)]


def test_an_error_without_waiting_calls_failed_with_it() -> None:
    async def refuse() -> None:
        raise ValueError("refused")

    seen, done, failed = calls()
    eager_call(refuse(), done, failed)
    ((kind, error),) = seen
    assert kind == "failed" and isinstance(error, ValueError) and str(error) == "refused"


def test_a_coroutine_that_waits_calls_done_when_what_it_waits_for_fires() -> None:
    first: defer.Deferred[int] = defer.Deferred()
    second: defer.Deferred[int] = defer.Deferred()

    async def publish() -> int:
        a = await first
        try:
            await second
        except KeyError:
            return a + 10
        return a

    seen, done, failed = calls()
    eager_call(publish(), done, failed)
    assert seen == []
    first.callback(1)
    assert seen == []
    second.errback(Failure(KeyError("gone")))
    assert seen == [("done", 11)]


def test_an_error_after_waiting_calls_failed() -> None:
    waited: defer.Deferred[int] = defer.Deferred()

    async def publish() -> int:
        await waited
        raise RuntimeError("after")

    seen, done, failed = calls()
    eager_call(publish(), done, failed)
    waited.callback(0)
    ((kind, error),) = seen
    assert kind == "failed" and isinstance(error, RuntimeError)


def test_an_error_in_done_is_the_callers_and_failed_is_not_called() -> None:
    async def publish() -> int:
        return 1

    seen: list[Any] = []

    def done(_: int) -> None:
        raise LookupError("in done")

    with pytest.raises(LookupError):
        eager_call(publish(), done, seen.append)
    assert seen == []


def test_a_failure_the_coroutine_does_not_catch_after_waiting_reaches_failed() -> None:
    waited: defer.Deferred[int] = defer.Deferred()

    async def publish() -> int:
        return await waited

    seen, done, failed = calls()
    eager_call(publish(), done, failed)
    waited.errback(Failure(ConnectionError("redis went away")))
    ((kind, error),) = seen
    assert kind == "failed" and isinstance(error, ConnectionError) and str(error) == "redis went away"


def test_a_failure_the_coroutine_caught_is_consumed_not_reported_as_unhandled() -> None:
    waited: defer.Deferred[int] = defer.Deferred()

    async def publish() -> str:
        try:
            await waited
        except KeyError:
            return "caught"
        return "not thrown"

    seen, done, failed = calls()
    eager_call(publish(), done, failed)
    waited.errback(Failure(KeyError("gone")))
    assert seen == [("done", "caught")]
    results: list[Any] = []
    waited.addBoth(results.append)  # what the Deferred holds once the coroutine took its failure
    assert results == [None]


def test_waits_on_several_deferreds_in_turn_each_resuming_with_its_own_result() -> None:
    waits = [defer.Deferred[int]() for _ in range(3)]

    async def publish() -> list[int]:
        return [await d for d in waits]

    seen, done, failed = calls()
    eager_call(publish(), done, failed)
    for value, d in zip((7, 8, 9), waits, strict=True):
        assert seen == []
        d.callback(value)
    assert seen == [("done", [7, 8, 9])]


def test_an_awaitable_that_yields_no_deferred_goes_on_under_ensure_deferred() -> None:
    class Immediate:
        def __await__(self) -> Any:
            return (yield None) or 5

    async def publish() -> int:
        return await Immediate()

    seen, done, failed = calls()
    eager_call(publish(), done, failed)
    assert seen == [("done", 5)]


def test_an_error_in_done_after_waiting_is_logged_not_lost() -> None:
    from twisted.logger import globalLogPublisher

    waited: defer.Deferred[int] = defer.Deferred()

    async def publish() -> int:
        return await waited

    def done(_: int) -> None:
        raise LookupError("in done")

    logged: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(logged.append)
    try:
        eager_call(publish(), done, lambda f: pytest.fail(f"failed called with {f.value!r}"))
        waited.callback(1)
    finally:
        globalLogPublisher.removeObserver(logged.append)
    (event,) = [e for e in logged if e.get("log_namespace") == "broker.eager"]
    assert event["log_failure"].check(LookupError)
    assert event["log_format"] == "handling the outcome of a coroutine failed"
