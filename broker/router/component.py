"""Broker's router-embedded component: the dynamic authorizer over :mod:`broker.grants`.

Crossbar calls ``broker.authorize(session_details, uri, action, options)`` for
every role configured with ``"authorizer": "broker.authorize"``. Crossbar
caches an answer with ``cache: true`` under ``(realm, authrole, uri, action)``
forever, without the match policy: so only answers that cannot depend on the
match policy (publish, call, register) are cached; subscribe answers are not.
"""

from __future__ import annotations

from typing import Any

from autobahn.twisted.wamp import ApplicationSession
from autobahn.wamp.types import ComponentConfig, RegisterOptions

from broker.grants import ACTIONS, Grants
from broker.publishing import PublishGate
from broker.router import hardening
from broker.router.state import STATE
from broker.settings import BrokerSettings, parse_settings
from broker.uris import MATCH_POLICIES, is_valid_uri

AUTHORIZE_PROCEDURE = "broker.authorize"


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
    return {"allow": allowed, "disclose": False, "cache": action != "subscribe"}


class BrokerComponent(ApplicationSession):
    """Joins realm ``app`` inside the router worker and serves Broker's procedures."""

    def __init__(self, config: ComponentConfig) -> None:
        super().__init__(config)
        # crossbar adds the node directory as ``cbdir`` to every component's extra
        extra = {k: v for k, v in (config.extra or {}).items() if k != "cbdir"}
        self.settings: BrokerSettings = parse_settings(extra, "$.extra")
        hardening.install(hello_timeout=self.settings.hello_timeout)

    async def onJoin(self, details: Any) -> None:
        grants = self.settings.grants

        def _authorize(
            session: dict[str, Any], uri: str, action: str, options: dict[str, Any]
        ) -> dict[str, bool]:
            return authorize(grants, session, uri, action, options)

        await self.register(_authorize, AUTHORIZE_PROCEDURE, options=RegisterOptions(invoke="single"))
        STATE.publish_gate = PublishGate(self.settings.http_publish, self.settings.publishers)
        STATE.session = self
        # crossbar runs at log level "warn" by default (its "info" is unreadable),
        # and operators need to see when the node is ready
        self.log.warn(
            "Broker ready: realm {realm}, grants for roles {roles}",
            realm=details.realm,
            roles=", ".join(sorted(grants.role_names())),
        )

    def onLeave(self, details: Any) -> None:
        STATE.session = None
        STATE.publish_gate = None
        super().onLeave(details)
