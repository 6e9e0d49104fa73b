"""Group commit of the HTTP publish API's nonces: one journal write per reactor turn.

Why: every accepted nonce must be on disk before its request goes on
(docs/http-publish.md, "Across restarts"), and one SQLite commit per request
was the largest single cost of a single-event publish. The requests read in
one turn of the reactor hold their nonces in the gate
(:meth:`broker.core.publishing.PublishGate.admit` with ``hold_nonce``) and
wait on :meth:`GroupCommit.after`; at the start of the next turn one
:meth:`~broker.core.publishing.PublishGate.commit_nonces` writes them all,
and only then does each request go on (is stored, dispatched, answered). A
write that fails fails every request waiting on it (answered 500, nothing
published); their nonces stay refused in memory and are written by the next
commit. Tests: ``tests/test_nonce_commit.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, cast

from twisted.internet import defer
from twisted.python.failure import Failure


class Committer(Protocol):
    """What holds nonces to commit (a :class:`broker.core.publishing.PublishGate`)."""

    def commit_nonces(self) -> None:
        """Write the held nonces (raises if the write failed)."""


class GroupCommit:
    """Fires each :meth:`after` Deferred once its gate's held nonces are written, once per turn."""

    def __init__(self, call_later: Callable[..., Any] | None = None) -> None:
        #: the reactor's ``callLater`` unless given (looked up at first use: importing this
        #: module installs no reactor)
        self._call_later: Callable[..., Any] | None = call_later
        self._waiting: list[tuple[Committer, defer.Deferred[None]]] = []

    def after(self, gate: Committer) -> defer.Deferred[None]:
        """A Deferred fired when what ``gate`` holds now is on disk (or failed with the write's error)."""
        d: defer.Deferred[None] = defer.Deferred()
        self._waiting.append((gate, d))
        if len(self._waiting) == 1:
            call_later = self._call_later
            if call_later is None:
                from twisted.internet import reactor

                call_later = self._call_later = cast(Any, reactor).callLater
            call_later(0, self._flush)
        return d

    def _flush(self) -> None:
        waiting, self._waiting = self._waiting, []
        outcome: dict[int, Failure | None] = {}
        for gate, _ in waiting:
            if id(gate) not in outcome:  # one write per gate (a new component makes a new one)
                try:
                    gate.commit_nonces()
                    outcome[id(gate)] = None
                except Exception:
                    outcome[id(gate)] = Failure()
        for gate, d in waiting:
            failure = outcome[id(gate)]
            if failure is None:
                d.callback(None)
            else:
                d.errback(failure)
