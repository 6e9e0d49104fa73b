"""Process-wide state shared by the router component and Broker's HTTP resources.

Crossbar instantiates web resources and router components separately, in the
same router worker process; this module is the one place they meet.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from broker.router import metrics


@dataclass
class NodeState:
    """What the HTTP side needs to know about the router side."""

    #: The joined Broker component session, or None while starting.
    session: Any = None
    #: The history store (a :class:`broker.history.HistoryStore`) and its policies, once configured.
    history: Any = None
    history_policies: tuple[Any, ...] = ()
    #: The node's message limit in bytes (:func:`broker.config.nodeconfig.message_limit`; None: none):
    #: every event must be deliverable, and every recovery answer fit, within it.
    message_limit: int | None = None
    #: The HTTP publish API's gate (a :class:`broker.core.publishing.PublishGate`), once configured.
    publish_gate: Any = None
    #: Set when Broker's component leaves (the node is stopping): publishes are refused from then
    #: on, as they could no longer be stored.
    stopping: bool = False
    #: Counters surfaced on /health (rejections by reason); /metrics has them too.
    rejections: dict[str, int] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        """Whether Broker's component has joined and registered its procedures."""
        return self.session is not None

    def count_rejection(self, reason: str) -> None:
        """Count one connection or message refused for ``reason``."""
        self.rejections[reason] = self.rejections.get(reason, 0) + 1
        metrics.count_rejection(reason)


STATE = NodeState()
