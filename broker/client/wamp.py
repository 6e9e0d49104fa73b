"""Publishing and gapless subscribing for services that already hold an autobahn session.

Why here: such a service needs no HTTP round trip, but it must publish with
acknowledgement, or a refused publish (``wamp.error.not_authorized``,
``wamp.error.invalid_uri``) is silently dropped by the router; and it must
recover what it missed without ever skipping a gap silently. autobahn (and
Twisted, for a Twisted session) is imported inside the functions, so
``import broker.client`` never imports it.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import Any


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


async def _within(pending: Any, seconds: float) -> Any:
    """Await ``pending`` (a Twisted Deferred or an asyncio awaitable) for at most ``seconds``."""
    twisted = sys.modules.get("twisted.internet.defer")  # a Twisted session has imported it
    if twisted is not None and isinstance(pending, twisted.Deferred):
        from twisted.internet import reactor

        pending.addTimeout(seconds, reactor)
        return await pending
    return await asyncio.wait_for(pending, seconds)


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
    from autobahn.wamp.types import SubscribeOptions

    from broker.history import POSITION_KEY
    from broker.history.resume import ResumeBuffer

    buffer: ResumeBuffer[tuple[str, Any, dict[str, Any]]] = ResumeBuffer(resume_from[1] if resume_from else 0)

    def deliver(events: list[tuple[str, Any, dict[str, Any]]]) -> None:
        for event in events:
            handler(*event)

    def on_event(*args: Any, **kwargs: Any) -> None:
        details = kwargs.pop("details")
        position = kwargs.pop(POSITION_KEY, None) or {}
        event = (details.topic or topic, args[0] if args else None, position)
        deliver(buffer.live(position.get("cursor"), event))

    subscription = await session.subscribe(
        on_event, topic, options=SubscribeOptions(match=match, details_arg="details")
    )
    if resume_from is not None:
        epoch = resume_from[0]
        while True:
            try:
                answer = await _within(
                    session.call("broker.recover", topic, match=match, epoch=epoch, after=buffer.last),
                    recover_timeout,
                )
                problem = page_problem(answer)
            except Exception as exc:  # an ERROR answer, a timeout, a lost session: the gap stays open
                problem = f"{type(exc).__name__}: {exc}"
            if problem is not None:
                answer = {
                    "unrecoverable": True,
                    "reason": f"recovery failed: {problem}",
                    "epoch": epoch,
                    "cursor": buffer.last,
                }
            if answer["unrecoverable"]:
                buffer.last = 0  # nothing to dedupe against: release every live event
                if on_unrecoverable is None:
                    await subscription.unsubscribe()
                    raise Unrecoverable(answer)
                on_unrecoverable(answer)
                break
            deliver(
                buffer.recovered(
                    (
                        e["position"]["cursor"],
                        (e["topic"], e["args"][0] if e["args"] else None, e["position"]),
                    )
                    for e in answer["events"]
                )
            )
            if not answer["more"]:
                break
    deliver(buffer.finish())
    return subscription
