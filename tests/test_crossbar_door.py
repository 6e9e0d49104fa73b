"""Every reach into crossbar, autobahn, Twisted and txaio is behind one door: ``broker/router/crossbar/``.

The rule, read from the source with :mod:`ast`: outside ``broker/router/crossbar/``
no module in ``broker/`` assigns to an attribute of anything it imported from
those stacks. What counts as *imported from those stacks* ("foreign"):

* a name bound by ``import crossbar...`` / ``from autobahn... import X`` (a module,
  class or function of theirs), at module level or inside a function;
* a name assigned from such a name without a call: an alias (``ws = WampWebSocketServerProtocol``),
  an attribute chain (``lp = longpoll.WampLongPollResource``), a tuple of them
  unpacked, or ``importlib.import_module(...)`` / ``getattr(foreign, ...)``;
* the variable of a ``for`` loop over any of those.

And what counts as an *assignment*: ``foreign.attr = ...`` (also augmented,
annotated or as part of a tuple target, and ``foreign.a.b = ...``),
``del foreign.attr``, and ``setattr(foreign, ...)`` / ``delattr(foreign, ...)``.

Not counted, on purpose: instances (``self.x = ...``, an object a call returned,
even ``TransportDetails(...)``): setting attributes on objects the code holds is
ordinary Python, not a patch of a stack's classes or modules. The rule is
lexical: a class handed in as a parameter is not followed (the door's own test,
:func:`test_the_scan_sees_each_form_of_patch`, shows each form it catches).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.errors import UnpinnedVersion
from broker.router import crossbar
from broker.router.state import NodeState

PACKAGE = Path(__file__).resolve().parent.parent / "broker"
DOOR = PACKAGE / "router" / "crossbar"
STACKS = ("crossbar", "autobahn", "twisted", "txaio")


def _is_stack(module: str) -> bool:
    return module.split(".")[0] in STACKS


def _root(node: ast.expr) -> str | None:
    """The name an attribute chain starts from (``a`` for ``a.b.c``), or None."""
    while isinstance(node, ast.Attribute):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _names(target: ast.expr) -> Iterator[str]:
    if isinstance(target, ast.Name):
        yield target.id
    elif isinstance(target, ast.Tuple | ast.List):
        for element in target.elts:
            yield from _names(element)


def _foreign_value(value: ast.expr, foreign: set[str]) -> bool:
    """Whether ``value`` evaluates to a stack's module, class or function (not an instance)."""
    if isinstance(value, ast.Tuple | ast.List):
        return any(_foreign_value(element, foreign) for element in value.elts)
    if isinstance(value, ast.Call):
        called = ast.unparse(value.func)
        if called in ("importlib.import_module", "import_module", "__import__"):
            return True
        return called == "getattr" and bool(value.args) and _foreign_value(value.args[0], foreign)
    return _root(value) in foreign if isinstance(value, ast.Attribute | ast.Name) else False


_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)


def _in_scope(scope: ast.AST) -> Iterator[ast.AST]:
    """The nodes of ``scope`` itself, not of the functions defined inside it."""
    for child in ast.iter_child_nodes(scope):
        yield child
        if not isinstance(child, _SCOPES):
            yield from _in_scope(child)


def _parameters(function: ast.AST) -> set[str]:
    if not isinstance(function, _SCOPES):
        return set()
    args = function.args
    every = [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
    return {arg.arg for arg in every if arg is not None}


def foreign_names(scope: ast.AST, inherited: frozenset[str] = frozenset()) -> set[str]:
    """The names bound to something from the stacks in ``scope`` (see the module docstring);
    a function sees its enclosing scope's, minus its parameters."""
    foreign = set(inherited) - _parameters(scope)
    nodes = list(_in_scope(scope))
    for node in nodes:
        if isinstance(node, ast.Import):
            foreign.update((a.asname or a.name).split(".")[0] for a in node.names if _is_stack(a.name))
        elif isinstance(node, ast.ImportFrom) and not node.level and _is_stack(node.module or ""):
            foreign.update(a.asname or a.name for a in node.names)
    changed = True
    while changed:  # aliases of aliases
        changed = False
        for node in nodes:
            pairs: list[tuple[ast.expr, ast.expr]] = []
            if isinstance(node, ast.Assign):
                pairs = [(target, node.value) for target in node.targets]
            elif isinstance(node, ast.AnnAssign) and node.value is not None:
                pairs = [(node.target, node.value)]
            elif isinstance(node, ast.For):
                pairs = [(node.target, node.iter)]
            for target, value in pairs:
                new = set(_names(target)) - foreign
                if new and _foreign_value(value, foreign):
                    foreign |= new
                    changed = True
    return foreign


def _attribute_targets(target: ast.expr) -> Iterator[ast.Attribute]:
    if isinstance(target, ast.Attribute):
        yield target
    elif isinstance(target, ast.Tuple | ast.List):
        for element in target.elts:
            yield from _attribute_targets(element)


def _scope_patches(scope: ast.AST, inherited: frozenset[str]) -> Iterator[tuple[int, str]]:
    foreign = foreign_names(scope, inherited)
    for node in _in_scope(scope):
        if isinstance(node, _SCOPES):
            yield from _scope_patches(node, frozenset(foreign))
            continue
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign | ast.Delete):
            targets = list(node.targets)
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("setattr", "delattr")
            and node.args
            and _foreign_value(node.args[0], foreign)
        ):
            yield node.lineno, ast.unparse(node)
        for target in targets:
            for attribute in _attribute_targets(target):
                if _root(attribute) in foreign:
                    yield node.lineno, f"{ast.unparse(attribute)} = ..."


