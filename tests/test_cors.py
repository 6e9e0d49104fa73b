"""CORS on the node's HTTP paths against a real node (:mod:`broker.router.crossbar.cors`, hardening item 10).

Crossbar 26.10's static files echo any ``Origin`` with
``Access-Control-Allow-Credentials: true``; Broker answers only the origins
the WebSocket path allows, and its own resources (``/health``) never send CORS.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from tests.node import Node
from tests.test_reload_node import broker, edit

pytestmark = pytest.mark.node

CORS = ("Access-Control-Allow-Origin", "Access-Control-Allow-Credentials", "Vary")
STATIC = ["/", "/dist/broker.js"]


def cors_headers(node: Node, path: str, origin: str | None) -> dict[str, str]:
    """The CORS-related headers of ``GET path`` (200 asserted) sent with ``origin``."""
    request = urllib.request.Request(f"{node.url}{path}", headers={"Origin": origin} if origin else {})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        response.read()
        return {name: response.headers[name] for name in CORS if response.headers[name] is not None}


@pytest.mark.parametrize("path", STATIC)
@pytest.mark.parametrize("origin", ["http://127.0.0.1:{port}", "http://localhost:{port}"])
def test_static_files_answer_an_allowed_origin(node: Node, path: str, origin: str) -> None:
    origin = origin.format(port=node.port)
    assert cors_headers(node, path, origin) == {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Credentials": "true",
        "Vary": "Origin",
    }


@pytest.mark.parametrize("path", STATIC)
@pytest.mark.parametrize("origin", ["http://evil.example", "http://127.0.0.1.evil.example:80", "null", None])
def test_static_files_send_no_cors_to_other_origins(node: Node, path: str, origin: str | None) -> None:
    # crossbar: Access-Control-Allow-Origin: <any origin> with -Allow-Credentials: true
    assert cors_headers(node, path, origin) == {"Vary": "Origin"}


@pytest.mark.parametrize("origin", ["http://127.0.0.1:{port}", "http://evil.example", None])
def test_health_sends_no_cors(node: Node, origin: str | None) -> None:
    assert cors_headers(node, "/health", origin and origin.format(port=node.port)) == {}


def test_static_cors_follows_a_reload_of_the_allowed_origins(make_node: Callable[..., Node]) -> None:
    node = make_node(lambda config: None)
    dash = "https://dash.example.com:443"
    assert cors_headers(node, "/dist/broker.js", dash) == {"Vary": "Origin"}

    def allow(config: dict[str, Any]) -> None:
        config["workers"][0]["transports"][0]["paths"]["ws"]["options"]["allowed_origins"] = [dash]

    edit(node, allow)
    reloaded = broker(node, "reload")
    assert reloaded.returncode == 0, reloaded.stderr
    assert cors_headers(node, "/dist/broker.js", dash)["Access-Control-Allow-Origin"] == dash
    local = f"http://127.0.0.1:{node.port}"
    assert cors_headers(node, "/dist/broker.js", local) == {"Vary": "Origin"}  # no longer allowed
