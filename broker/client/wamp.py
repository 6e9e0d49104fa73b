"""Publishing and gapless subscribing for services that already hold an autobahn session.

Why here: such a service needs no HTTP round trip, but it must publish with
acknowledgement, or a refused publish (``wamp.error.not_authorized``,
``wamp.error.invalid_uri``) is silently dropped by the router; and it must
recover what it missed without ever skipping a gap silently. That
subscribe-then-recover loop (:class:`Gapless`) exists only here; ``broker tail
--from`` uses it too, with its own wording of failures. autobahn (and
Twisted, for a Twisted session) is imported inside the functions, so
``import broker.client`` never imports it.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar


async def publish_acknowledged(session: Any, topic: str, data: Any) -> int:
    """Publish ``data`` to ``topic`` on an autobahn ``session`` (asyncio or Twisted)
    with ``acknowledge=True``; subscribers receive ``args == [data]``.

    Returns the publication id; raises autobahn's ``ApplicationError`` if the
    router refuses the publish.
    """
    from autobahn.wamp.types import PublishOptions

    publication = await session.publish(topic, data, options=PublishOptions(acknowledge=True))
    return int(publication.id)


#: Seconds one ``broker.recover`` call may take before the gap counts as unrecoverable.
RECOVER_TIMEOUT = 10.0


class Unrecoverable(Exception):
    """The missed events could not be recovered and no ``on_unrecoverable`` was given.

    ``answer`` is the node's ``unrecoverable`` answer, or one made when the
    recovery call failed (an error, a timeout, an answer of the wrong shape):
    ``{"unrecoverable": True, "reason": ..., "epoch": ..., "cursor": ...}``.
    """

    def __init__(self, answer: dict[str, Any]) -> None:
        super().__init__(answer.get("reason", "the missed events cannot be recovered"))
        self.answer = answer


def page_problem(answer: object) -> str | None:
    """What is wrong with a ``broker.recover`` answer, or None if it is one.

    A page that says ``more`` must hold at least one event, or asking again
    from the same cursor would loop forever.
    """
    if not isinstance(answer, dict) or not isinstance(answer.get("unrecoverable"), bool):
        return "the answer is not a broker.recover answer"
    if answer["unrecoverable"]:
        return None
    events, more = answer.get("events"), answer.get("more")
    if not isinstance(events, list) or not isinstance(more, bool):
        return "the answer has no events or no more"
    for event in events:
        position = event.get("position") if isinstance(event, dict) else None
        cursor = position.get("cursor") if isinstance(position, dict) else None
        if not (
            isinstance(cursor, int)
            and isinstance(event.get("topic"), str)
            and isinstance(event.get("args"), list)
            and isinstance(event.get("kwargs"), dict)
        ):
            return "an event in the answer lacks its topic, args, kwargs or position"
    if more and not events:
        return "the answer says more but holds no event"
    return None


#: The keyword autobahn passes event details as: one no publisher's kwargs will use.
DETAILS_KWARG = "_broker_event_details"

#: What a caller's ``make_event`` makes of ``(topic, args, kwargs)`` (the position in
#: ``kwargs[POSITION_KEY]``): the form its handler takes.
E = TypeVar("E")


def describe_failure(exc: Exception) -> str:
    """How a failed ``broker.recover`` call reads in ``reason``: the exception's type and text."""
    return f"{type(exc).__name__}: {exc}"


async def _within(pending: Any, seconds: float, clock: Any = None) -> Any:
    """Await ``pending`` (a Twisted Deferred or an asyncio awaitable) for at most ``seconds``.

    ``clock`` (a Twisted ``IReactorTime``, the reactor when None) times a Deferred.
    """
    twisted = sys.modules.get("twisted.internet.defer")  # a Twisted session has imported it
    if twisted is not None and isinstance(pending, twisted.Deferred):
        if clock is None:
            from twisted.internet import reactor as clock
        pending.addTimeout(seconds, clock)
        return await pending
    return await asyncio.wait_for(pending, seconds)


@dataclass(frozen=True)
class Gap:
    """Why a resumed subscription could not fill its gap.

    ``answer`` is what ``on_unrecoverable`` gets: the node's ``unrecoverable``
    answer, or for a failed recovery one made with ``reason`` "recovery failed:
    ..." and the last position handled; ``failure`` says what failed (None when
    the node answered ``unrecoverable``); ``last`` is the last cursor delivered.
    """

    answer: dict[str, Any]
    failure: str | None
    last: int


