"""The dashboard's presence view, in real Chromium: the operator panel (``/?operator``) lists who is
on each subscribed topic with presence (``broker.presence``) and the latest joins and leaves (events
on ``broker.presence.public.room.``), updated as sessions come and go."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator

import pytest

from tests.chromium import opener
from tests.node import OPERATOR_SECRET, Node
from tests.rawwamp import SUBSCRIBED
from tests.test_dashboard import Dashboard
from tests.test_presence_node import user
from tests.test_recovery import anonymous

pytestmark = pytest.mark.node

EVENT = re.compile(r" (join|leave) (\S+) (\S+)$")  # after the local time


@pytest.fixture
def dashboards() -> Iterator[Callable[[str], Dashboard]]:
    yield from opener(Dashboard)  # type: ignore[misc]


def test_operator_panel_shows_who_is_on_a_topic_and_their_joins_and_leaves(
    node: Node, dashboards: Callable[[str], Dashboard]
) -> None:
    topic = f"public.room.{uuid.uuid4().hex[:8]}"
    page = dashboards(f"{node.url}/?operator")
    assert "signed in as operator" in page.ask(operator=OPERATOR_SECRET)["status"]
    visitor, alice, alice_again = anonymous(node), user(node, "alice", topic), user(node, "alice", topic)
    for client in (visitor, alice, alice_again):
        assert client.subscribe(topic)[0] == SUBSCRIBED
    shown = page.ask(presence=topic, count=3)
    assert (shown["count"], shown["users"], shown["anonymous"]) == ("3", "alice \u00d72", "1")
    joins = [EVENT.search(line).groups() for line in shown["events"] if topic in line]  # type: ignore[union-attr]
    assert sorted(joins) == [
        ("join", topic, "(anonymous)"),
        ("join", topic, "alice"),
        ("join", topic, "alice"),
    ]

    alice_again.close()
    shown = page.ask(presence=topic, count=2)
    assert (shown["count"], shown["users"], shown["anonymous"]) == ("2", "alice", "1")
    assert EVENT.search(shown["events"][0]).groups() == ("leave", topic, "alice")  # type: ignore[union-attr]
    assert page.ask(inspect=True)["errors"] == []
