"""Broker settings: validated once, every error names its JSON path."""

import json
from pathlib import Path

import pytest

from broker.errors import ConfigError
from broker.settings import find_component, parse_settings

ROOT = Path(__file__).resolve().parent.parent


def test_project_config_parses() -> None:
    config = json.loads((ROOT / ".crossbar" / "config.json").read_text())
    path, component = find_component(config)
    settings = parse_settings(component["extra"], f"{path}.extra")
    assert path == "$.workers[0].components[0]"
    assert settings.grants.allows("anonymous", "subscribe", "public.demo")
    assert not settings.grants.allows("anonymous", "publish", "public.demo")


@pytest.mark.parametrize(
    ("extra", "path", "message"),
    [
        ({"grantz": {}}, "$.extra.grantz", "unknown key 'grantz'"),
        ({"grants": []}, "$.extra.grants", "must be an object"),
        ({"grants": {"a": {}}}, "$.extra.grants.a", "must be a list"),
        ({"grants": {"a": ["x"]}}, "$.extra.grants.a[0]", "a grant must be an object"),
        (
            {"grants": {"a": [{"uri": "x", "allow": ["subscribe"], "mtch": "exact"}]}},
            "$.extra.grants.a[0].mtch",
            "unknown key 'mtch'",
        ),
        (
            {"grants": {"a": [{"uri": "x", "match": "regex", "allow": ["subscribe"]}]}},
            "$.extra.grants.a[0].match",
            "must be one of exact, prefix, wildcard",
        ),
        (
            {"grants": {"a": [{"uri": "a b", "allow": ["subscribe"]}]}},
            "$.extra.grants.a[0].uri",
            "invalid grant URI 'a b'",
        ),
        ({"grants": {"a": [{"allow": ["subscribe"]}]}}, "$.extra.grants.a[0].uri", "missing"),
        ({"grants": {"a": [{"uri": "x", "allow": []}]}}, "$.extra.grants.a[0].allow", "non-empty list"),
        (
            {"grants": {"a": [{"uri": "x", "allow": ["subscribe", "delete"]}]}},
            "$.extra.grants.a[0].allow[1]",
            "unknown action 'delete'",
        ),
        ({"hello_timeout": 0}, "$.extra.hello_timeout", "must be a number of seconds"),
        ({"hello_timeout": True}, "$.extra.hello_timeout", "must be a number of seconds"),
    ],
)
def test_errors_name_their_path(extra: object, path: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_settings(extra, "$.extra")
    assert info.value.path == path
    assert message in info.value.message
    assert str(info.value).startswith(f"{path}: ")


def test_missing_component_is_named() -> None:
    with pytest.raises(ConfigError, match=r"^\$\.workers: no router component"):
        find_component({"workers": [{"type": "router", "components": []}]})
