"""A port taken after ``broker run`` checked it: one line in the log, not crossbar's tracebacks.

Why: ``broker run`` binds the web transport's port before it starts crossbar
and refuses a port in use in one line (:func:`broker.cli.main._check_listen`). The
port can still be taken between that check and crossbar's listen, seconds
later (another process, a second ``broker run`` from another directory).
Crossbar 26.10 then logs the ``CannotListenError`` with its traceback in the
router worker, and again as an ``ApplicationError`` with the controller's
traceback ("Could not start node: ..."): about 50 lines for one fact.

:func:`install` (in the router worker, before the transports start) turns
that failure into one without frames whose message is the line ``broker
run`` prints (:func:`broker.config.nodeconfig.listen_problem`: the port, the OS's
"Address already in use", ``--port``/``BROKER_PORT``);
:func:`install_controller` (in the launcher) logs the controller's verdict
on it in one line. The node still exits 1, and never says "Broker ready"
(:mod:`broker.router.readiness`).

Item 15 of the index in :mod:`broker.router.crossbar`. Wraps
``crossbar/worker/transport.py: RouterTransport.start`` and replaces
``crossbar/node/main.py: failure_format_traceback``. Tests: ``tests/test_node.py``.
"""

from __future__ import annotations

from typing import Any, Final

from twisted.internet.error import CannotListenError
from twisted.python.failure import Failure

from broker.config.nodeconfig import listen_problem

#: The error crossbar's router worker answers the controller with when a transport cannot listen.
CANNOT_LISTEN: Final = "crossbar.error.cannot_listen"


class PortUnavailable(Exception):
    """A transport's port could not be bound; the message is the one line to log."""


def one_line(failure: Failure) -> Failure:
    """``failure`` itself, unless it is a ``CannotListenError``: then one without frames."""
    error = failure.value
    if not isinstance(error, CannotListenError):
        return failure
    cause = error.socketError
    if not isinstance(cause, OSError):
        cause = OSError(0, str(cause))
    return Failure(PortUnavailable(listen_problem(error.interface or "", int(error.port), cause)))


def install() -> None:
    """In the router worker: transports that cannot listen fail with :class:`PortUnavailable`."""
    from crossbar.worker.transport import RouterTransport

    original = RouterTransport.start

    def start(self: Any, *args: Any, **kwargs: Any) -> Any:
        return original(self, *args, **kwargs).addErrback(one_line)

    RouterTransport.start = start  # type: ignore[method-assign]


def verdict(failure: Any, original: Any) -> str:
    """The controller's "Could not start node" text: one line for a port that cannot listen."""
    value = getattr(failure, "value", None)
    if getattr(value, "error", None) == CANNOT_LISTEN:
        return "a transport could not listen (the line above names the port)"
    text: str = original(failure)
    return text


def install_controller() -> None:
    """In the controller (the launcher): that verdict, instead of the controller's traceback."""
    import crossbar.node.main as node_main

    original = node_main.failure_format_traceback  # type: ignore[attr-defined]
    node_main.failure_format_traceback = lambda failure: verdict(failure, original)  # type: ignore[attr-defined]
