"""``make test``'s bounded run of stopping a node mid-stream (tests/faults/crash.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults import BOUNDED, crash, failed

pytestmark = pytest.mark.node


def test_acknowledged_events_survive_every_way_a_node_stops(tmp_path: Path) -> None:
    findings = crash.run(tmp_path, BOUNDED)
    assert not failed(findings), failed(findings)
