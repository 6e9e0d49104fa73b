"""Whether every web path of the node is attached: what ``GET /health`` waits for.

Why: crossbar 26.10 starts a web transport listening with its root path only,
then the controller attaches the other paths one WAMP call at a time
(``start_web_transport_service``, in config order). ``/health`` is attached
before ``/ws`` and ``/lp``, so a health check that answered as soon as Broker's
component had joined let a client (a supervisor, a load balancer, the tests)
reach ``/ws`` while crossbar still answered it with 404. Broker wraps
the root web service's ``__setitem__`` (how crossbar attaches a path) so
:func:`pending_paths` knows, per web transport, which configured paths are not
attached yet; ``/health`` says ready only when none are. (The hook itself is
:mod:`broker.router.crossbar.readiness`.)

The same moment is when the node may say "ready" in its log
(:func:`when_ready`): crossbar starts Broker's component before its
transports listen, so a component that announced itself on joining said
"ready" before a port that was taken failed to listen.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: transport id -> configured paths not attached yet (recorded as paths are attached)
_pending: dict[str, frozenset[str]] = {}
#: what :func:`when_ready` holds until every configured path is attached
_waiting: list[Callable[[], None]] = []


def _configured_paths(transport_config: dict[str, Any]) -> frozenset[str]:
    """The paths a web transport's config names below its root ("universal" transports nest them)."""
    web = transport_config.get("web", transport_config)
    return frozenset(path for path in web.get("paths", {}) if path != "/")


def pending_paths() -> list[str]:
    """Configured web paths not attached yet, as ``transport:path``, sorted."""
    return sorted(f"{tid}:{path}" for tid, paths in _pending.items() for path in paths)


def listening() -> bool:
    """Whether a web transport listens and has every configured path attached."""
    return bool(_pending) and not pending_paths()


def when_ready(callback: Callable[[], None]) -> None:
    """Call ``callback`` once the web transports listen with every path attached (now, if they do)."""
    if listening():
        callback()
    else:
        _waiting.append(callback)


def attached(transport_id: str, transport_config: dict[str, Any], paths: frozenset[str]) -> None:
    """The root web service of transport ``transport_id`` has ``paths`` attached now (called by
    :mod:`broker.router.crossbar.readiness` as crossbar attaches each path)."""
    _pending[transport_id] = _configured_paths(transport_config) - paths
    if listening():
        waiting = list(_waiting)
        _waiting.clear()
        for callback in waiting:
            callback()
