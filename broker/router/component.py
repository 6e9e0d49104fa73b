"""Broker's router-embedded component: authentication, authorization, history, recovery.

It registers ``broker.authorize`` (the dynamic authorizer over
:mod:`broker.core.grants`), ``broker.authenticate`` (the dynamic WAMP-ticket
authenticator for per-user tokens, :mod:`broker.core.tokens`) and
``broker.recover`` (missed events, see :mod:`broker.history.recovery`) and
``broker.presence`` (who is on a topic, :mod:`broker.router.presence`), opens
the history store, installs the position hook (:mod:`broker.router.positions`)
and owns the node's local delivery (:mod:`broker.router.delivery`), which the
HTTP publish API and the history engine's feed hand stored events to; every
other patch into crossbar is installed by :func:`broker.router.crossbar.install`
when the component is created.

Token sessions (role ``user``) carry their own grants: :class:`~broker.core.sessions.UserSessions`
maps each session id to its token's grants, from authentication until the
session leaves (the meta events ``wamp.session.on_join``/``on_leave``), and
:mod:`broker.router.expiry` ends each one when its token expires.
Their authorizations are never cached, because crossbar caches per *role*:
a cached "yes" for user 42 would be handed to user 43.

Crossbar calls ``broker.authorize(session_details, uri, action, options)`` for
every role configured with ``"authorizer": "broker.authorize"``. Crossbar
caches an answer with ``cache: true`` under ``(realm, authrole, uri, action)``
forever, without the match policy: so only answers that cannot depend on the
match policy (publish, call, register) are cached; subscribe answers are not.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, cast

from autobahn.twisted.wamp import ApplicationSession
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import ComponentConfig, RegisterOptions

from broker.config import nodeconfig
from broker.config.reload import RELOAD_PROCEDURE
from broker.config.settings import BrokerSettings, TokenSettings, parse_settings, without_runtime
from broker.core.grants import ACTIONS, Grants
from broker.core.presence import PRESENCE_PROCEDURE, watched_topic
from broker.core.publishing import PublishGate
from broker.core.sessions import UserSessions
from broker.core.tokens import USER_ROLE, verify
from broker.core.uris import MATCH_POLICIES, Match, check_uri, is_valid_uri
from broker.engines import create_store
from broker.engines.publish_memory import open_publish_memory
from broker.engines.redis_presence import open_presence
from broker.errors import BrokerError, ConfigError, InvalidToken, NotAuthorized
from broker.history import HistoryStore
from broker.history.recovery import recover, recovery_outcome
from broker.router import crossbar, expiry, gaps, metrics, positions, readiness, redislink, reloader
from broker.router.crossbar.publish import enable_fast_path
from broker.router.delivery import LocalDelivery
from broker.router.presence import PresenceTracker
from broker.router.state import STATE

AUTHORIZE_PROCEDURE = "broker.authorize"
AUTHENTICATE_PROCEDURE = "broker.authenticate"
RECOVER_PROCEDURE = "broker.recover"
#: The message limit assumed when the node config cannot be read: the shipped ``max_message_size``.
FALLBACK_MESSAGE_LIMIT: Final = 65536


def _may_subscribe(
    grants: Grants, users: UserSessions | None, role: str, session: object, authid: object
) -> Callable[[str, Match], bool]:
    """Whether this session may subscribe to ``(uri, match)``: its role's grants, and a
    token session's own grants on top; ``broker.presence.T``: a ``presence`` grant on ``T``."""
    own = users.grants_for(session, authid) if users is not None and role == USER_ROLE else None

    def check(uri: str, match: Match) -> bool:
        watched = watched_topic(uri)
        if watched is not None:
            return grants.allows(role, "presence", watched, match)
        return grants.allows(role, "subscribe", uri, match) or (
            own is not None and own.allows(USER_ROLE, "subscribe", uri, match)
        )

    return check


def authorize(
    grants: Grants,
    details: dict[str, Any],
    uri: str,
    action: str,
    options: dict[str, Any],
    users: UserSessions | None = None,
) -> dict[str, bool]:
    """Answer one crossbar authorization request from the grant table.

    Role ``user`` also gets its session's token grants (subscribe only), and
    its answers are never cached: crossbar's cache key has no session in it.
    """
    match = (options or {}).get("match", "exact")
    role = details.get("authrole", "")
    valid = action in ACTIONS and match in MATCH_POLICIES and is_valid_uri(uri, match)
    if valid and action == "subscribe":
        allowed = _may_subscribe(grants, users, role, details.get("session"), details.get("authid"))(
            uri, match
        )
    else:
        allowed = valid and grants.allows(role, action, uri, match)  # type: ignore[arg-type]
    # callers are disclosed to Broker's own procedures (only Broker registers any),
    # which authorize on the caller's session; publishers stay anonymous to subscribers
    cache = action != "subscribe" and role != USER_ROLE
    return {"allow": allowed, "disclose": action == "call", "cache": cache}


