"""``BROKER_REDIS_URL``: a node started with it joins a cluster, with the shipped config unedited.

Unit tests of the rendering (:mod:`broker.config.clusterenv`) and of ``broker
run`` with the variable (bad URL: one line naming it, exit 1; good: the
rendered config, the reload snapshot and the start line), then two real nodes
started from the project's own config with the same ``BROKER_REDIS_URL``
sharing one event with one position.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from broker.cli import check
from broker.cli import main as cli
from broker.config import clusterenv, nodeconfig
from broker.errors import ConfigError
from tests.node import Node
from tests.rawwamp import SUBSCRIBED
from tests.redisserver import RedisServer
from tests.test_cli import (
    PROJECT_CONFIG,
    Execed,
    check_json,
    config_copy,
    fake_execv,
    no_secrets_env,
    unchanged,
)
from tests.test_publish_api import request
from tests.test_recovery import POSITION, anonymous
from tests.test_reload_node import EXTRA, broker, edit, join

__all__ = ["config_copy", "fake_execv", "no_secrets_env"]  # fixtures used here

URL = "redis://127.0.0.1:6390/2"


def store_of(config: dict[str, Any]) -> Any:
    return config["workers"][0]["components"][0]["extra"]["history"]["store"]


def project(store: dict[str, Any] | None = None) -> dict[str, Any]:
    config: dict[str, Any] = json.loads(PROJECT_CONFIG.read_text())
    if store is not None:
        config["workers"][0]["components"][0]["extra"]["history"]["store"] = store
    return config


def test_unset_or_empty_is_a_single_node_and_renders_nothing() -> None:
    assert clusterenv.redis_url({}) is None
    assert clusterenv.redis_url({"BROKER_REDIS_URL": ""}) is None
    config = project()
    assert store_of(nodeconfig.render(config, PROJECT_CONFIG.parent)) == {"type": "memory"}


def test_the_url_replaces_the_shipped_memory_store() -> None:
    url = clusterenv.redis_url({"BROKER_REDIS_URL": URL})
    assert url == URL
    config = project()
    rendered = nodeconfig.render(config, PROJECT_CONFIG.parent, port=8081, redis_url=url)
    assert store_of(rendered) == {"type": "redis", "url": URL}
    assert store_of(config) == {"type": "memory"}  # the source is left as it was
    assert rendered["workers"][0]["transports"][0]["endpoint"]["port"] == 8081


def test_options_a_redis_store_takes_are_kept() -> None:
    redis = {"type": "redis", "url": "redis://elsewhere/1", "prefix": "app", "timeout": 1, "log_max": 5000}
    assert store_of(clusterenv.join_cluster(project(redis), URL)) == {**redis, "url": URL}
    sqlite = {"type": "sqlite", "path": "history.sqlite3", "max_topics": 50}
    assert store_of(clusterenv.join_cluster(project(sqlite), URL)) == {
        "type": "redis",
        "max_topics": 50,
        "url": URL,
    }


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://127.0.0.1:6379/0", "must be a redis://host:port/db URL, not 'http://127.0.0.1:6379/0'"),
        ("redis://127.0.0.1:port/0", "has a port that is not a number from 1 to 65535"),
        ("redis://127.0.0.1:6379/99", "has database '99': expected a number from 0 to 15"),
        ("redis:///0", "names no host"),
    ],
)
def test_a_bad_url_names_the_variable(url: str, why: str) -> None:
    with pytest.raises(ConfigError) as raised:
        clusterenv.redis_url({"BROKER_REDIS_URL": url})
    assert str(raised.value) == (
        f"BROKER_REDIS_URL: {why} (expected redis://[user:password@]host[:port][/db])"
    )


def test_a_password_is_never_shown() -> None:
    assert (
        clusterenv.shown("redis://app:s3cret@redis.internal:6380/1")
        == "redis://app:***@redis.internal:6380/1"
    )
    assert clusterenv.shown("redis://:s3cret@h/0") == "redis://:***@h/0"
    assert clusterenv.shown(URL) == URL


@pytest.mark.usefixtures("no_secrets_env")
def test_run_with_a_bad_url_fails_in_one_line(
    capsys: pytest.CaptureFixture[str],
    config_copy: Callable[..., Path],
    fake_execv: list[list[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BROKER_REDIS_URL", "localhost:6379")
    assert cli.main(["run", "--config", str(config_copy(unchanged)), "--port", "18998"]) == 1
    captured = capsys.readouterr()
    assert captured.err == (
        "broker: config error: BROKER_REDIS_URL: must be a redis://host:port/db URL, not 'localhost:6379'"
        " (expected redis://[user:password@]host[:port][/db])\n"
    )
    assert captured.out == ""
    assert fake_execv == []


@pytest.mark.usefixtures("no_secrets_env")
def test_run_with_a_url_renders_a_redis_store_and_says_so(
    capsys: pytest.CaptureFixture[str],
    config_copy: Callable[..., Path],
    fake_execv: list[list[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BROKER_REDIS_URL", "redis://:pw@127.0.0.1:6390/2")
    config = config_copy(unchanged)
    with pytest.raises(Execed):
        cli.main(["run", "--config", str(config), "--port", "18997"])
    assert capsys.readouterr().out == (
        "Broker node starting: http://127.0.0.1:18997/  ws://127.0.0.1:18997/ws"
        " (realm app, history in Redis redis://:***@127.0.0.1:6390/2)\n"
    )
    cbdir = config.parent / "run"
    expected = {"type": "redis", "url": "redis://:pw@127.0.0.1:6390/2"}
    assert store_of(json.loads((cbdir / "config.json").read_text())) == expected
    # the reload baseline holds it too, so a reload finds no change to the store
    assert store_of(json.loads((cbdir / "broker-source.json").read_text())) == expected
    assert store_of(json.loads(config.read_text())) == {"type": "memory"}  # the file is unedited
    assert len(fake_execv) == 1


@pytest.fixture
def crossbar_checks(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Record the configs ``crossbar check`` is given instead of running it."""
    runs: list[Any] = []

    def record(executable: Path, config: Any, directory: Path) -> None:
        runs.append(config)

    monkeypatch.setattr(check, "crossbar_check", record)
    return runs


