"""Plain, lazy log arguments on autobahn's send path: it styles them on every message, even unlogged.

Why: autobahn 26.10's send path (``WampWebSocketProtocol.send``,
``WebSocketProtocol.sendData``) builds the arguments of its trace and debug log
lines with ``autobahn.util.hltype``/``hlval`` on every message, before the
logger drops them at Broker's ``warn`` level: ``hl`` colours each one with
``click.style`` and ``hltype`` introspects the method it names. Under fan-out
this was a third of the router's time per delivered event (``bench/profile.py``),
more than all of Broker's own hooks together.

So the router worker:

* turns the colouring off (``autobahn.util._HAS_CLICK``): Broker's logs go to
  files and journald, where ANSI colour codes are noise anyway;
* gives the two send-path modules their own ``hlval`` (the value itself) and
  ``hltype`` (a :class:`Lazy` name, rendered only if a log line is actually
  emitted): the words of every line stay the same, the work moves to the rare
  line that is written.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import autobahn.util
import autobahn.wamp.websocket
import autobahn.websocket.protocol

#: The modules whose per-message log lines take ``hltype``/``hlval`` arguments.
SEND_PATH: tuple[ModuleType, ...] = (autobahn.websocket.protocol, autobahn.wamp.websocket)


class Lazy:
    """A log argument rendered when formatted (``{name}`` in a log format), not when built."""

    __slots__ = ("_arg", "_render")

    def __init__(self, render: Callable[[Any], str], arg: Any) -> None:
        self._render = render
        self._arg = arg

    def __str__(self) -> str:
        return self._render(self._arg)

    def __format__(self, spec: str) -> str:
        return format(self._render(self._arg), spec)

    def __repr__(self) -> str:
        return repr(self._render(self._arg))


def _type_name(obj: Any) -> str:
    return f"<{autobahn.util._qn(obj)}>"


def hltype(obj: Any) -> Lazy:
    """``autobahn.util.hltype`` without colour, rendered lazily: ``<module.Class.method>``."""
    return Lazy(_type_name, obj)


def hlval(val: Any, color: str = "white", bold: bool = True) -> Any:
    """``autobahn.util.hlval`` without colour: the value itself, which a log format renders as text.

    ``{name}`` formats a value exactly as ``f"{val}"`` (what autobahn's ``hlval``
    returns) would, so the line reads the same; returning the value costs one
    call, cheaper even than a :class:`Lazy` (called several times per message).
    """
    return val


def install() -> None:
    """Plain log arguments in this process, lazy on the send path (idempotent)."""
    # hl() consults this module flag on every call (autobahn/util.py); False means "no click"
    autobahn.util._HAS_CLICK = False
    for module in SEND_PATH:
        for name, helper in (("hltype", hltype), ("hlval", hlval)):
            if hasattr(module, name):  # only the names the module imported from autobahn.util
                setattr(module, name, helper)