def authenticate(
    tokens: TokenSettings | None, users: UserSessions, realm: str, authid: object, details: dict[str, Any]
) -> dict[str, Any]:
    """``broker.authenticate``: accept a WAMP-ticket session whose ticket is a valid token.

    The token's ``sub`` becomes the authid (whatever HELLO claimed) and its
    grants are remembered for the pending session id crossbar passes in
    ``details["session"]``. A refusal is ``wamp.error.not_authorized`` with
    the reason, which crossbar sends to the client in ABORT.
    """
    if tokens is None:
        raise ApplicationError(
            NotAuthorized.wamp_uri, "token authentication is not configured on this node (extra.tokens)"
        )
    try:
        claims = verify(
            details.get("ticket"), tokens.keys, tokens.audience, leeway=tokens.leeway, max_ttl=tokens.max_ttl
        )
    except InvalidToken as error:
        raise ApplicationError(error.wamp_uri, str(error)) from None
    session_id = details.get("session")
    if not isinstance(session_id, int):
        raise ApplicationError(NotAuthorized.wamp_uri, "no pending session id to attach the token to")
    users.add(session_id, claims.sub, claims.grants(), claims.expires_at, tokens.leeway)
    return {
        "role": USER_ROLE,
        "authid": claims.sub,
        "extra": {
            "expires_at": int(claims.expires_at),
            "subscribe": [{"uri": g.uri, "match": g.match} for g in claims.subscribe],
        },
    }


async def recover_for(
    may_subscribe: Callable[[str, Match], bool],
    store: HistoryStore,
    who: str,
    topic: str,
    match: str = "exact",
    epoch: object = None,
    after: object = 0,
    max_bytes: int | None = None,
) -> dict[str, Any]:
    """``broker.recover``: missed events, for callers who may subscribe to ``(topic, match)``.

    ``may_subscribe`` is the caller's own subscribe check (its role's grants,
    plus its token's for a ``user`` session); ``who`` names the caller in errors;
    the answer fits ``max_bytes``, the node's message limit; it comes from one
    snapshot read of the history engine.
    """
    try:
        check_uri(topic, match)  # also refuses an unknown match policy
        if not may_subscribe(topic, cast(Match, match)):
            raise NotAuthorized(f"{who} may not subscribe to {topic!r} ({match}), so not read its history")
        return await recover(store, topic, match, epoch, after, max_bytes=max_bytes)
    except BrokerError as error:
        raise ApplicationError(error.wamp_uri, str(error)) from None


