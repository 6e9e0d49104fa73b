"""Finding a config's classes without running their modules (broker.config.check.classes)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from broker.config.check.classes import find_class


@pytest.mark.parametrize(
    "classname",
    [
        "broker.router.component.BrokerComponent",
        "broker.router.health.HealthResource",
        "broker.router.metrics.MetricsResource",
        "broker.router.publish_api.PublishResource",
        "broker.router.sse.SseResource",
    ],
)
def test_the_project_configs_classes_are_found(classname: str) -> None:
    assert find_class(classname) is None


def test_finding_a_class_does_not_import_its_module() -> None:
    sys.modules.pop("broker.router.health", None)
    assert find_class("broker.router.health.HealthResource") is None
    assert "broker.router.health" not in sys.modules


@pytest.mark.parametrize(
    ("classname", "reason"),
    [
        ("Component", "'Component' is not a dotted 'module.Class' name"),
        (
            "nosuchpackage.mod.Thing",
            "module 'nosuchpackage.mod' cannot be imported: No module named 'nosuchpackage'",
        ),
        ("broker.nosuchmodule.Thing", "no module named 'broker.nosuchmodule'"),
        ("broker.router.health.Nope", "module 'broker.router.health' defines no 'Nope'"),
    ],
)
def test_a_missing_class_says_why(classname: str, reason: str) -> None:
    assert find_class(classname) == reason


def test_the_workers_pythonpath_is_searched_and_restored(tmp_path: Path) -> None:
    (tmp_path / "ticker_app.py").write_text(
        "from json import dumps as Alias\nclass Ticker:\n    pass\nCONSTANT: int = 1\n"
    )
    before = list(sys.path)
    assert find_class("ticker_app.Ticker", [tmp_path]) is None
    assert find_class("ticker_app.Alias", [tmp_path]) is None
    assert find_class("ticker_app.Missing", [tmp_path]) == "module 'ticker_app' defines no 'Missing'"
    assert sys.path == before
    assert "ticker_app" not in sys.modules


def test_an_unparsable_module_is_reported(tmp_path: Path) -> None:
    (tmp_path / "broken_app.py").write_text("class (:\n")
    reason = find_class("broken_app.Thing", [tmp_path])
    assert reason is not None and reason.startswith("module 'broken_app' cannot be read: ")
