"""``make test``'s bounded runs of the floods and replays (tests/faults/floods.py, replay.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.faults import BOUNDED, failed, floods, replay
from tests.node import Node

pytestmark = pytest.mark.node


def test_fragment_and_long_poll_floods_are_cut_off_and_the_canary_gets_everything(
    make_node: Callable[..., Node],
) -> None:
    findings = floods.run(make_node(), BOUNDED)
    assert not failed(findings), failed(findings)


def test_a_slowloris_is_closed_by_the_deadline_and_real_clients_get_in(
    make_node: Callable[..., Node],
) -> None:
    findings = floods.run_slowloris(make_node(floods.small_budget), BOUNDED)
    assert not failed(findings), failed(findings)


def test_replays_and_idempotent_retries_hold_across_a_restart(tmp_path: Path) -> None:
    findings = replay.run(tmp_path, BOUNDED)
    assert not failed(findings), failed(findings)
