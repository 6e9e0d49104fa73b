"""The crossbar controller: SIGHUP forwarded for a live reload, SIGTERM a clean stop.

Why: ``broker run`` becomes the node's controller process, whose PID is in
``node.pid`` — the process an operator (or ``broker reload --signal``)
sends SIGHUP to. Crossbar 26.10's controller installs a handler for SIGINT
only (``NodeController.onJoin``) and Twisted one for SIGTERM; SIGHUP keeps
its default action, which *terminates* the controller and with it every
connection. This launcher runs crossbar's own entry point in the same
process, after installing a SIGHUP handler that passes the signal on to the
controller's child processes that handle SIGHUP themselves — Broker's router
worker, once its component is up (:mod:`broker.router.reloader`). A worker
that does not handle it yet (still starting) is skipped and the skip is
logged, rather than killed by the default action. Linux: the children and
their signal dispositions are read from ``/proc``.

SIGTERM, what a supervisor (systemd, Docker, Kubernetes) sends for an
ordinary stop, reaches Twisted's handler, which stops the reactor without
the controller's shutdown: the workers still go, but crossbar finds no
"clean" verdict and exits 1, so every stop would be recorded as a failure.
The launcher makes SIGTERM do what Ctrl-C does (the controller's SIGINT
handler: workers stopped, exit 0). A crash or ``kill -9`` still ends with a
non-zero status.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType


def children(pid: int) -> list[int]:
    """PIDs whose parent is ``pid`` (the controller's workers; the tests' nodes use it too)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # the command name may contain spaces: the ppid is after the last ')'
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _catches(pid: int, signum: int) -> bool:
    """Whether process ``pid`` has a handler installed for ``signum`` (``SigCgt`` in /proc)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("SigCgt:"):
                return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
    except (OSError, ValueError):
        pass
    return False


def forward_sighup(signum: int, frame: object) -> None:
    """The controller's SIGHUP handler: pass it on to each worker that reloads on it."""
    for pid in children(os.getpid()):
        if _catches(pid, signal.SIGHUP):
            os.kill(pid, signal.SIGHUP)
            print(f"broker: SIGHUP: reloading the config in worker PID {pid}", file=sys.stderr, flush=True)
        else:
            print(
                f"broker: SIGHUP: worker PID {pid} does not reload (yet): skipped",
                file=sys.stderr,
                flush=True,
            )


def stop_as_for_sigint(reactor: object, signum: int, frame: FrameType | None = None) -> None:
    """Twisted's SIGTERM handler, replaced: run the SIGINT handler (the controller's clean
    shutdown once it has joined; before that, Twisted's own, which stops the reactor)."""
    print("broker: SIGTERM: stopping the node (as for Ctrl-C)", file=sys.stderr, flush=True)
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler):
        handler(signal.SIGINT, frame)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``crossbar`` with ``argv`` (``start --cbdir ...``) as this process."""
    signal.signal(signal.SIGHUP, forward_sighup)
    from broker.router.crossbar import controller

    controller.install(stop_as_for_sigint)  # crossbar installs its own choice of reactor later
    from crossbar import run

    sys.argv = ["crossbar", *(sys.argv[1:] if argv is None else argv)]
    status = run()  # type: ignore[no-untyped-call]
    return int(status or 0)


if __name__ == "__main__":
    sys.exit(main())
