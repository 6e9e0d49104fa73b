"""Group commit for the Redis engine: the appends that arrive while a script is in flight share the next.

Why: one ``EVALSHA`` per publish costs a round trip and txredisapi's per-call
work each, and under load thousands of them queue on the connection until the
link's timeout fires for calls Redis then runs anyway (a publisher told "not
stored" for an event that was stored and delivered). So a node keeps one ``APPEND`` call in flight; the
batches that arrive meanwhile wait here, and the next call carries all of them
(up to :data:`GROUP_EVENTS` events), each with its own batch id, idempotency
scope and answer (:data:`broker.engines.redis_scripts.APPEND`). One, not more:
a call's batches are answered in their order, the first at once and the
others on the next turn, and the next call is sent only then, so no later
call's answer can overtake them.

The queue is bounded: a batch that would make it hold more than
:data:`QUEUE_EVENTS` events, or that has waited longer than it may (half the
link's timeout, by default) when its turn comes, is refused before anything
is sent, so its publisher learns for certain that it was not stored.

Pure bookkeeping: :class:`broker.engines.redis.RedisStore` does the waiting
(through its link's futures) and runs the calls.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from broker.engines import redis_limits as limits
from broker.engines import redis_wire as wire
from broker.errors import HistoryUnanswered, HistoryUnavailable, IdempotencyMismatch, NotAdmitted
from broker.history import Appended, NewEvent, Once, stored_event

#: Events one ``APPEND`` call carries at most (a batch larger than that goes alone).
GROUP_EVENTS: Final = 512
#: Events that may wait for a call at most; a batch beyond it is refused, nothing sent.
QUEUE_EVENTS: Final = 10_000
#: What a refused append's error says, after why: for certain, or perhaps.
NOT_STORED: Final = "the event was not stored, so it was not published"
MAYBE_STORED: Final = "the event may have been stored, and then it is delivered"


@dataclass(eq=False)
class Pending:
    """One append waiting for (or in) a call: its events' script arguments, its scope, its waiter."""

    batch_id: str
    events: Sequence[NewEvent]
    #: ``APPEND``'s four arguments per event (:func:`broker.engines.redis_wire.event_args`)
    args: list[str]
    once: Once | None
    #: when it was queued (``time.monotonic()``)
    since: float
    #: the link's future its caller waits on, while queued behind a call in flight
    waiter: Any = field(default=None)
    #: the keys and arguments of its request's claim, taken first by the same call
    #: (:func:`broker.engines.redis_limits.claim_call`; None: none)
    claim: tuple[list[str], list[str]] | None = None

    def answer(self, outcome: Any) -> None:
        """Resume the waiting caller with ``outcome`` (raised if an exception), once; none: no-op."""
        waiter, self.waiter = self.waiter, None
        if waiter is None:
            return
        if isinstance(outcome, BaseException):
            waiter.fail(outcome)
        else:
            waiter.resolve(outcome)


class Batcher:
    """The queue of appends waiting for a call, and whether one is in flight (or handed on)."""

    def __init__(
        self, max_wait: float, group_events: int = GROUP_EVENTS, queue_events: int = QUEUE_EVENTS
    ) -> None:
        self.max_wait = max_wait
        self.group_events = group_events
        self.queue_events = queue_events
        self.queue: deque[Pending] = deque()
        #: events in :attr:`queue`
        self.queued = 0
        #: a call is in flight, or its turn was handed to a waiting append that has not sent it yet
        self.busy = False

    def refusal(self, count: int) -> HistoryUnavailable | None:
        """Why a batch of ``count`` events cannot wait (None: it can)."""
        if self.queue and self.queued + count > self.queue_events:
            waiting = f"{self.queued} events already wait for it (at most {self.queue_events})"
            return HistoryUnavailable(f"the history engine is behind: {waiting}: {NOT_STORED}")
        return None

    def late(self) -> HistoryUnavailable:
        """The refusal of a batch that waited too long (:meth:`expire`)."""
        waited = f"the event waited {self.max_wait:g} s without being sent"
        return HistoryUnavailable(f"the history engine is behind: {waited}: {NOT_STORED}")

    def enqueue(self, pending: Pending) -> bool:
        """Queue ``pending``; True if its caller must wait for its turn (a call is in flight),
        else it takes the turn and leads the next call itself."""
        self.queue.append(pending)
        self.queued += len(pending.events)
        if self.busy:
            return True
        self.busy = True
        return False

    def expire(self, now: float) -> list[Pending]:
        """Take the batches that have waited longer than :attr:`max_wait` (a prefix: the queue
        is in arrival order): they are refused, never sent."""
        expired: list[Pending] = []
        while self.queue and now - self.queue[0].since > self.max_wait:
            expired.append(self._pop())
        return expired

    def take(self) -> list[Pending]:
        """The next call's group: the first batch, then as many as fit in :attr:`group_events`."""
        group: list[Pending] = []
        events = 0
        while self.queue and (not group or events + len(self.queue[0].events) <= self.group_events):
            events += len(self.queue[0].events)
            group.append(self._pop())
        return group

    def release(self) -> Pending | None:
        """A call is done: the append whose turn it is now (the turn stays taken), or None."""
        if self.queue:
            return self.queue[0]
        self.busy = False
        return None

    def _pop(self) -> Pending:
        pending = self.queue.popleft()
        self.queued -= len(pending.events)
        return pending


