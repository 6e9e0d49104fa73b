"""Publishing from a service that already holds an autobahn WAMP session.

Why here: such a service needs no HTTP round trip, but it must publish with
acknowledgement, or a refused publish (``wamp.error.not_authorized``,
``wamp.error.invalid_uri``) is silently dropped by the router. autobahn is
imported inside the function, so ``import broker.client`` never imports it.
"""

from __future__ import annotations

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
