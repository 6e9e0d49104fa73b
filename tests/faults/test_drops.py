"""``make test``'s bounded run of random subscriber drops with recovery (tests/faults/drops.py)."""

from __future__ import annotations

import pytest

from tests.faults import BOUNDED, drops, failed
from tests.node import Node

pytestmark = pytest.mark.node


def test_dropping_subscribers_recover_every_event_exactly_once(node: Node) -> None:
    findings = drops.run(node, BOUNDED)
    assert not failed(findings), failed(findings)
