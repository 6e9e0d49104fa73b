"""Live reload inside the router worker: the thin adapter between :mod:`broker.config.reload` and crossbar.

Why: crossbar reads its config once, so without this every edit means a
restart that drops every connection. ``broker reload`` calls
``broker.reload`` (operator only) and ``SIGHUP`` reaches this worker (the
controller forwards it, :mod:`broker.router.launcher`); both re-read the
source config ``broker run`` started from (``$BROKER_CONFIG``), let
:func:`broker.config.reload.plan_reload` validate all of it, and apply a valid plan
at once, on the reactor thread, between two messages:

* role grants and token keys: the component's settings, which its authorizer
  and authenticator read on every call, and crossbar's authorization cache
  (``Router._authorization_cache``, where cached publish/call answers live) is
  cleared so no stale "yes" survives;
* publisher keys and HTTP publish limits: :meth:`PublishGate.reconfigure`,
  which keeps the replay memory and the idempotency cache;
* history policies (``NodeState.history_policies``), the HELLO deadline, the
  slow-subscriber limit (:func:`broker.router.crossbar.configure`) and the
  metrics' namespace cap (:func:`broker.router.metrics.configure`);
* allowed origins: crossbar builds one autobahn WebSocket factory per
  WebSocket path and never looks at the config again, so
  :mod:`broker.router.crossbar.reload` records each factory as crossbar
  creates it (and each long-poll resource, whose CORS follows the same
  origins, as static files' does, :mod:`broker.router.crossbar.cors`) and a
  reload calls the factory's ``setProtocolOptions(allowedOrigins=...)``.

Secrets: ``broker run`` copies the dev secrets file's values into crossbar's
environment at start and names them in ``$BROKER_FILE_SECRETS``; on reload
those names take the file's current value (a rotated key), while names the
operator set in the real environment keep winning (:func:`broker.config.reload.reload_env`).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from twisted.logger import Logger

from broker.config import clusterenv, devsecrets, nodeconfig
from broker.config.reload import (
    ENV_CONFIG,
    ENV_FILE_SECRETS,
    SNAPSHOT_FILENAME,
    Plan,
    plan_reload,
    reload_env,
)
from broker.core.longpoll import websocket_origin_policy
from broker.errors import ConfigError
from broker.router import crossbar, metrics
from broker.router.crossbar import reload as crossbar_reload
from broker.router.crossbar.publish import enable_fast_path
from broker.router.state import NodeState

_log = Logger(namespace="broker.reload")


class Reloader:
    """Re-reads, validates and applies the node config for one Broker component."""

    def __init__(
        self,
        component: Any,
        state: NodeState,
        running: Mapping[str, Any],
        source: Path,
        from_file: frozenset[str] = frozenset(),
    ) -> None:
        self.component = component
        #: The node's state, handed over by the component (publish gate, history policies).
        self.state = state
        #: The source config the router runs, rendered (live changes applied).
        self.running: Mapping[str, Any] = running
        self.source = source
        self.from_file = from_file

    @classmethod
    def for_node(cls, component: Any, state: NodeState, cbdir: Path) -> Reloader:
        """The reloader of a node started by ``broker run`` (or by ``crossbar start`` in ``cbdir``)."""
        snapshot = cbdir / SNAPSHOT_FILENAME
        if not snapshot.exists():  # started by crossbar itself: its config is the source
            snapshot = cbdir / nodeconfig.CONFIG_FILENAME
        try:
            running: Mapping[str, Any] = nodeconfig.load(snapshot)
        except ConfigError as error:  # reloads will be refused, the node still serves
            _log.warn("Broker reload unavailable: {error}", error=error)
            running = {}
        source = os.environ.get(ENV_CONFIG)
        from_file = frozenset(n for n in os.environ.get(ENV_FILE_SECRETS, "").split(",") if n)
        return cls(
            component,
            state,
            running,
            Path(source) if source else cbdir / nodeconfig.CONFIG_FILENAME,
            from_file=from_file,
        )

    def plan(self) -> Plan:
        """Read and validate the source config; raises :class:`ConfigError` naming the path."""
        # the same BROKER_REDIS_URL the node started with (checked then), as in its snapshot
        redis_url = clusterenv.redis_url(os.environ)
        new = nodeconfig.render(nodeconfig.load(self.source), self.source.parent, redis_url=redis_url)
        file_secrets = devsecrets.load(devsecrets.path_for(self.source.parent))
        env = reload_env(os.environ, file_secrets, self.from_file)
        return plan_reload(self.running, new, env, current=self.component.settings, start_env=os.environ)

    def reload(self) -> dict[str, list[str]]:
        """Validate, then apply all of it or nothing; the report of what changed."""
        plan = self.plan()
        if plan.live:
            self._apply(plan)
        self.running = plan.applied
        return plan.report()

    def _apply(self, plan: Plan) -> None:
        settings = plan.settings
        self.component.settings = settings
        router = getattr(getattr(self.component, "_transport", None), "_router", None)
        cache = getattr(router, "_authorization_cache", None)
        if isinstance(cache, dict):
            cache.clear()  # cached publish/call answers were the old grants'
        if self.state.publish_gate is not None:
            self.state.publish_gate.reconfigure(settings.http_publish, settings.publishers)
        self.state.history_policies = settings.history.policies
        crossbar.configure(
            settings.hello_timeout, settings.slow_subscriber.max_buffer_bytes, settings.fast_path
        )
        metrics.configure(settings.metrics.max_namespaces)
        enable_fast_path(settings.fast_path)
        _, transport = nodeconfig.web_transport(plan.applied)
        origins, allow_null = websocket_origin_policy(transport.get("paths", {}))
        crossbar_reload.apply_origins(plan.origins, origins, allow_null)

    def reload_logged(self, trigger: str) -> dict[str, list[str]] | None:
        """:meth:`reload`, logging the outcome; a refusal is logged and answered None."""
        try:
            return self.reload_or_raise(trigger)
        except ConfigError:
            return None

    def reload_or_raise(self, trigger: str) -> dict[str, list[str]]:
        """:meth:`reload`, logging the outcome; a refusal is logged and raised."""
        try:
            report = self.reload()
        except ConfigError as error:
            _log.warn(
                "Broker reload ({trigger}) refused, running config kept: {error}",
                trigger=trigger,
                error=error,
            )
            raise
        if not report["changed"] and not report["restart_needed"]:
            _log.warn("Broker reload ({trigger}): no changes", trigger=trigger)
        for path in report["changed"]:
            _log.warn("Broker reload ({trigger}): changed {path}", trigger=trigger, path=path)
        for path in report["restart_needed"]:
            _log.warn("Broker reload ({trigger}): restart needed: {path}", trigger=trigger, path=path)
        return report

    def handle_sighup(self, reactor: Any) -> None:
        """Reload on SIGHUP, on the reactor thread (the handler only schedules it)."""

        def handler(signum: int, frame: object) -> None:
            reactor.callFromThread(self.reload_logged, "SIGHUP")

        signal.signal(signal.SIGHUP, handler)
