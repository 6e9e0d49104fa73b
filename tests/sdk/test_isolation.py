"""The SDK's promise: it installs and imports without crossbar, Twisted or autobahn.

These tests run in ``.venv-sdk`` (``make sdk-venv``: Broker without extras) and
fail anywhere crossbar is installed, which is why the main run ignores
``tests/sdk``.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest


@pytest.mark.parametrize("name", ["crossbar", "twisted", "autobahn"])
def test_the_node_stack_is_not_installed(name: str) -> None:
    assert importlib.util.find_spec(name) is None, f"{name} is installed: run these tests in .venv-sdk"


def test_importing_the_sdk_loads_only_the_stdlib_and_broker() -> None:
    script = (
        "import json, sys; before = set(sys.modules); "
        "import broker.client, broker.client.wamp; "
        "print(json.dumps(sorted({m.split('.')[0] for m in set(sys.modules) - before})))"
    )
    out = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True).stdout
    loaded = set(json.loads(out))
    assert "broker" in loaded
    assert {name for name in loaded - {"broker"} if name not in sys.stdlib_module_names} == set()
