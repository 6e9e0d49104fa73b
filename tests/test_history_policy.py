"""History policies: which topics keep history, and how much."""

from __future__ import annotations

import pytest

from broker.history import Retention
from broker.history.policy import DEFAULT_POLICIES, HistoryPolicy, retention_for

SHORT = Retention(max_events=10, max_age=60.0)
MEDIUM = Retention(max_events=100, max_age=600.0)
LONG = Retention(max_events=1000, max_age=3600.0)


@pytest.mark.parametrize(
    "topic", ["wamp.x", "wamp.session.on_join", "broker.x", "broker.recover", "broker.error.x"]
)
def test_reserved_topics_keep_no_history(topic: str) -> None:
    assert retention_for(DEFAULT_POLICIES, topic) is None
    # not even when a policy names them
    named = (HistoryPolicy(topic, "exact", LONG), HistoryPolicy("", "prefix", LONG))
    assert retention_for(named, topic) is None


@pytest.mark.parametrize("topic", ["wampx.y", "brokers.y", "my.wamp.x", "wamp", "broker"])
def test_look_alikes_of_reserved_topics_are_ordinary(topic: str) -> None:
    assert retention_for(DEFAULT_POLICIES, topic) == LONG


def test_first_matching_policy_wins() -> None:
    policies = (
        HistoryPolicy("chat.lobby", "exact", SHORT),
        HistoryPolicy("chat..typing", "wildcard", SHORT),
        HistoryPolicy("chat.", "prefix", MEDIUM),
        HistoryPolicy("", "prefix", LONG),
    )
    assert retention_for(policies, "chat.lobby") is SHORT
    assert retention_for(policies, "chat.room1.typing") is SHORT
    assert retention_for(policies, "chat.room1") is MEDIUM
    assert retention_for(policies, "chat.room1.typing.now") is MEDIUM
    assert retention_for(policies, "chat.lobby.x") is MEDIUM
    assert retention_for(policies, "news.today") is LONG


def test_broad_policy_first_shadows_specific_ones() -> None:
    policies = (HistoryPolicy("", "prefix", LONG), HistoryPolicy("chat.lobby", "exact", SHORT))
    assert retention_for(policies, "chat.lobby") is LONG


def test_no_matching_policy_keeps_no_history() -> None:
    policies = (HistoryPolicy("chat.", "prefix", MEDIUM), HistoryPolicy("orders.new", "exact", SHORT))
    assert retention_for(policies, "news.today") is None
    assert retention_for(policies, "orders.new.eu") is None
    assert retention_for(policies, "chat") is None
    assert retention_for((), "chat.lobby") is None


def test_zero_max_events_keeps_no_history_even_if_a_later_policy_matches() -> None:
    off = Retention(max_events=0, max_age=3600.0)
    policies = (HistoryPolicy("chat.secret", "exact", off), HistoryPolicy("", "prefix", LONG))
    assert retention_for(policies, "chat.secret") is None
    assert retention_for(policies, "chat.public") is LONG


def test_default_policies_cover_ordinary_topics() -> None:
    assert retention_for(DEFAULT_POLICIES, "orders.created") == Retention(max_events=1000, max_age=3600.0)
    assert retention_for(DEFAULT_POLICIES, "a") == Retention(max_events=1000, max_age=3600.0)
    assert DEFAULT_POLICIES == (HistoryPolicy("", "prefix", Retention(max_events=1000, max_age=3600.0)),)
