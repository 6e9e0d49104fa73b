"""Presence in the router: crossbar's meta events into the book, ``broker.presence``, join/leave events.

Why a module of its own: the component only wires it (:mod:`broker.router.component`).
:class:`PresenceTracker` subscribes Broker's session to crossbar's public meta
API (``wamp.session.on_join``/``on_leave``, ``wamp.subscription.on_create``/
``on_subscribe``/``on_unsubscribe``/``on_delete``), keeps
:class:`broker.core.presence.PresenceBook` from them, tells the share
(:mod:`broker.engines.redis_presence` on a cluster) which topics changed, and
publishes each join and leave on an enabled topic ``T`` as an event on
``broker.presence.T``: through the shared log on a cluster (an event without
history, :data:`broker.history.NO_HISTORY`), so every node's subscribers get
every node's joins and leaves, and straight to local delivery on a single node.
Crossbar publishes its meta events a reactor turn after the SUBSCRIBE or the
leave, so an answer reflects a subscription from then on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from time import perf_counter
from typing import Any

from autobahn.wamp.exception import ApplicationError
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from broker.core.grants import Grants
from broker.core.presence import PresenceBook, PresenceSettings, PresenceShare, answer, events_topic, union
from broker.core.tokens import USER_ROLE
from broker.core.uris import check_uri
from broker.errors import BrokerError, NotAuthorized, PresenceNotEnabled, PresenceUnavailable
from broker.history import NO_HISTORY, Appended, NewEvent
from broker.router.delivery import Outgoing, outgoing
from broker.router.state import STATE

_log = Logger(namespace="broker.presence")


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class PresenceTracker:
    """One node's presence: fed by the meta events, asked by ``broker.presence``."""

    def __init__(self, settings: Callable[[], PresenceSettings], grants: Callable[[], Grants]) -> None:
        self.book = PresenceBook()
        self._settings, self._grants = settings, grants
        self.share: PresenceShare | None = None
        #: Why this node cannot see subscriptions (a meta event its role may not subscribe to), or None.
        self.blind: str | None = None

    async def attach(self, session: Any) -> None:
        """Subscribe ``session`` (Broker's own, in the router) to the meta events it needs."""
        book = self.book

        def joined(info: Any) -> None:
            info = info if isinstance(info, dict) else {}
            sid = _int(info.get("session"))
            if sid is not None:
                book.joined(sid, info.get("authid"), str(info.get("authrole") or ""))

        def created(sid: object, details: Any = None) -> None:
            details = details if isinstance(details, dict) else {}
            sub = _int(details.get("id"))
            if sub is not None and isinstance(details.get("uri"), str):
                book.created(sub, details["uri"], str(details.get("match") or "exact"))

        def subscribed(sid: object, sub: object = None) -> None:
            if _int(sid) is not None and _int(sub) is not None:
                self._emit(book.subscribed(sid, sub))  # type: ignore[arg-type]

        def unsubscribed(sid: object, sub: object = None) -> None:
            if _int(sid) is not None and _int(sub) is not None:
                self._emit(book.unsubscribed(sid, sub))  # type: ignore[arg-type]

        def deleted(sid: object, sub: object = None) -> None:
            if _int(sub) is not None:
                book.deleted(sub)  # type: ignore[arg-type]

        def left(sid: object, *rest: object) -> None:
            if _int(sid) is not None:
                self._emit(book.left(sid))  # type: ignore[arg-type]

        for handler, topic in (
            (joined, "wamp.session.on_join"),
            (left, "wamp.session.on_leave"),
            (created, "wamp.subscription.on_create"),
            (subscribed, "wamp.subscription.on_subscribe"),
            (unsubscribed, "wamp.subscription.on_unsubscribe"),
            (deleted, "wamp.subscription.on_delete"),
        ):
            try:
                await session.subscribe(handler, topic)
            except ApplicationError as error:  # a node config from before presence: the role lacks it
                self.blind = f"role 'broker' may not subscribe to {topic} ({error.error})"
                _log.warn("presence unavailable: {why} (see docs/presence.md)", why=self.blind)

    def _emit(self, changes: Sequence[Any]) -> None:
        settings = self._settings()
        changes = [change for change in changes if settings.enabled(change.topic)]
        if not changes:
            return
        if self.share is not None:
            self.share.changed(sorted({change.topic for change in changes}))
        events = [
            NewEvent(events_topic(change.topic), [], change.event(STATE.node_id), NO_HISTORY)
            for change in changes
        ]
        store, delivery = STATE.history, STATE.delivery
        if delivery is None or STATE.stopping:
            return
        if store is None or not store.shared:
            delivery.deliver([Outgoing(e.topic, e.args, e.kwargs) for e in events], perf_counter())
            return

        received = perf_counter()

        def appended(batch: Appended) -> None:
            if STATE.delivery is not None:  # the other nodes deliver it from the shared log
                STATE.delivery.deliver(outgoing(batch), received)

        def failed(failure: Any) -> None:
            _log.warn("presence events not shared: {error}", error=failure.getErrorMessage())

        Deferred.fromCoroutine(store.append(events)).addCallbacks(appended, failed)

    async def ask(self, topic: object, role: str, authid: object) -> dict[str, Any]:
        """``broker.presence(topic)`` for a caller of ``role``: the cluster's sessions on ``topic``.

        Refused, in this order: an invalid topic URI (``wamp.error.invalid_uri``), a caller
        without a ``presence`` grant on it (``wamp.error.not_authorized``), a topic no pattern
        of ``extra.presence.topics`` enables (``broker.error.presence_not_enabled``).
        """
        try:
            uri = check_uri(topic, "exact")
            if not self._grants().allows(role, "presence", uri):
                who = f"user {authid!r}" if role == USER_ROLE else f"role {role!r}"
                raise NotAuthorized(f"{who} may not see who is on {uri!r} (no presence grant)")
            if not self._settings().enabled(uri):
                raise PresenceNotEnabled(
                    f"{uri!r} has no presence: no extra.presence.topics pattern enables it"
                )
            if self.blind is not None:
                raise PresenceUnavailable(f"this node cannot see who is on {uri!r}: {self.blind}")
            others = [] if self.share is None else await self.share.others(uri)
            return answer(uri, union([self.book.entry(uri), *others]))
        except BrokerError as error:
            raise ApplicationError(error.wamp_uri, str(error)) from None

    def close(self) -> None:
        """Stop sharing (on a cluster, this node's entries then expire within ``node_ttl``)."""
        if self.share is not None:
            self.share.close()
            self.share = None
