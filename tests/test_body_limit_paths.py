"""Which requests :mod:`broker.router.crossbar.body_limit` holds to a body limit (no node needed)."""

from __future__ import annotations

import pytest

from broker.router.crossbar.body_limit import limit_for
from broker.router.state import STATE


@pytest.mark.parametrize(
    "target",
    [
        b"/api/publish",
        b"/api/publish?x=1",
        b"/api",
        b"/api/other",
        b"/%61pi/publish",  # Twisted routes it to /api, so it is limited too
        b"http://127.0.0.1:8080/api/publish",
    ],
)
def test_the_publish_api_paths_have_its_limit(target: bytes) -> None:
    assert STATE.publish_gate is None  # no component here: the default limit
    assert limit_for(STATE, target) == 65536


@pytest.mark.parametrize("target", [b"/", b"/ws", b"/lp/open", b"/apix/publish", b"/health"])
def test_other_paths_are_left_alone(target: bytes) -> None:
    assert limit_for(STATE, target) is None
