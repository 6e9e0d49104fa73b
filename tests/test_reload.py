"""The pure side of live reload: diffs, what applies live, secrets precedence, the publish gate."""

from __future__ import annotations

import copy
import json
import os
import signal
from typing import Any

import pytest

from broker.config import configedit, nodeconfig
from broker.config.reload import diff, plan_reload, reload_env
from broker.config.settings import parse_settings
from broker.core import signing
from broker.core.publishing import PublishGate
from broker.errors import ConfigError, Replayed
from broker.router.launcher import _catches
from tests.node import PROJECT_CONFIG

EXTRA = "$.workers[0].components[0].extra"
WEB = "$.workers[0].transports[0]"
ENV = {
    "BROKER_BACKEND_SECRET": "b",
    "BROKER_OPERATOR_SECRET": "o",
    "BROKER_PUBLISHER_SECRET": "p",
    "BROKER_TOKEN_SECRET": "t",
}


def running() -> dict[str, Any]:
    return nodeconfig.render(json.loads(PROJECT_CONFIG.read_text()), PROJECT_CONFIG.parent)


def extra(config: dict[str, Any]) -> dict[str, Any]:
    value: dict[str, Any] = config["workers"][0]["components"][0]["extra"]
    return value


def test_diff_names_each_changed_leaf() -> None:
    old = {"a": {"b": 1, "c": [1, 2]}, "d": "x"}
    new = {"a": {"b": 2, "c": [1, 2, 3]}, "e": True}
    assert diff(old, new) == ["$.a.b", "$.a.c[2]", "$.d", "$.e"]
    assert diff({"k": 1}, {"k": 1.0}) == ["$.k"]
    assert diff(old, copy.deepcopy(old)) == []


def test_nothing_changed() -> None:
    plan = plan_reload(running(), running(), ENV)
    assert not plan.changed
    assert plan.report() == {"changed": [], "restart_needed": []}


def test_grants_publishers_policies_limits_tokens_and_origins_apply_live() -> None:
    new = configedit.grant(running(), "anonymous", "orders.", "prefix", ["subscribe"]).config
    new = configedit.add_publisher(new, "ci", [("orders.", "prefix")]).config
    new = configedit.set_history_policy(new, "orders.", "prefix", 10, 60).config
    extra(new)["slow_subscriber"]["max_buffer_bytes"] = 2 * 1024 * 1024
    extra(new)["tokens"]["max_ttl"] = 600
    ws = new["workers"][0]["transports"][0]["paths"]["ws"]["options"]
    ws["allowed_origins"] = [*ws["allowed_origins"], "https://dash.example.com"]
    plan = plan_reload(running(), new, {**ENV, "BROKER_PUBLISHER_CI_SECRET": "ci"})
    assert plan.restart == ()
    # lists are compared element by element: the policy inserted first changes policies[0]'s
    # members and appends policies[1]
    assert plan.live == (
        f"{EXTRA}.grants.anonymous[2]",
        f"{EXTRA}.tokens.max_ttl",
        f"{EXTRA}.publishers.ci",
        f"{EXTRA}.history.policies[0].uri",
        f"{EXTRA}.history.policies[0].max_events",
        f"{EXTRA}.history.policies[0].max_age",
        f"{EXTRA}.history.policies[1]",
        f"{EXTRA}.slow_subscriber.max_buffer_bytes",
        f"{WEB}.paths.ws.options.allowed_origins[2]",
    )
    assert plan.settings.publishers["ci"].secret == "ci"
    assert plan.settings.grants.allows("anonymous", "subscribe", "orders.new")
    assert plan.origins["ws"].allowed_origins[-1] == "https://dash.example.com"
    # once applied, the same file is no change at all
    assert not plan_reload(plan.applied, new, {**ENV, "BROKER_PUBLISHER_CI_SECRET": "ci"}).changed


def test_ports_transports_realms_roles_and_the_store_need_a_restart() -> None:
    new = running()
    new["workers"][0]["transports"][0]["endpoint"]["port"] = 9999
    new["workers"][0]["realms"][0]["roles"].append({"name": "auditor", "authorizer": "broker.authorize"})
    extra(new)["history"]["store"] = {"type": "sqlite", "path": "history.db"}
    extra(new)["grants"]["backend"].pop()
    plan = plan_reload(running(), new, ENV)
    assert plan.live == (f"{EXTRA}.grants.backend[3]",)
    assert plan.restart == (
        "$.workers[0].realms[0].roles[5]",
        f"{EXTRA}.history.store.type",
        f"{EXTRA}.history.store.path",
        f"{WEB}.endpoint.port",
    )
    # the restart-needing changes stay pending: the next reload reports them again
    again = plan_reload(plan.applied, new, ENV)
    assert again.live == ()
    assert again.restart == plan.restart


