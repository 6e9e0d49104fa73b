"""An HTTP connection's own and peer addresses, asked of its transport once, not per request.

What Twisted does: every ``twisted.web.http.Request`` asks its channel for
both addresses when it is made (``Request.__init__``: ``self.client =
channel.getPeer()``, ``self.host = channel.getHost()``), and
``HTTPChannel.getHost``/``getPeer`` ask the transport each time:
``getsockname`` is a system call, and each answer a new address object
(~5 µs of a keep-alive ``POST /api/publish``'s ~270 µs of router CPU, for
two values that cannot change while the connection is open).

What Broker does instead: each ``HTTPChannel`` keeps the addresses its
transport gave the first time, for that transport (a channel handed another
transport asks it again). Every request on the connection gets the same
address objects (Twisted's ``IPv4Address``/``IPv6Address``, which nothing in
crossbar or Broker changes). Item 19 of the index in
:mod:`broker.router.crossbar`. Wraps ``twisted/web/http.py:
HTTPChannel.getPeer`` and ``HTTPChannel.getHost``. Tests:
``tests/test_http_peers.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.web import http


def kept(name: str, original: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``original`` (an ``HTTPChannel`` address method) answering from what the channel's current
    transport answered first, kept on the channel under ``name``."""

    def address(self: Any) -> Any:
        transport = self.transport
        found = self.__dict__.get(name)
        if found is not None and found[0] is transport:
            return found[1]
        value = original(self)
        if transport is not None:
            self.__dict__[name] = (transport, value)
        return value

    return address


def install() -> None:
    """Keep each HTTP connection's addresses from its first request on."""
    channel = http.HTTPChannel
    channel.getPeer = kept("_broker_peer", channel.getPeer)  # type: ignore[method-assign]
    channel.getHost = kept("_broker_host", channel.getHost)  # type: ignore[method-assign]