def patches(source: str) -> list[str]:
    """Each assignment to a stack's attribute in ``source``, as ``line: code``, in line order."""
    return [f"{line}: {code}" for line, code in sorted(_scope_patches(ast.parse(source), frozenset()))]


def test_no_patch_outside_the_door() -> None:
    outside = {
        str(path.relative_to(PACKAGE.parent)): found
        for path in sorted(PACKAGE.rglob("*.py"))
        if DOOR not in path.parents and (found := patches(path.read_text(encoding="utf-8")))
    }
    assert outside == {}


def test_the_patches_are_handed_the_state() -> None:
    """The router component hands its state to :func:`crossbar.install`; no patch fetches the global."""
    fetching = [
        str(path.relative_to(PACKAGE.parent))
        for path in sorted(DOOR.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.ImportFrom)
        and node.module == "broker.router.state"
        and any(alias.name == "STATE" for alias in node.names)
    ]
    assert fetching == []


def test_the_scan_sees_each_form_of_patch() -> None:
    source = """
import importlib
import crossbar._util
from autobahn import util as au
from crossbar.router import longpoll
from crossbar.router.session import RouterSession
from twisted.web.http import HTTPChannel, Request

RouterSession.onOpen = None
ws = longpoll.WampLongPollResource
lp, receive = longpoll.A, longpoll.B
ws.render_GET = None
receive.queue += 1
crossbar._util.hl = None
au._HAS_CLICK: bool = False
setattr(HTTPChannel, "x", 1)
for module in (longpoll, au):
    module.set_headers = None
mod = importlib.import_module("crossbar.common")
mod.helper = None
del Request.gotLength

def local():
    from twisted.internet import base
    base.ReactorBase.sigTerm = None
"""
    assert [line.split(":")[0] for line in patches(source)] == [
        "9", "12", "13", "14", "15", "16", "18", "20", "21", "25"
    ]  # fmt: skip


def test_instances_are_not_patches() -> None:
    source = """
from autobahn.wamp.types import TransportDetails

class Mine:
    def __init__(self):
        self.details = TransportDetails()
        self.details.peer = "x"

def f(channel):
    details = TransportDetails()
    details.peer = "tcp:1"
    channel._broker_refused = True
"""
    assert patches(source) == []


def _patchable() -> dict[str, dict[str, object]]:
    """The namespaces the patches assign into, copied (to compare before and after)."""
    from crossbar.router import broker as crossbar_broker
    from crossbar.router.longpoll import WampLongPollResource, WampLongPollResourceSession
    from crossbar.router.protocol import WampWebSocketServerProtocol
    from crossbar.router.session import RouterSession
    from twisted.web.http import HTTPChannel, Request

    spaces = (
        crossbar_broker,
        crossbar_broker.Broker,
        WampLongPollResource,
        WampLongPollResourceSession,
        WampWebSocketServerProtocol,
        RouterSession,
        HTTPChannel,
        Request,
    )
    return {repr(space): dict(vars(space)) for space in spaces}


def test_install_refuses_another_autobahn_and_patches_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    pins = crossbar.versions.node_pins(crossbar.versions.metadata.requires("broker") or [])
    real = crossbar.versions._installed
    monkeypatch.setattr(
        crossbar.versions, "_installed", lambda name: "26.10.2" if name == "autobahn" else real(name)
    )
    monkeypatch.setattr(crossbar, "_applied", [])
    before = _patchable()
    with pytest.raises(UnpinnedVersion) as refused:
        crossbar.install(NodeState(), hello_timeout=10.0, max_buffer_bytes=1 << 20, max_namespaces=20)
    assert str(refused.value) == (
        f"autobahn 26.10.2 is installed, but Broker's crossbar patches were written and tested for "
        f"autobahn {pins['autobahn']}: install the pinned versions "
        "(pip install -c constraints/node.txt 'broker[node]', or make venv)"
    )
    assert pins["autobahn"] != "26.10.2"
    assert crossbar._applied == []
    assert _patchable() == before


def test_install_twice_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    names = [name for name, _ in crossbar.install_order()]
    doors: list[crossbar.Door] = []

    def order() -> tuple[crossbar.Installer, ...]:
        return tuple((name, doors.append) for name in names)

    monkeypatch.setattr(crossbar, "install_order", order)
    monkeypatch.setattr(crossbar, "_applied", [])
    monkeypatch.setattr(crossbar.versions, "check_installed", lambda: None)
    state = NodeState()
    crossbar.install(state, hello_timeout=10.0, max_buffer_bytes=1 << 20, max_namespaces=20)
    assert len(doors) == len(names) and all(door.state is state for door in doors)
    crossbar.install(state, hello_timeout=1.0, max_buffer_bytes=1, max_namespaces=1)
    assert len(doors) == len(names)  # the second call applied nothing
    assert crossbar._applied == names
    assert names[0] == "logstyle" and names[-1] == "readiness"


def test_the_router_component_refuses_to_start_on_another_autobahn(monkeypatch: pytest.MonkeyPatch) -> None:
    """What crossbar sees when it creates Broker's component on an unpinned autobahn: the one line."""
    from autobahn.wamp.types import ComponentConfig

    from broker.router.component import BrokerComponent

    real = crossbar.versions._installed
    monkeypatch.setattr(
        crossbar.versions, "_installed", lambda name: "26.10.2" if name == "autobahn" else real(name)
    )
    monkeypatch.setattr(crossbar, "_applied", [])
    before = _patchable()
    with pytest.raises(
        UnpinnedVersion, match=r"^autobahn 26\.10\.2 is installed, but Broker's crossbar patches"
    ):
        BrokerComponent(ComponentConfig(realm="app", extra={}))
    assert _patchable() == before
