"""The two patches in crossbar's controller process (the launcher), not in the router worker.

What crossbar 26.10 does: Twisted's ``SIGTERM`` handler stops the reactor at
once (crossbar's clean shutdown runs only for ``SIGINT``), and a transport
that cannot listen is logged by the controller with its traceback. What
Broker does instead: ``SIGTERM`` runs the ``SIGINT`` handler
(:func:`broker.router.launcher.stop_as_for_sigint`), and the controller's
verdict on a port in use is one line (:func:`.listen.install_controller`,
item 15 of the index in :mod:`broker.router.crossbar`).

Replaces ``twisted/internet/base.py: ReactorBase.sigTerm`` (looked up when
the reactor starts, so patching the class needs no reactor yet) and
``crossbar/node/main.py: failure_format_traceback``. Tests:
``tests/test_systemd.py``, ``tests/test_node.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from types import FrameType

from twisted.internet.base import ReactorBase

from broker.router.crossbar import listen


def install(sigterm: Callable[[object, int, FrameType | None], None]) -> None:
    """``sigterm`` as the reactor's SIGTERM handler; the one-line "cannot listen" verdict."""
    ReactorBase.sigTerm = sigterm  # type: ignore[method-assign,assignment]
    listen.install_controller()  # a port taken after broker run's check: one line, no traceback
