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
