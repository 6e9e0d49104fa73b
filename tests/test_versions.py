"""The pinned versions of what Broker patches (``broker run`` refusing others: tests/test_cli.py)."""

from __future__ import annotations

from importlib import metadata

from broker.router.crossbar import versions

REQUIRES = [
    'crossbar==26.10.1; extra == "node"',
    'autobahn[twisted]==26.11.1; extra == "node"',
    'twisted==26.10.0; extra == "node"',
    "txaio==26.6.1; extra == 'node'",
    'numpy<2,>=1.24; extra == "node"',
    'django<7,>=5.2; extra == "django"',
    "hypothesis==6.1; extra == 'test'",
]
PINNED = {"crossbar": "26.10.1", "autobahn": "26.11.1", "twisted": "26.10.0", "txaio": "26.6.1"}


def test_the_node_extra_pins_are_read_from_the_metadata() -> None:
    assert versions.node_pins(REQUIRES) == PINNED


def test_matching_versions_pass() -> None:
    assert versions.mismatch(PINNED, PINNED.get) is None


def test_another_autobahn_is_named_with_both_versions() -> None:
    installed = {**PINNED, "autobahn": "26.10.2"}
    assert versions.mismatch(PINNED, installed.get) == (
        "autobahn 26.10.2 is installed, but Broker's crossbar patches were written and tested for "
        "autobahn 26.11.1: install the pinned versions (pip install -c constraints/node.txt "
        "'broker[node]', or make venv)"
    )


def test_a_missing_package_is_named() -> None:
    installed = {k: v for k, v in PINNED.items() if k != "txaio"}
    problem = versions.mismatch(PINNED, installed.get)
    assert problem is not None and problem.startswith("txaio is not installed, but ")


def test_this_venv_runs_the_pinned_versions() -> None:
    """The project's own pins are exact and what make venv installed (make test runs this)."""
    pins = versions.node_pins(metadata.requires("broker") or [])
    assert set(pins) >= set(versions.PATCHED)
    assert versions.check_installed() is None
