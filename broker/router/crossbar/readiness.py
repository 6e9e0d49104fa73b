"""The hook that tells :mod:`broker.router.readiness` which web paths crossbar has attached.

What crossbar 26.10 does: it starts a web transport listening with its root
path only, then attaches the other paths one WAMP call at a time, so a
``/health`` attached before ``/ws`` answered while ``/ws`` was still 404. What
Broker does instead: every time crossbar attaches a path to a transport's root
web service, :func:`broker.router.readiness.attached` learns it, and
``/health`` (and the "Broker ready" log line) waits for every configured path.

Wraps ``crossbar/webservice/base.py: RouterWebService.__setitem__``. Tests:
``tests/test_readiness.py``.
"""

from __future__ import annotations

from typing import Any

from crossbar.webservice.base import RouterWebService

from broker.router import readiness


def _make_setitem(original: Any) -> Any:
    def setitem(self: Any, path: str, webservice: Any) -> None:
        original(self, path, webservice)
        transport, attached = self._transport, frozenset(self._paths)
        if self._path == "/" and getattr(transport, "root", None) is self:
            readiness.attached(str(transport.id), getattr(transport, "_config", {}), attached)

    return setitem


def install() -> None:
    """Record attached web paths from now on (before crossbar starts the transports)."""
    RouterWebService.__setitem__ = _make_setitem(RouterWebService.__setitem__)  # type: ignore[method-assign]
