"""Publishing and gapless subscribing for services that already hold an autobahn session.

Why here: such a service needs no HTTP round trip, but it must publish with
acknowledgement, or a refused publish (``wamp.error.not_authorized``,
``wamp.error.invalid_uri``) is silently dropped by the router. autobahn is
imported inside the function, so ``import broker.client`` never imports it.
"""

from __future__ import annotations

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


async def subscribe_gapless(
    session: Any,
    handler: Callable[[str, Any, dict[str, Any]], object],
    topic: str,
    match: str = "exact",
    resume_from: tuple[str, int] | None = None,
    on_unrecoverable: Callable[[dict[str, Any]], object] | None = None,
) -> Any:
    """Subscribe on an autobahn ``session``, then recover what was missed since ``resume_from``.

    ``handler(topic, data, position)`` sees every event once, in order:
    recovered ones first, then live ones (duplicates between the two are
    dropped by cursor). ``resume_from`` is ``(epoch, cursor)`` from the last
    position the caller handled; without it, only live events. If the gap
    can't be filled, ``on_unrecoverable(answer)`` gets the node's answer (with
    the current ``epoch`` and ``cursor``) and live events continue from there.
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
            answer = await session.call("broker.recover", topic, match=match, epoch=epoch, after=buffer.last)
            if answer["unrecoverable"]:
                buffer.last = 0  # nothing to dedupe against: release every live event
                if on_unrecoverable is not None:
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
