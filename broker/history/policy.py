"""Which topics keep history, and how much: a table of patterns, most specific first.

Configured in Broker's settings as ``history.policies``, a list of
``{"uri", "match", "max_events", "max_age"}``. A topic takes the first policy
whose pattern covers it, so list specific patterns before broad ones. The
default keeps the last 1000 events, up to an hour, of every topic outside the
reserved ``wamp.`` and ``broker.`` namespaces, which never get positions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from broker.core.uris import Match, is_reserved, topic_matches
from broker.history import Retention


@dataclass(frozen=True)
class HistoryPolicy:
    """Retention for the topics matching ``(uri, match)``."""

    uri: str
    match: Match
    retention: Retention


DEFAULT_POLICIES: Final = (HistoryPolicy("", "prefix", Retention(max_events=1000, max_age=3600.0)),)


def retention_for(policies: tuple[HistoryPolicy, ...], topic: str) -> Retention | None:
    """The retention of ``topic``, or None when it keeps no history (and gets no position)."""
    if is_reserved(topic):
        return None
    for policy in policies:
        if topic_matches(topic, policy.uri, policy.match):
            return policy.retention if policy.retention.max_events > 0 else None
    return None
