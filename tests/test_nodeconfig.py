"""Loading, rendering and inspecting the node config, without crossbar."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest

from broker.config import nodeconfig
from broker.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
PROJECT_CONFIG = ROOT / ".crossbar" / "config.json"


def web_config(**endpoint: Any) -> dict[str, Any]:
    """A minimal node config with one web transport."""
    return {
        "workers": [
            {
                "type": "router",
                "options": {"pythonpath": ["..", "/abs"]},
                "transports": [
                    {
                        "type": "web",
                        "endpoint": {"type": "tcp", "port": 8080, **endpoint},
                        "paths": {
                            "/": {"type": "static", "directory": "../site"},
                            "abs": {"type": "static", "directory": "/srv/www"},
                            "pkg": {"type": "static", "package": "p", "resource": "r"},
                            "nested": {
                                "type": "path",
                                "paths": {"docs": {"type": "static", "directory": "docs"}},
                            },
                            "ws": {"type": "websocket"},
                        },
                    }
                ],
            }
        ]
    }


def test_load_reads_the_project_config() -> None:
    config = nodeconfig.load(PROJECT_CONFIG)
    assert config["version"] == 2


def test_load_names_file_line_and_column_of_invalid_json(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{\n  "version": 2,\n  "workers": [,]\n}\n')
    with pytest.raises(ConfigError) as info:
        nodeconfig.load(path)
    assert info.value.path == "$"
    assert str(path) in info.value.message
    assert "line 3, column 15" in info.value.message


@pytest.mark.parametrize(("text", "expected"), [(None, "cannot read"), ("[]", "JSON object")])
def test_load_rejects_missing_files_and_non_objects(tmp_path: Path, text: str | None, expected: str) -> None:
    path = tmp_path / "config.json"
    if text is not None:
        path.write_text(text)
    with pytest.raises(ConfigError, match=expected):
        nodeconfig.load(path)


def test_render_makes_directories_and_pythonpath_absolute(tmp_path: Path) -> None:
    config_dir = tmp_path / "cfg"
    config = web_config()
    rendered = nodeconfig.render(config, config_dir)
    paths = rendered["workers"][0]["transports"][0]["paths"]
    assert paths["/"]["directory"] == str(tmp_path / "site")
    assert paths["abs"]["directory"] == "/srv/www"
    assert "directory" not in paths["pkg"]
    assert paths["nested"]["paths"]["docs"]["directory"] == str(config_dir / "docs")
    assert rendered["workers"][0]["options"]["pythonpath"] == [str(tmp_path), "/abs"]
    assert config == web_config()  # the input is left alone


def test_render_of_the_project_config_serves_the_js_client() -> None:
    rendered = nodeconfig.render(nodeconfig.load(PROJECT_CONFIG), PROJECT_CONFIG.parent)
    root = rendered["workers"][0]["transports"][0]["paths"]["/"]
    assert root["directory"] == str(ROOT / "clients" / "js")
    assert Path(root["directory"], "index.html").is_file()


def test_render_overrides_port_and_host(tmp_path: Path) -> None:
    rendered = nodeconfig.render(web_config(interface="127.0.0.1"), tmp_path, port=9000, host="::")
    endpoint = rendered["workers"][0]["transports"][0]["endpoint"]
    assert (endpoint["port"], endpoint["interface"]) == (9000, "::")
    assert nodeconfig.web_endpoint(rendered) == ("::1", 9000)
    assert nodeconfig.websocket_url(rendered) == "ws://[::1]:9000/ws"


def test_render_needs_exactly_one_web_transport_to_override(tmp_path: Path) -> None:
    config = web_config()
    config["workers"][0]["transports"].append(config["workers"][0]["transports"][0])
    assert nodeconfig.render(config, tmp_path)  # nothing to override: fine
    with pytest.raises(ConfigError, match="exactly one web transport"):
        nodeconfig.render(config, tmp_path, port=9000)


def test_urls_of_the_project_config() -> None:
    config = nodeconfig.load(PROJECT_CONFIG)
    assert nodeconfig.web_endpoint(config) == ("127.0.0.1", 8080)
    assert nodeconfig.http_url(config) == "http://127.0.0.1:8080/"
    assert nodeconfig.websocket_url(config) == "ws://127.0.0.1:8080/ws"


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [({}, ("127.0.0.1", 8080)), ({"interface": "0.0.0.0"}, ("127.0.0.1", 8080))],
)
def test_web_endpoint_connects_to_loopback_when_listening_everywhere(
    endpoint: dict[str, Any], expected: tuple[str, int]
) -> None:
    assert nodeconfig.web_endpoint(web_config(**endpoint)) == expected


def test_web_endpoint_rejects_a_port_that_is_not_a_number() -> None:
    with pytest.raises(ConfigError) as info:
        nodeconfig.web_endpoint(web_config(port="$PORT"))
    assert info.value.path == "$.workers[0].transports[0].endpoint.port"


def test_write_replaces_config_json(tmp_path: Path) -> None:
    cbdir = tmp_path / "run"
    target = nodeconfig.write(cbdir, {"version": 1})
    target = nodeconfig.write(cbdir, {"version": 2})
    assert target == cbdir / "config.json"
    assert json.loads(target.read_text()) == {"version": 2}
    assert [p.name for p in cbdir.iterdir()] == ["config.json"]
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_env_references_name_their_json_paths() -> None:
    config = nodeconfig.load(PROJECT_CONFIG)
    users = "$.workers[0].transports[0].paths.ws.auth.wampcra.users"
    assert nodeconfig.env_references(config) == [
        ("$.workers[0].components[0].extra.tokens.keys[0].secret", "BROKER_TOKEN_SECRET"),
        ("$.workers[0].components[0].extra.publishers.dev.secret", "BROKER_PUBLISHER_SECRET"),
        (f"{users}.backend.secret", "BROKER_BACKEND_SECRET"),
        (f"{users}.operator.secret", "BROKER_OPERATOR_SECRET"),
    ]
    odd = {"a-b": ["x", "${X}"], "c": "$Y", "d": "pre${Z}"}
    assert nodeconfig.env_references(odd) == [('$["a-b"][1]', "X")]
