"""``make test``'s bounded run of a stalled subscriber with the router's memory (tests/faults/stall.py)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.faults import BOUNDED, failed, stall
from tests.node import Node

pytestmark = pytest.mark.node


def test_a_stalled_subscriber_costs_the_router_a_bounded_amount(make_node: Callable[..., Node]) -> None:
    findings = stall.run(make_node(), BOUNDED)
    assert not failed(findings), failed(findings)
