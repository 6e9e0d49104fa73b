"""A signed HTTP publish request's cluster-wide admission: its nonce and rate-limit tokens.

Why a module of its own: on a node whose history engine is shared (Redis) the
engine, not the node, decides whether a request's nonce is fresh and its key
has tokens, before anything is appended. An engine that can
(``admits_in_append``: Redis) takes both in the same script call as the
request's append (:class:`broker.history.Claim`): one round trip, not two.
Every refusal stays what it was when the engine was asked alone first: a
replay 409, a key over its limit 429 with ``Retry-After``, nothing appended; a
request refused before anything would be appended (a topic the realm refuses,
an event too large, a node stopping, nothing to append) is admitted alone
first (:meth:`Admission.alone`), so it gets the answer it got before.
:func:`admit` is that alone path, also for engines that cannot merge.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from autobahn.wamp.exception import ApplicationError
from twisted.logger import Logger

from broker.core.publishing import Admitted
from broker.core.ratelimit import Quota
from broker.errors import ClientError, IdempotencyMismatch, NotAdmitted, RateLimited, Replayed
from broker.history import Appended, Claim, NewEvent, Once
from broker.router.positions import HISTORY_UNAVAILABLE, NOT_STORED
from broker.router.state import STATE

_log = Logger(namespace="broker.publish_api")


async def admit(admitted: Admitted, ttl: float, quota: Quota | None = None) -> None:
    """Claim the request's nonce, and take its rate-limit tokens, on the whole cluster, if the
    history engine is shared: one call (:meth:`~broker.history.HistoryStore.admit`).

    The gate's per-node memory has already refused a replay to this node; a
    shared engine (Redis) refuses one another node accepted (``Replayed``,
    409) and a key over its cluster-wide ``quota`` (``RateLimited``, 429 with
    ``Retry-After``) before anything is appended; memory and SQLite admit
    everything (the gate decided). An engine that fails to answer is
    ``history_unavailable`` (503): nothing is published.
    """
    store = STATE.history
    if store is None:  # no history engine: nothing but the node's own journal to ask
        return
    try:
        wait = await store.admit(admitted.key_id, admitted.nonce, ttl, quota)
    except Exception:  # the engine's own errors vary; any of them means "not claimed"
        _log.failure("claiming a nonce failed; refusing a batch of {count}", count=len(admitted.events))
        raise ApplicationError(HISTORY_UNAVAILABLE, NOT_STORED) from None
    refusal = claimed(admitted, wait)
    if refusal is not None:
        raise refusal


def claimed(admitted: Admitted, wait: float | None) -> ClientError | None:
    """The engine's answer to the request's claim (None: its nonce was taken; else seconds to
    wait, 0: admitted): the nonce is claimed cluster-wide either way (refused anywhere for two
    windows, so not written here); the refusal to raise (``Replayed``, ``RateLimited``), if any."""
    gate = STATE.publish_gate
    if gate is not None:
        gate.settle_nonce(admitted, claimed=True)
    if wait is None:
        return Replayed(
            f"nonce {admitted.nonce!r} was already used on another node (or this one before a restart): "
            "every request needs a fresh nonce"
        )
    if wait:
        return RateLimited(f"publisher key {admitted.key_id!r} is over its rate limit", retry_after=wait)
    return None


def merges(store: Any) -> bool:
    """Whether ``store`` takes a request's claim in the same call as its append."""
    return bool(getattr(store, "admits_in_append", False))


@dataclass
class Admission:
    """A request whose nonce and tokens are still to be taken, with its append or alone."""

    admitted: Admitted
    ttl: float
    quota: Quota | None
    #: taken already (by :meth:`alone` or :meth:`append`)
    done: bool = False

    async def alone(self) -> None:
        """Take them now, on their own (:func:`admit`): a request refused before its append, or
        with nothing to append, is answered as before the merge. Once only."""
        if not self.done:
            self.done = True
            await admit(self.admitted, self.ttl, self.quota)

    async def append(self, store: Any, batch: Sequence[NewEvent], once: Once | None) -> Appended:
        """``store.append`` with the claim taken first in the same call: refused, ``Replayed``
        or ``RateLimited`` and nothing appended; an engine that failed raises what it raised
        (the nonce then not claimed for certain: the node writes it before answering)."""
        self.done = True
        admitted = self.admitted
        claim = Claim(admitted.key_id, admitted.nonce, self.ttl, self.quota)
        try:
            appended: Appended = await store.append(batch, once, claim)
        except NotAdmitted as refusal:
            raise claimed(admitted, refusal.wait) or refusal from None
        except IdempotencyMismatch:  # the claim was taken, then the scope refused the body
            claimed(admitted, 0.0)
            raise
        claimed(admitted, 0.0)
        return appended


async def first(admission: Admission | None) -> None:
    """Take a pending admission alone (none: nothing to do), before a refusal is raised."""
    if admission is not None:
        await admission.alone()
