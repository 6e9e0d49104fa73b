"""Whether a ``classname`` in the config names a class that exists, without running its module.

Why: crossbar 26.10's ``check`` accepts any ``classname``; a missing one
fails only at start, as ``crossbar.error.class_import_failed`` in a
traceback. Importing the module to find out would run it (Broker's router
modules patch crossbar when imported), so this locates the module with
:mod:`importlib` (which runs only its parent packages' ``__init__``) and
looks for the name among the top-level definitions of its source.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def _search_path(pythonpath: Sequence[Path]) -> Iterator[None]:
    saved = list(sys.path)
    sys.path[:0] = [str(p) for p in pythonpath]
    try:
        yield
    finally:
        sys.path[:] = saved


def _top_level_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    return names


def find_class(classname: str, pythonpath: Sequence[Path] = ()) -> str | None:
    """Why ``classname`` (``package.module.Class``) cannot be loaded, or ``None`` if it can.

    ``pythonpath`` is searched first, as the worker's ``options.pythonpath`` is.
    """
    module_name, _, name = classname.rpartition(".")
    if not module_name or not name:
        return f"{classname!r} is not a dotted 'module.Class' name"
    with _search_path(pythonpath):
        try:
            spec = importlib.util.find_spec(module_name)
        except (ImportError, ValueError) as exc:  # a parent package is missing or broken
            return f"module {module_name!r} cannot be imported: {exc}"
    if spec is None:
        return f"no module named {module_name!r}"
    if spec.origin is None or not spec.origin.endswith(".py"):
        return None  # a namespace package or an extension module: nothing to read
    try:
        tree = ast.parse(Path(spec.origin).read_bytes(), filename=spec.origin)
    except (OSError, SyntaxError) as exc:
        return f"module {module_name!r} cannot be read: {exc}"
    if name not in _top_level_names(tree):
        return f"module {module_name!r} defines no {name!r}"
    return None
