"""A node's id, and long-poll transport ids that name the node that issued them.

Why: a long-poll session lives in the memory of the node that opened it, so
behind a load balancer every ``/lp/<transport>/...`` request of that session
must reach that node (a request reaching another one finds no such
transport: Socket.IO's "Session ID unknown"). Broker's transport ids are
``<node id>.<random>``, so a proxy can route on the path alone (the
``map`` in docs/operators.md) and a node reached by mistake can say which
node the session belongs to. Clients only echo the id in the path; for a
single node nothing changes.

The node id comes from ``BROKER_NODE_ID`` (one per node of a cluster, fixed
across restarts so the proxy's map stays true), else one is drawn at start.
It must be URL-safe and contain no dot, the separator: 1 to 64 of
``A-Z a-z 0-9 _ -``.
"""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Mapping
from typing import Final

from broker.errors import ConfigError

#: The environment variable naming the node.
ENV_NODE_ID: Final = "BROKER_NODE_ID"
#: What a node id may be (the nginx map in docs/operators.md matches the same characters).
NODE_ID_PATTERN: Final = r"[A-Za-z0-9_-]{1,64}"
_NODE_ID: Final = re.compile(NODE_ID_PATTERN)
#: Between the node id and the random part of a transport id.
SEPARATOR: Final = "."
#: Random bytes in a transport id (it is the session's only credential on the long-poll path).
TOKEN_BYTES: Final = 16


def check_node_id(value: str) -> str:
    """``value`` if it is a valid node id; else a :class:`ConfigError` naming the rule."""
    if not _NODE_ID.fullmatch(value):
        raise ConfigError(
            ENV_NODE_ID,
            f"{value[:80]!r} is not a node id: 1 to 64 characters of A-Z a-z 0-9 _ - (no dot: "
            "long-poll transport ids are <node id>.<random>)",
        )
    return value


def node_id_from(environ: Mapping[str, str]) -> str:
    """The node's id: ``BROKER_NODE_ID`` checked, else a fresh random one (unset or empty)."""
    value = environ.get(ENV_NODE_ID, "")
    return check_node_id(value) if value else uuid.uuid4().hex


def new_transport_id(node_id: str) -> str:
    """A fresh long-poll transport id issued by ``node_id``: ``<node id>.<random, URL-safe>``."""
    return f"{node_id}{SEPARATOR}{secrets.token_urlsafe(TOKEN_BYTES)}"


def issuing_node(transport_id: str) -> str | None:
    """The node that issued ``transport_id``, or None if it names none (not one of Broker's)."""
    node, separator, token = transport_id.partition(SEPARATOR)
    if not separator or not token or not _NODE_ID.fullmatch(node):
        return None
    return node
