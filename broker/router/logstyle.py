"""Plain log arguments in the router: autobahn colours them on every message sent, even unlogged.

Why: autobahn 26.10's send path (``WampWebSocketProtocol.send``,
``WebSocketProtocol.sendData``) builds the arguments of its trace and debug log
lines with ``autobahn.util.hl``/``hlval``/``hltype`` on every message, before
the logger drops them at Broker's ``warn`` level, and ``hl`` colours each one
with ``click.style``. Under fan-out this was a third of the router's time per
delivered event (``bench/profile.py``), more than all of Broker's own hooks
together. Broker's logs go to files and journald, where ANSI colour codes are
noise anyway, so the router worker colours nothing: ``hl`` then returns the
text as it is, and every log line keeps its words.
"""

from __future__ import annotations

import autobahn.util


def install() -> None:
    """Make autobahn's log-argument styling a no-op in this process (idempotent)."""
    # hl() consults this module flag on every call (autobahn/util.py); False means "no click"
    autobahn.util._HAS_CLICK = False
