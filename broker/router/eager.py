"""Run a coroutine at once, and hand it to Twisted only if it has to wait.

Why: ``defer.ensureDeferred`` drives every coroutine through Twisted's
inline-callbacks machinery (a context copy, a Deferred, a status object, a
callback chain), about as costly as the publish it carries when the history
engine answers at once (memory, SQLite: ``async def`` methods that never wait).
:func:`eager` runs the coroutine's first step itself: done then, its result
(or exception) is in an already fired Deferred; waiting on a Deferred, the rest
runs under ``ensureDeferred`` exactly as before, resumed with what it waited for.
Only an ``Exception`` becomes a failed Deferred or is thrown back into the
coroutine: ``KeyboardInterrupt``, ``SystemExit`` and the like raised by its
first step propagate to the caller, and a wait that ends with one ends the
coroutine's run there, unseen by its code (Twisted fails the Deferred with it).
:func:`eager_call` is the same with plain callbacks for its outcome, no Deferred at all
for a coroutine that does not wait (the HTTP publish API: a Deferred's callback chain
was ~3% of a single request's router time); one that waits on Deferreds (the Redis
engine) it drives itself, resuming it from the callbacks of each Deferred it yields,
without ``ensureDeferred``'s wrapper coroutine and status objects (4.9 → 2.3 µs per
waiting call).
Tests: ``tests/test_eager.py``, ``tests/test_eager_call.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Generator
from typing import Any, TypeVar

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

T = TypeVar("T")
_log = Logger(namespace="broker.eager")


def eager(coroutine: Coroutine[Any, Any, T]) -> defer.Deferred[T]:
    """``defer.ensureDeferred(coroutine)``, without its machinery for one that does not wait."""
    try:
        waiting = coroutine.send(None)
    except StopIteration as done:
        return defer.succeed(done.value)
    except Exception:
        return defer.fail()
    return defer.ensureDeferred(_resume(coroutine, waiting))


def eager_call(
    coroutine: Coroutine[Any, Any, T], done: Callable[[T], object], failed: Callable[[Failure], object]
) -> None:
    """Run ``coroutine`` as :func:`eager` does, then call ``done(result)`` or ``failed(failure)``
    (at once, before returning, if it does not wait; else when it is done, from the callback of
    the last Deferred it waited on). An error ``done`` raises is its caller's, not ``failed``'s:
    raised to the caller when the coroutine did not wait, logged when it did."""
    try:
        waiting = coroutine.send(None)
    except StopIteration as finished:
        result: T = finished.value
    except Exception:
        failed(Failure())
        return
    else:
        if isinstance(waiting, defer.Deferred):
            _Driver(coroutine, done, failed).wait(waiting)
        else:  # not Twisted's to resume: its own driver, as before
            defer.ensureDeferred(_resume(coroutine, waiting)).addCallbacks(done, failed)
        return
    done(result)


class _Driver:
    """Resumes a coroutine each time a Deferred it yielded fires, until it is done.

    What ``ensureDeferred`` does for a coroutine awaiting Deferreds, without its Deferred and
    callback chain: the coroutine is sent the result (thrown the failure) from the yielded
    Deferred's own callback, which then hands on None (the result was consumed, as under
    ``ensureDeferred``: no unhandled-error report for a failure the coroutine saw).
    """

    __slots__ = ("coroutine", "done", "failed")

    def __init__(
        self,
        coroutine: Coroutine[Any, Any, Any],
        done: Callable[[Any], object],
        failed: Callable[[Failure], object],
    ) -> None:
        self.coroutine = coroutine
        self.done = done
        self.failed = failed

    def wait(self, waiting: defer.Deferred[Any]) -> None:
        """Resume the coroutine when ``waiting`` fires."""
        waiting.addCallbacks(self._sent, self._thrown)

    def _sent(self, result: Any) -> None:
        try:
            waiting = self.coroutine.send(result)
        except StopIteration as finished:
            self._finish(finished.value)
        except Exception:
            self.failed(Failure())
        else:
            self._next(waiting)

    def _thrown(self, failure: Failure) -> None:
        try:
            waiting = failure.throwExceptionIntoGenerator(self.coroutine)
        except StopIteration as finished:
            self._finish(finished.value)
        except Exception:
            self.failed(Failure())
        else:
            self._next(waiting)

    def _next(self, waiting: Any) -> None:
        if isinstance(waiting, defer.Deferred):
            self.wait(waiting)
        else:
            defer.ensureDeferred(_resume(self.coroutine, waiting)).addCallbacks(self._finish, self.failed)

    def _finish(self, result: Any) -> None:
        try:
            self.done(result)
        except Exception:  # no caller to raise to: a Deferred's callback would only hide it
            _log.failure("handling the outcome of a coroutine failed")


async def _resume(coroutine: Coroutine[Any, Any, T], waiting: Any) -> T:
    """Go on with ``coroutine``, suspended on ``waiting`` (what an ``await`` of a Deferred yields)."""
    while True:
        try:
            result = await _Awaiting(waiting)
        except Exception as error:
            try:
                waiting = coroutine.throw(error)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
        else:
            try:
                waiting = coroutine.send(result)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]


class _Awaiting:
    """Awaits what a suspended coroutine yielded, as its own ``await`` would have (Twisted's
    driver receives the yielded Deferred and resumes with its result)."""

    def __init__(self, yielded: Any) -> None:
        self.yielded = yielded

    def __await__(self) -> Generator[Any, Any, Any]:
        return (yield self.yielded)
