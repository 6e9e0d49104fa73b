"""``make test``'s bounded run of the fuzzer (tests/faults/fuzz.py)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.faults import BOUNDED, failed, fuzz
from tests.node import Node

pytestmark = pytest.mark.node


def test_fuzzed_wamp_and_frames_neither_crash_nor_hang_and_the_canary_gets_everything(
    make_node: Callable[..., Node],
) -> None:
    findings = fuzz.run(make_node(), BOUNDED)
    assert not failed(findings), failed(findings)
