"""The position hook's refusals go out as crossbar's answers do: through ``Router.send``.

Crossbar answers every PUBLISH through ``Router.send``, which counts the
message and skips a session whose transport is gone. The hook's own
refusals (``broker.error.history_unavailable``, ``not_ready``,
``too_large``) wrote to ``session._transport`` instead: uncounted, and
when a Redis engine answered late, after the publisher had left, an
``AttributeError`` ("Unhandled error in Deferred" in the node's log, once
the garbage collector got to it). Here against crossbar's own ``Router``.
"""

from __future__ import annotations

import warnings
from types import SimpleNamespace
from typing import Any

from autobahn.wamp import message
from twisted.internet.testing import MemoryReactor

from broker.router.positions import HISTORY_UNAVAILABLE, _refuse

with warnings.catch_warnings():
    # crossbar imports web3, which imports websockets.legacy: deprecated, not ours to fix
    warnings.filterwarnings("ignore", "websockets.legacy is deprecated", DeprecationWarning)
    from crossbar.router.router import Router


class Transport:
    """Keeps what it is sent."""

    def __init__(self) -> None:
        self.sent: list[Any] = []

    def send(self, msg: Any) -> None:
        self.sent.append(msg)


def test_a_refusal_to_a_publisher_that_has_left_is_dropped_and_one_beside_it_is_sent() -> None:
    router = Router(
        SimpleNamespace(_reactor=MemoryReactor()), SimpleNamespace(id="app", config={"name": "app"})
    )
    acknowledged = message.Publish(3, "public.gone", args=[1], acknowledge=True)
    left = SimpleNamespace(_transport=None)  # crossbar clears it when the session closes
    _refuse(router, left, acknowledged, HISTORY_UNAVAILABLE, "not stored")
    staying = SimpleNamespace(_transport=Transport())
    _refuse(router, staying, acknowledged, HISTORY_UNAVAILABLE, "not stored")
    (error,) = staying._transport.sent
    assert (error.request_type, error.request, error.error, error.args) == (
        message.Publish.MESSAGE_TYPE,
        3,
        HISTORY_UNAVAILABLE,
        ["not stored"],
    )
    assert router._message_stats["sent"] == {"error": 2}  # counted as crossbar counts its answers
    _refuse(router, staying, message.Publish(4, "public.gone", args=[1]), HISTORY_UNAVAILABLE, "not stored")
    assert len(staying._transport.sent) == 1  # an unacknowledged publish is refused silently
