"""Broker's router-embedded component: the authorizer, history and recovery.

It registers ``broker.authorize`` (the dynamic authorizer over
:mod:`broker.grants`) and ``broker.recover`` (missed events, see
:mod:`broker.history.recovery`), opens the history store and installs the
position hook (:mod:`broker.router.positions`).

Crossbar calls ``broker.authorize(session_details, uri, action, options)`` for
every role configured with ``"authorizer": "broker.authorize"``. Crossbar
caches an answer with ``cache: true`` under ``(realm, authrole, uri, action)``
forever, without the match policy: so only answers that cannot depend on the
match policy (publish, call, register) are cached; subscribe answers are not.
"""

from __future__ import annotations

from typing import Any

from autobahn.twisted.wamp import ApplicationSession
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import ComponentConfig, RegisterOptions

from broker.errors import BrokerError, NotAuthorized
from broker.grants import ACTIONS, Grants
from broker.history import HistoryStore, create_store
from broker.history.recovery import recover
from broker.publishing import PublishGate
from broker.router import hardening, positions
from broker.router.state import STATE
from broker.settings import BrokerSettings, parse_settings
from broker.uris import MATCH_POLICIES, check_uri, is_valid_uri

AUTHORIZE_PROCEDURE = "broker.authorize"
RECOVER_PROCEDURE = "broker.recover"


def authorize(
    grants: Grants, details: dict[str, Any], uri: str, action: str, options: dict[str, Any]
) -> dict[str, bool]:
    """Answer one crossbar authorization request from the grant table."""
    match = (options or {}).get("match", "exact")
    role = details.get("authrole", "")
    allowed = (
        action in ACTIONS
        and match in MATCH_POLICIES
        and is_valid_uri(uri, match)
        and grants.allows(role, action, uri, match)
    )
    # callers are disclosed to Broker's own procedures (only Broker registers any),
    # which authorize on the caller's role; publishers stay anonymous to subscribers
    return {"allow": allowed, "disclose": action == "call", "cache": action != "subscribe"}


def recover_for(
    grants: Grants,
    store: HistoryStore,
    role: str,
    topic: str,
    match: str = "exact",
    epoch: object = None,
    after: object = 0,
) -> dict[str, Any]:
    """``broker.recover``: missed events, for callers who may subscribe to ``(topic, match)``."""
    try:
        if match not in MATCH_POLICIES or not is_valid_uri(topic, match):
            check_uri(topic, match)
        if not grants.allows(role, "subscribe", topic, match):  # type: ignore[arg-type]
            raise NotAuthorized(
                f"role {role!r} may not subscribe to {topic!r} ({match}), so not read its history"
            )
        return recover(store, topic, match, epoch, after)
    except BrokerError as error:
        raise ApplicationError(error.wamp_uri, str(error)) from None


class BrokerComponent(ApplicationSession):
    """Joins realm ``app`` inside the router worker and serves Broker's procedures."""

    def __init__(self, config: ComponentConfig) -> None:
        super().__init__(config)
        # crossbar adds the node directory as ``cbdir`` to every component's extra
        extra = {k: v for k, v in (config.extra or {}).items() if k != "cbdir"}
        self._cbdir: str = (config.extra or {}).get("cbdir") or "."
        self.settings: BrokerSettings = parse_settings(extra, "$.extra")
        hardening.install(
            hello_timeout=self.settings.hello_timeout,
            max_buffer_bytes=self.settings.slow_subscriber.max_buffer_bytes,
        )

    async def onJoin(self, details: Any) -> None:
        grants = self.settings.grants

        def _authorize(
            session: dict[str, Any], uri: str, action: str, options: dict[str, Any]
        ) -> dict[str, bool]:
            return authorize(grants, session, uri, action, options)

        await self.register(_authorize, AUTHORIZE_PROCEDURE, options=RegisterOptions(invoke="single"))

        history = self.settings.history
        store = create_store(history.store, "$.extra.history.store", base_dir=self._cbdir)
        STATE.history, STATE.history_policies = store, history.policies
        positions.install()

        def _recover(
            topic: str, match: str = "exact", epoch: object = None, after: object = 0, details: Any = None
        ) -> dict[str, Any]:
            return recover_for(grants, store, details.caller_authrole or "", topic, match, epoch, after)

        await self.register(
            _recover, RECOVER_PROCEDURE, options=RegisterOptions(invoke="single", details_arg="details")
        )
        STATE.publish_gate = PublishGate(self.settings.http_publish, self.settings.publishers)
        STATE.session = self
        # crossbar runs at log level "warn" by default (its "info" is unreadable),
        # and operators need to see when the node is ready
        self.log.warn(
            "Broker ready: realm {realm}, grants for roles {roles}",
            realm=details.realm,
            roles=", ".join(sorted(grants.role_names())),
        )

    def onUserError(self, fail: Any, msg: str) -> None:
        """A refused recovery is the caller's error, answered to the caller: don't log it."""
        if isinstance(fail.value, ApplicationError):
            return
        super().onUserError(fail, msg)

    def onLeave(self, details: Any) -> None:
        STATE.session = None
        STATE.publish_gate = None
        if STATE.history is not None:
            STATE.history.close()
            STATE.history = None
        super().onLeave(details)
