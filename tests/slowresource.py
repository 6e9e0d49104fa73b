"""A web resource whose attachment holds crossbar's path start-up back for a while.

Loaded inside a test node's router worker (tests/test_readiness.py), where it
stands for any path whose service is slow to start. Crossbar's controller
attaches the web paths one call at a time, so the resource stops the controller
(its worker's parent) with SIGSTOP when it is created and lets it go on
``BROKER_TEST_SLOW_PATH_SECONDS`` later; the worker's reactor keeps serving the
paths attached so far meanwhile.
"""

from __future__ import annotations

import os
import signal
from typing import Any

from twisted.internet import reactor
from twisted.web.resource import Resource


class SlowResource(Resource):
    """Pauses the node's controller for ``BROKER_TEST_SLOW_PATH_SECONDS`` when created."""

    isLeaf = True

    def __init__(self, *args: Any) -> None:
        super().__init__()
        controller = os.getppid()
        os.kill(controller, signal.SIGSTOP)
        delay = float(os.environ.get("BROKER_TEST_SLOW_PATH_SECONDS", "0"))
        reactor.callLater(delay, os.kill, controller, signal.SIGCONT)  # type: ignore[attr-defined]

    def render_GET(self, request: Any) -> bytes:
        return b"slow\n"