class BrokerComponent(ApplicationSession):
    """Joins realm ``app`` inside the router worker and serves Broker's procedures."""

    def __init__(self, config: ComponentConfig) -> None:
        super().__init__(config)
        # crossbar adds the node directory as ``cbdir`` to every component's extra
        extra = without_runtime(config.extra or {})
        self._cbdir: str = (config.extra or {}).get("cbdir") or "."
        self.settings: BrokerSettings = parse_settings(extra, "$.extra")
        self._presence: PresenceTracker | None = None
        # every patch but the position hook, before crossbar starts the transports; raises
        # UnpinnedVersion (one line) on crossbar/autobahn/Twisted/txaio other than the pinned ones
        crossbar.install(
            STATE,
            hello_timeout=self.settings.hello_timeout,
            max_buffer_bytes=self.settings.slow_subscriber.max_buffer_bytes,
            max_namespaces=self.settings.metrics.max_namespaces,
            fast_path=self.settings.fast_path,
        )
        enable_fast_path(self.settings.fast_path)  # extra.fast_path (a reload applies it too)

    async def onJoin(self, details: Any) -> None:
        grants = self.settings.grants
        users = UserSessions()
        router = getattr(self._transport, "_router", None)  # crossbar's RouterApplicationSession
        timers = expiry.TokenExpiry(users, lambda sid, error: expiry.end_session(router, sid, error))
        # before the procedures: a token session must not join while its leave could be missed
        await self.subscribe(lambda info: timers.joined((info or {}).get("session")), "wamp.session.on_join")
        await self.subscribe(timers.left, "wamp.session.on_leave")
        self._presence = presence = PresenceTracker(
            lambda: self.settings.presence, lambda: self.settings.grants
        )
        await presence.attach(self)

        def _authorize(
            session: dict[str, Any], uri: str, action: str, options: dict[str, Any]
        ) -> dict[str, bool]:
            # self.settings, not a copy: a live reload replaces it (broker.router.reloader)
            return authorize(self.settings.grants, session, uri, action, options, users)

        def _authenticate(realm: str, authid: object, details: dict[str, Any]) -> dict[str, Any]:
            return authenticate(self.settings.tokens, users, realm, authid, details)

        await self.register(_authorize, AUTHORIZE_PROCEDURE, options=RegisterOptions(invoke="single"))
        await self.register(_authenticate, AUTHENTICATE_PROCEDURE, options=RegisterOptions(invoke="single"))

        history = self.settings.history
        store = create_store(
            history.store, "$.extra.history.store", base_dir=self._cbdir, connect=redislink.connect
        )
        STATE.history, STATE.history_policies = store, history.policies
        STATE.shared_history = store.shared
        STATE.message_limit = self._message_limit()
        STATE.delivery = delivery = LocalDelivery(self)
        # events other processes append, and those it lost (never, for memory/SQLite)
        store.subscribe(delivery.feed, lambda low, high: gaps.end_subscribers(router, low, high))
        positions.install()
        presence.share = open_presence(
            history.store, presence.book, lambda: self.settings.presence, STATE.node_id, redislink.connect
        )

        async def _presence(topic: object, details: Any = None) -> dict[str, Any]:
            return await presence.ask(topic, details.caller_authrole or "", details.caller_authid)

        await self.register(
            _presence, PRESENCE_PROCEDURE, options=RegisterOptions(invoke="single", details_arg="details")
        )

        async def _recover(
            topic: str, match: str = "exact", epoch: object = None, after: object = 0, details: Any = None
        ) -> dict[str, Any]:
            role = details.caller_authrole or ""
            may = _may_subscribe(self.settings.grants, users, role, details.caller, details.caller_authid)
            who = f"user {details.caller_authid!r}" if role == USER_ROLE else f"role {role!r}"
            try:
                answer = await recover_for(may, store, who, topic, match, epoch, after, STATE.message_limit)
            except ApplicationError:
                metrics.count_recovery("refused")
                raise
            metrics.count_recovery(recovery_outcome(epoch, answer))
            return answer

        await self.register(
            _recover, RECOVER_PROCEDURE, options=RegisterOptions(invoke="single", details_arg="details")
        )
        journals = open_publish_memory(history.store, base_dir=self._cbdir)  # on disk, whatever the store
        STATE.publish_gate = PublishGate(
            self.settings.http_publish, self.settings.publishers, journals, cluster_rate_limits=store.shared
        )
        reload = reloader.Reloader.for_node(self, STATE, Path(self._cbdir))

        def _reload() -> dict[str, list[str]]:
            try:
                return reload.reload_or_raise("broker reload")
            except ConfigError as error:
                raise ApplicationError(error.wamp_uri, str(error), path=error.path) from None

        await self.register(_reload, RELOAD_PROCEDURE, options=RegisterOptions(invoke="single"))
        from twisted.internet import reactor

        reload.handle_sighup(reactor)
        STATE.session = self
        # crossbar runs at log level "warn" by default (its "info" is unreadable),
        # and operators need to see when the node is ready: once its port listens
        # (crossbar starts this component first; a port in use must not read "ready")

        def ready() -> None:
            _tune_garbage_collector()
            self.log.warn(
                "Broker ready: realm {realm}, grants for roles {roles}",
                realm=details.realm,
                roles=", ".join(sorted(grants.role_names())),
            )

        readiness.when_ready(ready)

    def _message_limit(self) -> int | None:
        """The message limit of the config crossbar started this node with (``<cbdir>/config.json``).

        Unreadable, it is the shipped config's 64 KiB, which fails safe: a
        smaller limit only refuses large events and pages recovery finer.
        """
        path = Path(self._cbdir) / nodeconfig.CONFIG_FILENAME
        try:
            return nodeconfig.message_limit(nodeconfig.load(path))
        except ConfigError as error:
            self.log.warn(
                "Broker: message limit unknown ({error}); using {limit} bytes",
                error=error,
                limit=FALLBACK_MESSAGE_LIMIT,
            )
            return FALLBACK_MESSAGE_LIMIT

    def onUserError(self, fail: Any, msg: str) -> None:
        """A refused recovery is the caller's error, answered to the caller: don't log it."""
        if isinstance(fail.value, ApplicationError):
            return
        super().onUserError(fail, msg)

    def onLeave(self, details: Any) -> None:
        STATE.stopping = True  # before the store closes: no publish is acknowledged unstored
        STATE.session = None
        STATE.publish_gate = None
        STATE.delivery = None
        if self._presence is not None:
            self._presence.close()
        if STATE.history is not None:
            STATE.history.close()
            STATE.history = None
        super().onLeave(details)


def _tune_garbage_collector() -> None:
    """Keep the objects the router built to start (crossbar, autobahn, Twisted, the config)
    out of the garbage collector's full collections from now on, and collect the young
    generation after 10,000 allocations instead of 700.

    Why: a full collection walks every tracked object, about 65 ms in a router worker, and
    publishes that wait on something (a Redis append) keep enough objects alive through the
    young collections to start one every second or two under load (at N=1, router CPU per
    publish: 122 -> 105 us on the Redis engine, 90 -> 83 on memory). The garbage there is
    at this point is collected first; frozen objects are still freed when nothing refers to
    them, only a cycle among them would stay (the startup heap lives as long as the process).
    What that means for an operator's own component in the router worker: docs/operators.md
    ("The start-up heap is frozen"). The young generation: an HTTP batch of 100 events
    makes several containers per event (the parsed event, its stored and delivered forms,
    the EVENT message), so each batch started young collections, and the older generations
    followed (every 10 of the one below); at 10,000 they run a tenth as often (router CPU per
    batch of 100 on the Redis engine: ~1,900 -> ~1,820 µs), and what waits for a collection
    is at most that many young objects, a few MB.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)
