"""The node's state, one typed object: what the router component owns and its resources and hooks read.

Why process-global: crossbar instantiates web resources (``/api``,
``/health``, ``/metrics``, from the classname in the node config) and router
components separately, in the same router worker process, and gives neither
a reference to the other; so the one object they share is :data:`STATE`,
module-level. Broker's router component owns it (it fills it on join and
empties it on leave) and hands it to the patches it installs
(:func:`broker.router.crossbar.install`); the resources crossbar creates find
it here. Nothing else is shared.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from broker.core.nodeid import node_id_from
from broker.router.counters import count_rejection

if TYPE_CHECKING:
    from autobahn.twisted.wamp import ApplicationSession

    from broker.core.publishing import PublishGate
    from broker.history import HistoryStore
    from broker.history.policy import HistoryPolicy
    from broker.router.delivery import LocalDelivery


@dataclass
class NodeState:
    """What the HTTP side needs to know about the router side."""

    #: This node's id (``BROKER_NODE_ID``, else drawn at start; :mod:`broker.core.nodeid`), fixed
    #: for the life of the router worker: /health answers it, long-poll transport ids start with it.
    node_id: str = field(default_factory=lambda: node_id_from(os.environ))
    #: The joined Broker component session, or None while starting.
    session: ApplicationSession | None = None
    #: The history store and its policies, once configured.
    history: HistoryStore | None = None
    history_policies: tuple[HistoryPolicy, ...] = ()
    #: Whether the history engine is shared with other nodes (``HistoryStore.shared``: Redis), from
    #: the component's join on, kept while the node stops: every publish goes through it then.
    shared_history: bool = False
    #: The node's message limit in bytes (:func:`broker.config.nodeconfig.message_limit`; None: none):
    #: every event must be deliverable, and every recovery answer fit, within it.
    message_limit: int | None = None
    #: Where stored events reach this node's subscribers (the HTTP API's batches, other
    #: processes' events), from the component's join to its leave.
    delivery: LocalDelivery | None = None
    #: The HTTP publish API's gate, once configured.
    publish_gate: PublishGate | None = None
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
        count_rejection(reason)


STATE = NodeState()
