"""What the Redis engine keeps for the HTTP API cluster-wide: nonces, idempotency scopes, rate limits.

Why a module of its own: these are not history, but they must hold on every
node at once, so they live in the Redis every node shares, each decided by
one atomic script. The nonce and the publisher key's token bucket are taken
together before the append: by the append's own script when the request has
one (a :class:`~broker.history.Claim`, decided first: refused, nothing is
appended), else alone (:data:`broker.engines.redis_scripts.ADMIT`, one round
trip, shared by the requests that arrive while one is in flight:
:mod:`broker.engines.redis_admit`); an idempotency scope is checked and recorded by the append's own
script (:data:`broker.engines.redis_scripts.APPEND`), so a batch is appended
at most once per scope whichever node runs it, even when an answer from Redis
was lost on its way back. This module builds those scripts' keys and
arguments and reads their answers; :class:`broker.engines.redis.RedisStore`
runs them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Final

from broker.core.ratelimit import Quota
from broker.errors import IdempotencyMismatch, NotAdmitted
from broker.history import Appended, Claim, NewEvent, Once, StoredEvent

#: ``APPEND``'s first answer word: appended, the scope was held (a replay), held for another body;
#: the batch's claim refused: its nonce was taken, its key's tokens are not there yet.
APPENDED: Final = 0
HELD: Final = 1
MISMATCH: Final = 2
NONCE_TAKEN: Final = 3
RATE_LIMITED: Final = 4


def _key(base: str, kind: str, key_id: str, rest: str | None = None) -> str:
    """``B:<kind>:<len>:<key id>[:<rest>]``: the length keeps ``a:b`` + ``c`` apart from ``a`` + ``b:c``."""
    key = f"{base}:{kind}:{len(key_id)}:{key_id}"
    return key if rest is None else f"{key}:{rest}"


def _ms(seconds: float) -> str:
    return str(max(1, math.ceil(seconds * 1000)))


def admit_call(
    base: str, key_id: str, nonce: str, ttl: float, quota: Quota | None, clock: Callable[[], float] | None
) -> tuple[list[str], list[str]]:
    """The two keys and five arguments of one request in ``ADMIT`` (``clock`` None: Redis ``TIME``)."""
    claim = _key(base, "nonce", key_id, nonce)
    if quota is None:
        return [claim, claim], [_ms(ttl), "", "", "", ""]
    now = "" if clock is None else repr(float(clock()))
    rate = [repr(float(quota.per_second)), str(quota.burst), str(quota.count), now]
    return [claim, _key(base, "rate", key_id)], [_ms(ttl), *rate]


def claim_call(base: str, claim: Claim, clock: Callable[[], float] | None) -> tuple[list[str], list[str]]:
    """The two keys and five arguments ``APPEND`` takes for a batch's ``claim`` (a batch without
    one: no keys, five empty arguments, :func:`broker.engines.redis_batcher.call`)."""
    return admit_call(base, claim.key_id, claim.nonce, claim.ttl, claim.quota, clock)


def refused(held: int, words: Sequence[str]) -> NotAdmitted | None:
    """The refusal of a batch's claim from its ``APPEND`` answer (None: not refused)."""
    if held == NONCE_TAKEN:
        return NotAdmitted(None)
    if held == RATE_LIMITED:
        return NotAdmitted(float(words[1]))
    return None


def admitted(reply: Sequence[Any]) -> float | None:
    """``ADMIT``'s answer as :meth:`broker.history.HistoryStore.admit` gives it."""
    claimed, wait = reply
    return float(wait) if int(claimed) else None


def once_call(base: str, once: Once | None) -> tuple[list[str], list[str]]:
    """The extra keys and the arguments after the events that ``APPEND`` takes for ``once``."""
    if once is None:
        return [], []
    return [_key(base, "once", once.key_id, once.key)], [once.fingerprint, _ms(once.ttl)]


def replayed(
    once: Once | None, batch: Sequence[NewEvent], held: int, epoch: str, now: str, positions: Any
) -> Appended:
    """The batch as its scope's first append stored it (``held``: :data:`HELD`), nothing appended;
    :class:`IdempotencyMismatch` (the message a single node gives) if the scope holds another body."""
    key = "" if once is None else once.key
    if held != HELD:
        raise IdempotencyMismatch(f"idempotency key {key!r} was already used for a different request")
    if len(positions) != len(batch):  # the same body, but the topics' history policies changed since
        raise IdempotencyMismatch(
            f"idempotency key {key!r} was first used when {len(positions)} of these events had "
            f"history, not {len(batch)}: send it with a new key"
        )
    stored = tuple(
        StoredEvent(e.topic, int(seq), int(cursor), float(now), e.args, e.kwargs)
        for e, (seq, cursor) in zip(batch, positions, strict=True)
    )
    return Appended(epoch, stored, replayed=True)