@pytest.mark.parametrize(
    ("edit", "path"),
    [
        (lambda c: extra(c).update(hello_timeout="soon"), f"{EXTRA}.hello_timeout"),
        (
            lambda c: extra(c)["grants"]["anonymous"][0].update(match="fuzzy"),
            f"{EXTRA}.grants.anonymous[0].match",
        ),
        (
            lambda c: extra(c)["grants"]["anonymous"].append(
                {"uri": "wamp.session.", "match": "prefix", "allow": ["subscribe"]}
            ),
            f"{EXTRA}.grants.anonymous[2]",
        ),
        (
            lambda c: extra(c)["publishers"]["dev"].update(secret="${BROKER_NOT_SET}"),
            f"{EXTRA}.publishers.dev.secret",
        ),
        (
            lambda c: c["workers"][0]["transports"][0]["paths"]["ws"]["options"].update(allowed_origins="*"),
            f"{WEB}.paths.ws.options.allowed_origins",
        ),
    ],
)
def test_an_invalid_config_is_refused_with_its_path(edit: Any, path: str) -> None:
    new = running()
    edit(new)
    with pytest.raises(ConfigError) as error:
        plan_reload(running(), new, ENV)
    assert error.value.path == path


def test_reload_env_file_values_win_only_over_values_that_came_from_the_file() -> None:
    environ = {"FROM_FILE": "old", "OPERATOR": "mine", "OTHER": "x"}
    file = {"FROM_FILE": "rotated", "OPERATOR": "file", "NEW": "added"}
    env = reload_env(environ, file, {"FROM_FILE"})
    assert env == {"FROM_FILE": "rotated", "OPERATOR": "mine", "OTHER": "x", "NEW": "added"}


def _settings(secret: str, window: int = 300) -> Any:
    raw = {
        "publishers": {"k": {"secret": "${S}", "topics": [{"uri": "", "match": "prefix"}]}},
        "http_publish": {"timestamp_window": window},
    }
    return parse_settings(raw, env={"S": secret})


def _headers(secret: str, body: bytes, nonce: str) -> dict[str, str]:
    headers = signing.sign_headers("k", secret, "POST", "/api/publish", body, nonce=nonce)
    return {"content-type": "application/json", **{k.lower(): v for k, v in headers.items()}}


def test_the_publish_gate_keeps_its_replay_memory_across_a_reconfigure() -> None:
    old = _settings("old")
    gate = PublishGate(old.http_publish, old.publishers)
    body = json.dumps({"topic": "a.b", "data": 1}).encode()
    gate.admit("POST", "/api/publish", _headers("old", body, "a" * 32), body)
    new = _settings("new", window=600)
    gate.reconfigure(new.http_publish, new.publishers)
    assert gate.nonces.window == 600
    with pytest.raises(Replayed):
        gate.admit("POST", "/api/publish", _headers("new", body, "a" * 32), body)
    assert gate.admit("POST", "/api/publish", _headers("new", body, "b" * 32), body).key_id == "k"


def test_plan_is_pure() -> None:
    before = running()
    new = configedit.grant(running(), "anonymous", "orders.", "prefix", ["subscribe"]).config
    plan_reload(before, new, ENV)
    assert before == running()


def test_the_launcher_forwards_sighup_only_to_processes_that_handle_it() -> None:
    previous = signal.signal(signal.SIGHUP, lambda signum, frame: None)
    try:
        assert _catches(os.getpid(), signal.SIGHUP)
    finally:
        signal.signal(signal.SIGHUP, previous)
    assert not _catches(os.getpid(), signal.SIGHUP)


def test_a_rotated_secret_is_a_change_although_the_file_is_not() -> None:
    current = plan_reload(running(), running(), ENV).settings
    env = {**ENV, "BROKER_PUBLISHER_SECRET": "rotated", "BROKER_BACKEND_SECRET": "rotated"}
    plan = plan_reload(running(), running(), env, current=current, start_env=ENV)
    assert plan.live == (f"{EXTRA}.publishers.dev.secret",)
    # a WAMP-CRA user's secret is crossbar's, read once at start
    assert plan.restart == (f"{WEB}.paths.ws.auth.wampcra.users.backend.secret",)
    assert plan.settings.publishers["dev"].secret == "rotated"
