"""``POST /api/publish``: a Twisted web resource over :class:`broker.core.publishing.PublishGate`.

Publishes what the gate admits (:func:`broker.router.publish_batch.publish_all`):
the whole batch is appended to the history engine in one call, then delivered in order through
:class:`broker.router.delivery.LocalDelivery` (crossbar's own dispatch, as a
publish of Broker's own session, acknowledged), so 200 means every event was
stored and dispatched; the positions come back as the append's return value.
On a cluster node (a shared engine) the events of topics without history are
in the append too, unpositioned, so every node delivers the batch in its order.
A request goes on (is stored, dispatched, answered) only once its nonce is
on disk: the nonces of the requests read in one reactor turn are written
together at the start of the next (:mod:`broker.router.nonce_commit`), and a
refused request's before its error is sent. On a node whose engine is shared
(Redis) the engine's cluster-wide claim of the nonce, before anything is
appended, is what refuses a replay, after a restart too: only a nonce the
engine did not claim (a repeat answered from the idempotency cache, an engine
that failed) is written here, before its answer. The publish coroutine runs at once
(:func:`broker.router.eager.eager_call`) unless the engine makes it wait (Redis).
The gate's publisher key grants are the authorization. Every
answer is JSON; errors are ``{"error": <uri>, "message": <text>}`` with the
status of the :mod:`broker.errors` class. Crossbar's own HTTP ``publisher``
bridge is not exposed (it answers 200 for refused events and accepts replays).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from autobahn.wamp.exception import ApplicationError
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from broker.core.idempotency import Answer
from broker.core.publishing import PUBLISH_PATH, Admitted
from broker.errors import (
    BrokerError,
    IdempotencyMismatch,
    InvalidUri,
    NotReady,
    PayloadTooLarge,
    RateLimited,
    Replayed,
    ServerError,
)
from broker.history import Once
from broker.router import metrics
from broker.router.crossbar.sendnow import write_now
from broker.router.delivery import LocalDelivery
from broker.router.eager import eager_call
from broker.router.nonce_commit import GroupCommit
from broker.router.positions import HISTORY_UNAVAILABLE, HISTORY_UNAVAILABLE_REASON
from broker.router.publish_admit import Admission, admit, merges
from broker.router.publish_batch import RETRY_ONCE, PublishedBody, publish_all
from broker.router.state import STATE

__all__ = ["RETRY_ONCE", "Outcome", "PublishResource", "admit", "error_answer", "publish_all"]

_log = Logger(namespace="broker.publish_api")

#: The ``Retry-After`` (s) of a 503 that names no other: the node starting, the history engine away.
UNAVAILABLE_RETRY_AFTER = 1
#: The longest ``Retry-After`` (s) sent: a day, for a wait that has no end.
MAX_RETRY_AFTER = 86400
#: The message of a 500 for a request the node failed to check (or to write the nonce of).
CHECK_FAILED = "checking the request failed inside the node"
#: The nonces of one reactor turn's requests, written once before any of them goes on.
_COMMITS = GroupCommit()


def error_answer(error: BrokerError) -> Answer:
    """The status and JSON body for ``error``."""
    return error.http_status, {"error": error.wamp_uri, "message": str(error)}


@dataclass(frozen=True)
class Outcome:
    """How a publish request that went on to the history engine ended: its answer, whether it is
    a replay of a publish some node made before, and the ``Retry-After`` of a 429."""

    answer: Answer
    replayed: bool = False
    retry_after: float | None = None


async def _admit_and_publish(delivery: LocalDelivery, admitted: Admitted) -> Outcome:
    gate = STATE.publish_gate
    admission = None
    if gate is not None:  # the nonce and tokens with the append if the engine can, else first
        ttl, quota = gate.nonce_ttl(), gate.quota(admitted)
        if merges(STATE.history):
            admission = Admission(admitted, ttl, quota)
        else:
            await admit(admitted, ttl, quota)
    once = None
    if admitted.idempotency_key is not None and gate is not None:
        window = gate.settings.idempotency_window
        once = Once(admitted.key_id, admitted.idempotency_key, admitted.fingerprint, window)
    answer, replayed = await publish_all(delivery, admitted.events, once, admitted.text_bytes, admission)
    return Outcome(answer, replayed)


class PublishResource(Resource):
    """Mounted at ``/api`` in the node config; serves ``/api/publish``."""

    isLeaf = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        Resource.__init__(self)

    def render(self, request: Request) -> bytes | int:
        path = request.path.decode("latin-1")
        if path != PUBLISH_PATH:
            return self._send(request, (404, {"error": "broker.error.not_found", "message": f"no {path}"}))
        gate, delivery = STATE.publish_gate, STATE.delivery
        if gate is None or delivery is None:
            return self._send(request, error_answer(NotReady("the node is starting")), retry_after=1)
        headers = {
            k.decode("latin-1").lower(): v.decode("latin-1") for k, v in request.getAllHeaders().items()
        }
        body = request.content.read() if request.content is not None else b""
        try:
            admitted = gate.admit(request.method.decode("latin-1"), path, headers, body, hold_nonce=True)
        except Exception as error:
            try:  # a refused request's nonce is on disk before its answer too (it is rare)
                gate.commit_nonces()
            except Exception:
                _log.failure("writing the nonce of a refused publish request failed")
                return self._send(request, error_answer(ServerError(CHECK_FAILED)))
            answer, retry_after = self._refusal(error)
            return self._send(request, answer, retry_after=retry_after)
        if STATE.history is not None and STATE.history.shared:  # the engine claims the nonce
            self._go_on(request, gate, delivery, admitted)
        else:
            _COMMITS.after(gate, self._go_on, self._uncommitted, request, gate, delivery, admitted)
        return NOT_DONE_YET

    @staticmethod
    def _refusal(error: Exception) -> tuple[Answer, float | None]:
        """The answer (and ``Retry-After``) to a request ``error`` refused before anything was
        published, counted as a rejection."""
        if isinstance(error, RateLimited):
            STATE.count_rejection("http_rate_limited")
            return error_answer(error), error.retry_after
        if isinstance(error, BrokerError):
            STATE.count_rejection(f"http_{type(error).__name__}")
            return error_answer(error), None
        # still JSON, never Twisted's HTML "Processing Failed" page
        _log.failure("checking a publish request failed", failure=Failure(error))
        return error_answer(ServerError(CHECK_FAILED)), None

    def _uncommitted(self, failure: Failure, request: Request, *_: Any) -> None:
        _log.failure("writing the nonces of publish requests failed", failure=failure)
        self._send_later(request, error_answer(ServerError(CHECK_FAILED)))

    def _go_on(self, request: Request, gate: Any, delivery: LocalDelivery, admitted: Admitted) -> None:
        """Publish ``admitted`` (its nonce on disk, or claimed by the shared engine before anything
        is appended), or answer it from its idempotency entry."""
        try:
            entry = (
                None
                if admitted.scope is None
                else gate.idempotency.begin(
                    admitted.scope,
                    admitted.fingerprint,
                    engine_knows=STATE.history is not None and STATE.history.shared,
                )
            )
        except Exception as error:
            answer, retry_after = self._refusal(error)
            if self._settled(request, gate, admitted):
                self._send_later(request, answer, retry_after=retry_after)
            return
        if entry is not None and not self._settled(request, gate, admitted):
            return
        if entry is not None:  # a repeat: the first request's answer, now or when it comes
            if entry.answer is not None:
                self._send_later(request, entry.answer, replayed=True)
                return
            entry.waiters.append(lambda answer: self._send_later(request, answer, replayed=True))
            return
        eager_call(  # at once unless the engine waits: then a plain call, no Deferred
            _admit_and_publish(delivery, admitted),
            lambda outcome: self._finish(outcome, request, admitted),
            lambda failure: self._finish(self._failed(failure, admitted), request, admitted),
        )

    def _settled(self, request: Request, gate: Any, admitted: Admitted) -> bool:
        """Write the nonce of ``admitted`` if it is still held (the shared engine claimed it
        not): False, and the request answered 500, if that failed."""
        try:
            gate.settle_nonce(admitted, claimed=False)
        except Exception:
            _log.failure("writing the nonce of a publish request failed")
            self._send_later(request, error_answer(ServerError(CHECK_FAILED)))
            return False
        return True

    def _failed(self, failure: Failure, admitted: Admitted) -> Outcome:
        error = failure.value
        retry_after = error.retry_after if isinstance(error, RateLimited) else None
        return Outcome(self._failure(failure, admitted), retry_after=retry_after)

    def _failure(self, failure: Failure, admitted: Admitted) -> Answer:
        error = failure.value
        if isinstance(error, RateLimited):  # by the cluster's bucket: nothing stored
            STATE.count_rejection("http_rate_limited")
            return error_answer(error)
        if isinstance(error, (PayloadTooLarge, InvalidUri, Replayed, IdempotencyMismatch)):  # nothing stored
            STATE.count_rejection(f"http_{type(error).__name__}")
            return error_answer(error)
        if isinstance(error, ApplicationError) and error.error == PayloadTooLarge.wamp_uri:
            return error_answer(PayloadTooLarge(str(error.args[0] if error.args else error.error)))
        if isinstance(error, ApplicationError) and error.error == HISTORY_UNAVAILABLE:
            STATE.count_rejection(f"http_{HISTORY_UNAVAILABLE_REASON}")  # nothing stored: try again later
            return 503, {"error": error.error, "message": str(error.args[0] if error.args else error.error)}
        if isinstance(error, ApplicationError):
            _log.warn(
                "publish for key {key} refused by the router: {error}", key=admitted.key_id, error=error
            )
            return 502, {"error": error.error, "message": str(error.args[0] if error.args else error.error)}
        _log.failure("publish for key {key} failed", failure=failure, key=admitted.key_id)
        return error_answer(ServerError("publishing failed inside the node"))

    def _finish(self, outcome: Outcome, request: Request, admitted: Admitted) -> None:
        answer = outcome.answer
        gate = STATE.publish_gate
        try:
            if admitted.scope is not None and gate is not None:
                gate.idempotency.finish(admitted.scope, answer, keep=answer[0] == 200)
        except Exception:  # the events are published: the answer says so, the log says what failed
            _log.failure("keeping the answer for key {key} failed", key=admitted.key_id)
        if gate is not None and not self._settled(request, gate, admitted):
            return  # not claimed (the engine failed), not written: nothing was published
        self._send_later(request, answer, replayed=outcome.replayed, retry_after=outcome.retry_after)

    @staticmethod
    def _send(
        request: Request, answer: Answer, retry_after: float | None = None, replayed: bool = False
    ) -> bytes:
        status, body = answer
        metrics.count_http_answer(status)
        payload = body.encoded() if type(body) is PublishedBody else json.dumps(body).encode()
        request.setResponseCode(status)
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"cache-control", b"no-store")
        if retry_after is None and status == 503:
            retry_after = UNAVAILABLE_RETRY_AFTER  # every 503 says when to try again
        if retry_after is not None:
            wait = min(retry_after, MAX_RETRY_AFTER)  # inf: a batch larger than the key's burst
            request.setHeader(b"retry-after", str(max(1, round(wait))).encode())
        if replayed:
            request.setHeader(b"idempotent-replayed", b"true")
        return payload

    @classmethod
    def _send_later(
        cls, request: Request, answer: Answer, replayed: bool = False, retry_after: float | None = None
    ) -> None:
        """Answer a request whose render returned NOT_DONE_YET (unless the client left)."""
        if request.finished or getattr(request, "_disconnected", False):
            return
        payload = cls._send(request, answer, retry_after=retry_after, replayed=replayed)
        request.setHeader(b"content-length", b"%d" % len(payload))  # one write, not chunked
        write_now(request, payload)  # sent now, not on the reactor's next turn
        request.finish()