class Gapless(Generic[E]):
    """Subscribe, then recover what was missed page by page, holding and deduping live events.

    The one subscribe-then-recover loop, shared by :func:`subscribe_gapless`
    and ``broker tail --from``. ``deliver`` gets lists of events in order,
    each made by ``make_event(topic, args, kwargs)``; without ``resume_from``
    live events pass straight through. A recovery call that fails in any way
    (an ERROR, no answer within ``timeout`` seconds on ``clock``, an answer of
    the wrong shape) is a :class:`Gap`, its ``failure`` worded by
    ``describe(exc)`` for an exception.
    """

    def __init__(
        self,
        session: Any,
        topic: str,
        match: str,
        deliver: Callable[[list[E]], object],
        make_event: Callable[[str, list[Any], dict[str, Any]], E],
        resume_from: tuple[str, int] | None = None,
        *,
        timeout: float = RECOVER_TIMEOUT,
        clock: Any = None,
        describe: Callable[[Exception], str] = describe_failure,
    ) -> None:
        from broker.history.resume import ResumeBuffer

        self.session, self.topic, self.match = session, topic, match
        self.deliver, self.make_event = deliver, make_event
        self.resume_from = resume_from
        self.timeout, self.clock, self.describe = timeout, clock, describe
        self.buffer: ResumeBuffer[E] | None = None
        if resume_from is not None:
            self.buffer = ResumeBuffer(resume_from[1], resume_from[0])

    def on_event(self, *args: Any, **kwargs: Any) -> None:
        """The subscription's handler: deliver a live event now, or hold it while recovering."""
        from broker.history import POSITION_KEY

        details = kwargs.pop(DETAILS_KWARG)
        event = self.make_event(details.topic or self.topic, list(args), kwargs)
        if self.buffer is None:
            self.deliver([event])
        else:
            position = kwargs.get(POSITION_KEY) or {}
            self.deliver(self.buffer.live(position.get("cursor"), event, position.get("epoch")))

    async def subscribe(self) -> Any:
        """Subscribe ``on_event``; returns autobahn's subscription (its errors propagate)."""
        from autobahn.wamp.types import SubscribeOptions

        options = SubscribeOptions(match=self.match, details_arg=DETAILS_KWARG)
        return await self.session.subscribe(self.on_event, self.topic, options=options)

    async def recover(self, stopped: Callable[[], bool] = lambda: False) -> Gap | None:
        """Deliver the recovered pages until the node says no ``more``, then the held live events.

        Returns the :class:`Gap` instead if the recovery fails or the node
        answers ``unrecoverable``; the live events stay held (:meth:`release`
        them to go on). ``stopped()`` true ends the paging early (the caller
        has all it wants). Nothing to do without ``resume_from``.
        """
        if self.buffer is None or self.resume_from is None:
            return None
        from broker.history import POSITION_KEY

        buffer, epoch = self.buffer, self.resume_from[0]
        while not stopped():
            try:
                call = self.session.call(
                    "broker.recover", self.topic, match=self.match, epoch=epoch, after=buffer.last
                )
                answer = await _within(call, self.timeout, self.clock)
                problem = page_problem(answer)
            except Exception as exc:  # an ERROR answer, a timeout, a lost session: the gap stays open
                problem = self.describe(exc)
            if problem is not None:
                made = {"unrecoverable": True, "reason": f"recovery failed: {problem}", "epoch": epoch}
                return Gap({**made, "cursor": buffer.last}, problem, buffer.last)
            if answer["unrecoverable"]:
                return Gap(answer, None, buffer.last)
            self.deliver(
                buffer.recovered(
                    (
                        e["position"]["cursor"],
                        self.make_event(e["topic"], e["args"], {**e["kwargs"], POSITION_KEY: e["position"]}),
                    )
                    for e in answer["events"]
                )
            )
            if not answer["more"]:
                break
        self.deliver(buffer.finish())
        return None

    def release(self) -> None:
        """After a gap: deliver the held live events; from here on live events pass through."""
        if self.buffer is not None:
            self.buffer.last = 0  # nothing to dedupe against
            self.deliver(self.buffer.finish())


def _sdk_event(topic: str, args: list[Any], kwargs: dict[str, Any]) -> tuple[str, Any, dict[str, Any]]:
    """``(topic, data, position)`` for a :func:`subscribe_gapless` handler."""
    from broker.history import POSITION_KEY

    return topic, args[0] if args else None, kwargs.get(POSITION_KEY) or {}


async def subscribe_gapless(
    session: Any,
    handler: Callable[[str, Any, dict[str, Any]], object],
    topic: str,
    match: str = "exact",
    resume_from: tuple[str, int] | None = None,
    on_unrecoverable: Callable[[dict[str, Any]], object] | None = None,
    recover_timeout: float = RECOVER_TIMEOUT,
) -> Any:
    """Subscribe on an autobahn ``session``, then recover what was missed since ``resume_from``.

    ``handler(topic, data, position)`` sees every event once, in order:
    recovered ones first, page after page until the node says no ``more``,
    then live ones (duplicates between the two are dropped by cursor).
    ``resume_from`` is ``(epoch, cursor)`` from the last position the caller
    handled; without it, only live events.

    If the gap can't be filled — the node answers ``unrecoverable``, or the
    recovery fails for any reason: an error, no answer within
    ``recover_timeout`` seconds, an answer of the wrong shape —
    ``on_unrecoverable(answer)`` gets the node's answer (with the current
    ``epoch`` and ``cursor``; for a failure, ``reason`` says what failed and
    ``epoch``/``cursor`` are the last position handled), and live events
    continue from there: reload your state first. Without
    ``on_unrecoverable``, the subscription is cancelled and
    :class:`Unrecoverable` is raised: the gap is never skipped silently.
    Returns autobahn's subscription.
    """

    def deliver(events: list[tuple[str, Any, dict[str, Any]]]) -> None:
        for event in events:
            handler(*event)

    gapless = Gapless(session, topic, match, deliver, _sdk_event, resume_from, timeout=recover_timeout)
    subscription = await gapless.subscribe()
    gap = await gapless.recover()
    if gap is not None:
        if on_unrecoverable is None:
            await subscription.unsubscribe()
            raise Unrecoverable(gap.answer)
        on_unrecoverable(gap.answer)
        gapless.release()
    return subscription