@pytest.mark.usefixtures("no_secrets_env")
def test_check_with_a_bad_url_fails_in_the_line_run_would(
    capsys: pytest.CaptureFixture[str],
    config_copy: Callable[..., Path],
    crossbar_checks: list[Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BROKER_REDIS_URL", "localhost:6379")
    config = config_copy(unchanged)
    assert cli.main(["check", "--config", str(config)]) == 1
    captured = capsys.readouterr()
    assert captured.err == (
        "broker: config error: BROKER_REDIS_URL: must be a redis://host:port/db URL, not 'localhost:6379'"
        " (expected redis://[user:password@]host[:port][/db])\n"
    )
    assert captured.out == ""
    assert crossbar_checks == []


@pytest.mark.usefixtures("no_secrets_env")
def test_check_with_a_url_checks_the_redis_store_run_would_run(
    capsys: pytest.CaptureFixture[str],
    config_copy: Callable[..., Path],
    crossbar_checks: list[Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BROKER_REDIS_URL", "redis://:pw@127.0.0.1:6390/2")
    config = config_copy(unchanged)
    assert cli.main(["check", "--config", str(config)]) == 0
    assert capsys.readouterr().out == f"ok: {config} (history in Redis redis://:***@127.0.0.1:6390/2)\n"
    [checked] = crossbar_checks  # crossbar checks the config broker run would write, too
    assert store_of(checked) == {"type": "redis", "url": "redis://:pw@127.0.0.1:6390/2"}
    assert store_of(json.loads(config.read_text())) == {"type": "memory"}  # the file is unedited


@pytest.mark.usefixtures("no_secrets_env")
def test_check_reports_the_files_redis_options_as_run_would_use_them(
    capsys: pytest.CaptureFixture[str],
    config_copy: Callable[..., Path],
    crossbar_checks: list[Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The file's own URL is replaced (a bad one does not matter then), its options are kept
    (a bad one is reported at its path in the file, as broker run would refuse it)."""
    store = {"type": "redis", "url": "redis://h:port/0", "prefix": "no spaces", "timeout": 1}
    config = config_copy(lambda c: store_of(c).update(store))
    path = "$.workers[0].components[0].extra.history.store"
    monkeypatch.delenv("BROKER_REDIS_URL", raising=False)
    status, report = check_json(capsys, config)
    assert (status, [e["path"] for e in report["errors"]]) == (1, [f"{path}.url"])  # its first error
    assert "store" not in report
    monkeypatch.setenv("BROKER_REDIS_URL", URL)
    status, report = check_json(capsys, config)
    assert status == 1
    [error] = report["errors"]
    line = next(
        n for n, text in enumerate(config.read_text().splitlines(), 1) if '"prefix": "no spaces"' in text
    )
    assert (error["path"], error["line"]) == (f"{path}.prefix", line)
    assert error["message"].startswith("must be 1 to 64 letters")
    assert report["store"] == {"type": "redis", "url": URL}
    config = config_copy(lambda c: store_of(c).update({**store, "prefix": "app"}))
    assert check_json(capsys, config) == (
        0,
        {"ok": True, "errors": [], "store": {"type": "redis", "url": URL}},
    )


@pytest.mark.node
def test_two_nodes_started_with_the_same_url_share_an_event(
    make_node: Callable[..., Node], redis_server: RedisServer
) -> None:
    # a database of its own on the session's server: the default prefix meets no other test's keys
    url = redis_server.url.rsplit("/", 1)[0] + "/3"
    a = make_node(env={"BROKER_REDIS_URL": url})
    b = make_node(env={"BROKER_REDIS_URL": url})
    assert "history in Redis" in a.log() and "history in Redis" in b.log()
    topic = f"public.env.{uuid.uuid4().hex[:8]}"
    on_a, on_b = anonymous(a), anonymous(b)
    assert on_a.subscribe(topic)[0] == SUBSCRIBED
    assert on_b.subscribe(topic)[0] == SUBSCRIBED
    status, body, _ = request(a, {"topic": topic, "data": "shared"})
    assert status == 200, body
    position = body["published"][0]["position"]
    for client in (on_a, on_b):
        event = client.event()
        assert (event[4], event[5][POSITION]) == (["shared"], position)


@pytest.mark.node
def test_a_live_reload_on_a_cluster_node_finds_no_change_to_the_store(
    make_node: Callable[..., Node], redis_server: RedisServer
) -> None:
    """The reload renders the file with the node's BROKER_REDIS_URL as ``broker run`` did, so the
    store does not read as changed (needing a restart) while a grant applies live."""
    node = make_node(lambda config: None, env={"BROKER_REDIS_URL": redis_server.url.rsplit("/", 1)[0] + "/4"})

    def grant(config: dict[str, Any]) -> None:
        config["workers"][0]["components"][0]["extra"]["grants"]["anonymous"].append(
            {"uri": "orders.", "match": "prefix", "allow": ["subscribe"]}
        )

    edit(node, grant)
    reloaded = broker(node, "reload")
    assert reloaded.returncode == 0, reloaded.stderr
    assert reloaded.stdout.splitlines() == [f"changed: {EXTRA}.grants.anonymous[2]"]
    assert join(node).subscribe("orders.created")[0] == SUBSCRIBED
