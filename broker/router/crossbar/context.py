"""What every patch's installer is handed: the node's state, the reactor, the settings they read.

Why: the patches run inside crossbar's own objects (protocols, sessions,
resources) that Broker does not create, so they cannot be given Broker's
state as a constructor argument; :func:`broker.router.crossbar.install`
hands this one object to each installer instead, and each closes over what
it needs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from broker.router.state import NodeState


class Clock(Protocol):
    """The part of a Twisted reactor the patches' timers need (``task.Clock`` in tests)."""

    def callLater(self, delay: float, callable: Callable[..., object], *args: object) -> Any: ...

    def seconds(self) -> float: ...


@dataclass(frozen=True)
class Door:
    """The arguments of one :func:`broker.router.crossbar.install`, for every installer."""

    #: The node's one state object (owned by Broker's router component).
    state: NodeState
    #: The reactor the patches' timers run on.
    reactor: Clock
    #: ``hello_timeout``: seconds a WebSocket may take to establish a WAMP session.
    hello_timeout: float
    #: ``slow_subscriber.max_buffer_bytes``: what may wait for one WebSocket peer.
    max_buffer_bytes: int
    #: ``metrics.max_namespaces``: the namespace labels' cap.
    max_namespaces: int
    #: ``fast_path``: EVENTs framed once and written as they are (:mod:`.frames`).
    fast_path: bool = True
