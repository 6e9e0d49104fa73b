"""Group commit of the HTTP publish API's nonces: one journal write per reactor turn.

Why: every accepted nonce must be on disk before its request goes on
(docs/http-publish.md, "Across restarts"), and one SQLite commit per request
was the largest single cost of a single-event publish. The requests read in
one turn of the reactor hold their nonces in the gate
(:meth:`broker.core.publishing.PublishGate.admit` with ``hold_nonce``) and
wait on :meth:`GroupCommit.after` (a callback, not a Deferred); at the start of the next turn one
:meth:`~broker.core.publishing.PublishGate.commit_nonces` writes them all,
and only then does each request go on (is stored, dispatched, answered). A
write that fails fails every request waiting on it (answered 500, nothing
published); their nonces stay refused in memory and are written by the next
commit. Tests: ``tests/test_nonce_commit.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, cast

from twisted.logger import Logger
from twisted.python.failure import Failure

_log = Logger(namespace="broker.publish_api")


class Committer(Protocol):
    """What holds nonces to commit (a :class:`broker.core.publishing.PublishGate`)."""

    def commit_nonces(self) -> None:
        """Write the held nonces (raises if the write failed)."""


class GroupCommit:
    """Calls each :meth:`after` callback once its gate's held nonces are written, once per turn."""

    def __init__(self, call_later: Callable[..., Any] | None = None) -> None:
        #: the reactor's ``callLater`` unless given (looked up at first use: importing this
        #: module installs no reactor)
        self._call_later: Callable[..., Any] | None = call_later
        self._waiting: list[tuple[Committer, Callable[..., Any], Callable[..., Any], tuple[Any, ...]]] = []

    def after(
        self, gate: Committer, written: Callable[..., Any], failed: Callable[..., Any], *args: Any
    ) -> None:
        """``written(*args)`` when what ``gate`` holds now is on disk, else ``failed(failure, *args)``
        (plain calls, in the order of the requests: no Deferred per request)."""
        self._waiting.append((gate, written, failed, args))
        if len(self._waiting) == 1:
            call_later = self._call_later
            if call_later is None:
                from twisted.internet import reactor

                call_later = self._call_later = cast(Any, reactor).callLater
            call_later(0, self._flush)

    def _flush(self) -> None:
        waiting, self._waiting = self._waiting, []
        outcome: dict[int, Failure | None] = {}
        for gate, _, _, _ in waiting:
            if id(gate) not in outcome:  # one write per gate (a new component makes a new one)
                try:
                    gate.commit_nonces()
                    outcome[id(gate)] = None
                except Exception:
                    outcome[id(gate)] = Failure()
        for gate, written, failed, args in waiting:
            failure = outcome[id(gate)]
            try:
                if failure is None:
                    written(*args)
                else:
                    failed(failure, *args)
            except Exception:  # one request's answer failing must not hold back the others'
                _log.failure("answering a publish request after its nonce was written failed")
