"""Publishing once per idempotency key: the first answer is kept and given to repeats.

Keys are scoped by publisher key id. A repeat that arrives while the first
request is still publishing waits for its answer instead of publishing again;
a repeat with a different body is refused. Only successful answers are kept:
after a failure (router not ready, say) the same key may be tried again.
Bounded in time (``window``) and size (oldest answers are dropped first).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from broker.errors import IdempotencyMismatch

Answer = tuple[int, Any]
Waiter = Callable[[Answer], None]


@dataclass
class Entry:
    """One idempotency key's state: pending (``answer`` None) or answered."""

    fingerprint: str
    created: float
    answer: Answer | None = None
    waiters: list[Waiter] = field(default_factory=list)


class IdempotencyCache:
    """Maps ``(key id, idempotency key)`` to the first request's answer."""

    def __init__(self, window: float, capacity: int, clock: Callable[[], float] = time.time) -> None:
        self.window = window
        self.capacity = capacity
        self.clock = clock
        self._entries: OrderedDict[tuple[str, str], Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def begin(self, scope: tuple[str, str], fingerprint: str) -> Entry | None:
        """Start a request; None means "go ahead and publish", else the existing entry.

        An existing entry is either answered (give its answer) or pending (add
        a waiter). Raises :class:`IdempotencyMismatch` for a different body.
        """
        self._expire()
        entry = self._entries.get(scope)
        if entry is not None:
            if entry.fingerprint != fingerprint:
                raise IdempotencyMismatch(
                    f"idempotency key {scope[1]!r} was already used for a different request"
                )
            return entry
        self._entries[scope] = Entry(fingerprint=fingerprint, created=self.clock())
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)
        return None

    def finish(self, scope: tuple[str, str], answer: Answer, keep: bool) -> None:
        """Record the first request's answer (if ``keep``) and pass it to everyone waiting."""
        entry = self._entries.get(scope)
        if entry is None:
            return
        if keep:
            entry.answer = answer
        else:
            del self._entries[scope]
        waiters, entry.waiters = entry.waiters, []
        for waiter in waiters:
            waiter(answer)

    def _expire(self) -> None:
        horizon = self.clock() - self.window
        while self._entries:
            scope, entry = next(iter(self._entries.items()))
            if entry.created >= horizon:
                break
            if entry.answer is None and entry.waiters:
                break  # never drop a pending request someone waits on
            del self._entries[scope]
