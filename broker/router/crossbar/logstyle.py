"""Plain, lazy log arguments on the router's hot path: built for every message, then mostly dropped.

Why: autobahn 26.10's send path (``WampWebSocketProtocol.send``,
``WebSocketProtocol.sendData``) and crossbar's per-publish path
(``Broker.processPublish``, ``Router.authorize``) build the arguments of their
trace and debug log lines on every message, before the logger drops them at
Broker's ``warn`` level: ``hl*`` colour each one with ``click.style``,
``hltype`` introspects the method it names, ``Router.authorize`` pretty-prints
the (cached) authorization with ``pformat``. Under fan-out this was a third of
the router's time per delivered event (``bench/router_profile.py``), more than all of
Broker's own hooks together, and at one subscriber per topic the per-publish
part dominated.

So the router worker:

* turns the colouring off (autobahn's ``hl`` and crossbar's): Broker's logs
  go to files and journald, where ANSI colour codes are noise anyway;
* gives the hot-path modules (:data:`HOT_PATH`) their own helpers: values are
  passed as they are (a log format renders ``{name}`` as ``f"{val}"`` would),
  and what costs something to render (``hltype``'s qualified name,
  ``pformat``) becomes a :class:`Lazy` rendered only if a log line is actually
  emitted. The words of every line stay the same; the work moves to the rare
  line that is written.

Replaces ``autobahn/util.py: _HAS_CLICK``, ``crossbar/_util.py: hl`` and, in
the modules of :data:`HOT_PATH`, the log helpers they imported by name.
Tests: ``tests/test_logstyle.py``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from pprint import pformat as _pformat
from typing import Any, Final

import autobahn.util
import crossbar._util


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


def hltype(obj: Any, render: bool = True) -> Lazy | str:
    """``hltype`` (autobahn's and crossbar's) without colour, rendered lazily: ``<module.Class.method>``."""
    return Lazy(_type_name, obj) if render else ""


def hlval(val: Any, color: str = "white", bold: bool = True) -> Any:
    """``hlval``/``hlid`` without colour: the value itself, which a log format renders as text.

    ``{name}`` formats a value exactly as ``f"{val}"`` (what the originals
    colour) would, so the line reads the same; returning the value costs one
    call, cheaper even than a :class:`Lazy`.
    """
    return val


def hlflag(flag: bool | None, true_txt: str = "YES", false_txt: str = "NO", null_txt: str = "UNSET") -> str:
    """crossbar's ``hlflag`` without colour: the text for ``flag``."""
    return null_txt if flag is None else true_txt if flag else false_txt


def pformat(obj: Any) -> Lazy:
    """``pprint.pformat`` when the line is written, not when it is built."""
    return Lazy(_pformat, obj)


def _plain(text: Any, bold: bool = False, color: str = "yellow") -> str:
    """``hl`` without colour (autobahn's and crossbar's signature)."""
    return text if isinstance(text, str) else f"{text}"


#: Module -> the log helpers it imported by name, and what stands in for each.
HOT_PATH: Final[Mapping[str, Mapping[str, Callable[..., Any]]]] = {
    "autobahn.websocket.protocol": {"hltype": hltype, "hlval": hlval},
    "autobahn.wamp.websocket": {"hlval": hlval},
    "crossbar.router.router": {"hltype": hltype, "hlval": hlval, "hlid": hlval, "pformat": pformat},
    "crossbar.router.broker": {"hltype": hltype, "hlid": hlval, "hlflag": hlflag},
}


def install() -> None:
    """Plain log arguments in this process, lazy on the hot path (idempotent)."""
    # autobahn's hl() consults this flag on every call (autobahn/util.py); False means "no click"
    autobahn.util._HAS_CLICK = False
    crossbar._util.hl = _plain  # crossbar's hl* helpers call it through their module globals
    for name, helpers in HOT_PATH.items():
        module = importlib.import_module(name)
        for helper_name, helper in helpers.items():
            if hasattr(module, helper_name):  # only the names the module imported
                setattr(module, helper_name, helper)