def call(head: Sequence[str], group: Sequence[Pending], meta: str, base: str) -> tuple[list[str], list[str]]:
    """``APPEND``'s keys and arguments for ``group``: ``head`` (base ... whether the node's mark
    bounds the gap), the number of batches, then per batch: its id, the index of its scope's
    key in KEYS ('0': none), fingerprint and keep time (ms), the index of its claim's first key
    ('0': none) and the claim's five arguments, the number of events, their arguments."""
    keys = [meta]
    args = [*head, str(len(group))]
    for pending in group:
        scope, after = limits.once_call(base, pending.once)
        index = "0"
        if scope:
            keys += scope
            index = str(len(keys))
        fingerprint, keep = after or ["", "0"]
        claim_keys, claim_args = pending.claim or _NO_CLAIM
        claimed = "0"
        if claim_keys:
            claimed = str(len(keys) + 1)
            keys += claim_keys
        args += [pending.batch_id, index, fingerprint, keep, claimed, *claim_args]
        args += [str(len(pending.events)), *pending.args]
    return keys, args


#: A batch without a claim: no keys, five empty arguments.
_NO_CLAIM: Final[tuple[list[str], list[str]]] = ([], ["", "", "", "", ""])


def outcome(pending: Pending, result: str) -> Appended | IdempotencyMismatch | NotAdmitted:
    """One batch's answer from its ``APPEND`` result ``once epoch now seq cursor ...``: stored, a
    replay of its scope's first append, the mismatch of a scope held for another body, or its
    claim's refusal (``3`` or ``4 wait``: nothing appended)."""
    words = result.split(" ")
    held = int(words[0])
    refusal = limits.refused(held, words)
    if refusal is not None:
        return refusal
    epoch, now, numbers = words[1], words[2], words[3:]
    seqs, cursors = numbers[::2], numbers[1::2]
    if held != limits.APPENDED:
        try:
            positions = list(zip(seqs, cursors, strict=True))
            return limits.replayed(pending.once, pending.events, held, epoch, now, positions)
        except IdempotencyMismatch as error:
            return error
    when = float(now)
    stored = tuple(
        stored_event(e.topic, int(seq), int(cursor), when, e.args, e.kwargs)
        for e, seq, cursor in zip(pending.events, seqs, cursors, strict=True)
    )
    return Appended(epoch, stored)


def failure(error: Exception, timeout: float) -> HistoryUnavailable:
    """What a failed call means to its publishers: not stored for certain (never sent, or an
    error reply), or perhaps stored (sent, then no answer)."""
    if isinstance(error, (wire.NotSent, RuntimeError)):
        return HistoryUnavailable(f"the history engine failed ({wire.describe(error)}): {NOT_STORED}")
    late = f"within {timeout:g} s" if isinstance(error, TimeoutError) else f"({wire.describe(error)})"
    return HistoryUnanswered(f"the history engine did not answer {late}: {MAYBE_STORED}")


def last_cursor(outcome: Any) -> int | None:
    """The last cursor a batch's outcome appended (None: it appended nothing)."""
    if isinstance(outcome, Appended) and not outcome.replayed and outcome.events:
        return outcome.events[-1].cursor
    return None
