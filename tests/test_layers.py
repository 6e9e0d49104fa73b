"""The layout's rules, read from the source: which folder may import what, no cycles, small modules.

Imports are read with :mod:`ast` (module level and inside functions alike; a
lazy import is still a dependency), so a rule broken anywhere fails here
before it confuses the next reader. An import under ``if TYPE_CHECKING:``
never runs, so it makes no cycle, but a pure layer may not name an I/O stack
even there.
"""

from __future__ import annotations

import ast
from collections.abc import Collection, Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "broker"
#: Third-party stacks the pure layers must not import.
IO_STACKS = ("twisted", "autobahn", "crossbar", "txaio", "prometheus_client")
#: What each pure layer may import from broker (besides itself).
ALLOWED = {
    "broker.core": ("broker.errors", "broker.core"),
    "broker.history": ("broker.errors", "broker.core", "broker.history"),
    "broker.engines": ("broker.errors", "broker.core", "broker.history", "broker.engines"),
    "broker.config": ("broker.errors", "broker.core", "broker.history", "broker.engines", "broker.config"),
    # the SDK: stdlib only, plus the pure rules it shares with the node (signing, tokens, resume)
    "broker.client": ("broker.client", "broker.core", "broker.history"),
}
#: Adapters inside a pure layer, and the stacks each may import (the SDK's optional WAMP helper).
ADAPTERS = {"broker.client.wamp": ("twisted", "autobahn")}
#: A module longer than this is two concerns (the guide: "small enough to read in one sitting").
MAX_LINES = 420


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _typing_only(tree: ast.Module) -> set[int]:
    """The ids of the nodes under an ``if TYPE_CHECKING:`` (annotations only, never executed)."""
    hidden: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            hidden.update(id(child) for stmt in node.body for child in ast.walk(stmt))
    return hidden


def imports(path: Path, name: str, known: Collection[str] = (), runtime: bool = False) -> Iterator[str]:
    """Every module ``path`` imports, by absolute name (``known``: broker's modules, to tell submodules).

    ``runtime``: leave out the imports under ``if TYPE_CHECKING:``, which never run.
    """
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    hidden = _typing_only(tree) if runtime else set()
    for node in ast.walk(tree):
        if id(node) in hidden:
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            # ``from pkg import submodule`` depends on the submodule; ``from module import name`` on module
            submodules = [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in known]
            yield from submodules or [base]


def broker_graph() -> dict[str, set[str]]:
    known = modules()
    return {
        name: {dep for dep in imports(path, name, known, runtime=True) if dep in known and dep != name}
        for name, path in known.items()
    }


def test_no_import_cycles() -> None:
    graph = broker_graph()
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                cycles.append([*stack[stack.index(dep) :], dep])
            elif dep not in state:
                visit(dep)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    # a package importing its own submodules is not a cycle unless a submodule imports the package back
    assert [" -> ".join(cycle) for cycle in cycles] == []


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_pure_layers_import_only_what_they_may(layer: str) -> None:
    wrong = []
    known = modules()
    for name, path in known.items():
        if name != layer and not name.startswith(layer + "."):
            continue
        for dep in imports(path, name, known):
            top = dep.split(".")[0]
            if (top in IO_STACKS and top not in ADAPTERS.get(name, ())) or (
                top == "broker" and dep != "broker" and not dep.startswith(ALLOWED[layer])
            ):
                wrong.append(f"{name} imports {dep}")
    assert wrong == []


def test_modules_stay_small() -> None:
    long = {
        name: length
        for name, path in modules().items()
        if (length := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}


def test_every_module_says_why() -> None:
    undocumented = [
        name for name, path in modules().items() if ast.get_docstring(ast.parse(path.read_text())) is None
    ]
    assert undocumented == []
