"""Publishing once per idempotency key: the first answer is kept and given to repeats.

Keys are scoped by publisher key id. A repeat that arrives while the first
request is still publishing waits for its answer instead of publishing again;
a repeat with a different body is refused. Only successful answers are kept:
after a failure (router not ready, say) the same key may be tried again.
Bounded in time (``window``) and size (oldest answers are dropped first).

The answers must survive a restart, or a retry that crosses one publishes
again. With an :class:`AnswerJournal` (durable storage, see
:mod:`broker.engines.publish_memory`) a key is written when its request
starts and its answer before the answer is sent; a new cache starts from
what the journal kept. A key whose request was cut off by the restart
(started, never answered) may or may not have been published: a repeat is
refused (:class:`broker.errors.IdempotencyUnknown`), never published again,
unless the history engine itself knows (Redis records each key atomically
with its append): then the repeat goes on and the engine answers it.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from broker.errors import IdempotencyMismatch, IdempotencyUnknown

Answer = tuple[int, Any]
Waiter = Callable[[Answer], None]
Scope = tuple[str, str]


@dataclass(frozen=True)
class Kept:
    """One key as a journal kept it: ``answer`` None if its request never finished."""

    scope: Scope
    fingerprint: str
    created: float
    answer: Answer | None


class AnswerJournal(Protocol):
    """Durable storage for idempotency keys; every write is committed before it returns."""

    def load(self, horizon: float) -> Sequence[Kept]:
        """The keys created at or after ``horizon``, oldest first."""

    def started(
        self, scope: Scope, fingerprint: str, created: float, horizon: float, dropped: Sequence[Scope]
    ) -> None:
        """A request with a new key starts; keys created before ``horizon`` and
        those in ``dropped`` (beyond the capacity) are forgotten."""

    def answered(self, scope: Scope, answer: Answer) -> None:
        """The request of ``scope`` finished with ``answer``, which is kept."""

    def forget(self, scopes: Sequence[Scope]) -> None:
        """Forget these keys (failed requests, or beyond the capacity)."""


@dataclass
class Entry:
    """One idempotency key's state: pending (``answer`` None) or answered."""

    fingerprint: str
    created: float
    answer: Answer | None = None
    waiters: list[Waiter] = field(default_factory=list)
    #: started before a restart and never answered: the outcome is unknown
    interrupted: bool = False


class IdempotencyCache:
    """Maps ``(key id, idempotency key)`` to the first request's answer."""

    def __init__(
        self,
        window: float,
        capacity: int,
        clock: Callable[[], float] = time.time,
        journal: AnswerJournal | None = None,
    ) -> None:
        self.window = window
        self.capacity = capacity
        self.clock = clock
        self.journal = journal
        self._entries: OrderedDict[Scope, Entry] = OrderedDict()
        if journal is not None:
            for kept in journal.load(clock() - window):
                self._entries[kept.scope] = Entry(
                    kept.fingerprint, kept.created, kept.answer, interrupted=kept.answer is None
                )
            excess = self._over_capacity()
            if excess:
                journal.forget(excess)

    def __len__(self) -> int:
        return len(self._entries)

    def begin(self, scope: Scope, fingerprint: str, engine_knows: bool = False) -> Entry | None:
        """Start a request; None means "go ahead and publish", else the existing entry.

        An existing entry is either answered (give its answer) or pending (add
        a waiter). Raises :class:`IdempotencyMismatch` for a different body and
        :class:`IdempotencyUnknown` for a request a restart cut off, unless
        ``engine_knows`` (the history engine publishes once per key by itself):
        that request goes on as a new one.
        """
        horizon = self._expire()
        entry = self._entries.get(scope)
        if entry is not None:
            if entry.fingerprint != fingerprint:
                raise IdempotencyMismatch(
                    f"idempotency key {scope[1]!r} was already used for a different request"
                )
            if entry.interrupted and engine_knows:
                entry.interrupted = False  # the engine answers whether it was published
                return None
            if entry.interrupted:
                raise IdempotencyUnknown(
                    f"idempotency key {scope[1]!r}: the node restarted while the first request "
                    "with it was publishing, so whether it was published is unknown; it is not "
                    "published again (check the topic's history, or send it with a new key)"
                )
            return entry
        created = self.clock()
        self._entries[scope] = Entry(fingerprint=fingerprint, created=created)
        dropped = self._over_capacity()
        if self.journal is not None:
            try:
                self.journal.started(scope, fingerprint, created, horizon, dropped)
            except BaseException:
                del self._entries[scope]
                raise
        return None

    def finish(self, scope: Scope, answer: Answer, keep: bool) -> None:
        """Record the first request's answer (if ``keep``) and pass it to everyone waiting.

        With a journal the answer is on disk before anyone gets it; if the
        journal fails, the waiters still get the answer and the error propagates.
        """
        entry = self._entries.get(scope)
        if entry is None:
            return
        if keep:
            entry.answer = answer
        else:
            del self._entries[scope]
        try:
            if self.journal is not None:
                if keep:
                    self.journal.answered(scope, answer)
                else:
                    self.journal.forget([scope])
        finally:
            waiters, entry.waiters = entry.waiters, []
            for waiter in waiters:
                waiter(answer)

    def _over_capacity(self) -> list[Scope]:
        """Drop the oldest entries beyond the capacity; return their scopes."""
        dropped = []
        while len(self._entries) > self.capacity:
            dropped.append(self._entries.popitem(last=False)[0])
        return dropped

    def _expire(self) -> float:
        """Drop the entries older than the window; return its lower edge."""
        horizon = self.clock() - self.window
        while self._entries:
            scope, entry = next(iter(self._entries.items()))
            if entry.created >= horizon:
                break
            if entry.answer is None and entry.waiters:
                break  # never drop a pending request someone waits on
            del self._entries[scope]
        return horizon
