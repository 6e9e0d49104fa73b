"""Broker settings: validated once, every error names its JSON path."""

import json
from pathlib import Path

import pytest

from broker.cli.check import broker_component
from broker.config import nodeconfig
from broker.config.settings import component_settings, find_component, parse_settings
from broker.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def test_component_settings_leave_out_what_crossbar_adds_and_assume_referenced_secrets_set() -> None:
    config = json.loads((ROOT / ".crossbar" / "config.json").read_text())
    config["workers"][0]["components"][0]["extra"]["cbdir"] = "/node"  # crossbar's, not a setting
    component, settings = component_settings(config, nodeconfig.assume_set(config))
    assert component["classname"] == "broker.router.component.BrokerComponent"
    assert settings.publishers["dev"].secret == "set"
    assert nodeconfig.assume_set(config) == {
        "BROKER_BACKEND_SECRET": "set",
        "BROKER_OPERATOR_SECRET": "set",
        "BROKER_PUBLISHER_SECRET": "set",
        "BROKER_TOKEN_SECRET": "set",
    }


def test_an_extra_that_is_no_object_is_a_config_error_for_every_reader() -> None:
    """``broker run``/``token``/``check`` used to fail with an AttributeError here."""
    config = json.loads((ROOT / ".crossbar" / "config.json").read_text())
    config["workers"][0]["components"][0]["extra"] = ["grants"]
    with pytest.raises(ConfigError) as error:
        broker_component(config)
    assert (error.value.path, error.value.message) == (
        "$.workers[0].components[0].extra",
        "Broker settings must be an object, not list",
    )


def test_project_config_parses() -> None:
    config = json.loads((ROOT / ".crossbar" / "config.json").read_text())
    path, component = find_component(config)
    env = {"BROKER_PUBLISHER_SECRET": "s3cr3t-value", "BROKER_TOKEN_SECRET": "token-secret"}
    settings = parse_settings(component["extra"], f"{path}.extra", env=env)
    assert path == "$.workers[0].components[0]"
    assert settings.grants.allows("anonymous", "subscribe", "public.demo")
    assert not settings.grants.allows("anonymous", "publish", "public.demo")
    assert settings.publishers["dev"].secret == "s3cr3t-value"
    assert settings.publisher_grants().allows("dev", "publish", "orders.1")
    assert not settings.publisher_grants().allows("dev", "publish", "broker.x")
    assert "s3cr3t-value" not in repr(settings.publishers["dev"])  # secrets stay out of logs
    assert settings.tokens is not None
    assert (settings.tokens.audience, settings.tokens.max_ttl) == ("broker", 3600)
    assert [(key.alg, key.key) for key in settings.tokens.keys] == [("HS256", "token-secret")]
    assert "token-secret" not in repr(settings.tokens)


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


ENV = {"PUB_SECRET": "s3cret", "EMPTY": ""}


@pytest.mark.parametrize(
    ("publishers", "path", "message"),
    [
        (
            {"dev": {"secret": "literal", "topics": [{"uri": "a."}]}},
            "$.extra.publishers.dev.secret",
            "must reference an environment variable, written as ${NAME}",
        ),
        (
            {"dev": {"secret": "${MISSING}", "topics": [{"uri": "a."}]}},
            "$.extra.publishers.dev.secret",
            "environment variable MISSING is not set",
        ),
        (
            {
                "dev": {
                    "secret": "${PUB_SECRET}",
                    "topics": [{"uri": "", "match": "prefix"}, {"uri": "broker.recover"}],
                }
            },
            "$.extra.publishers.dev.topics[1]",
            "publish on 'broker.recover' is not grantable: the wamp. and broker. namespaces are reserved",
        ),
        (
            {"dev": {"secret": "${EMPTY}", "topics": [{"uri": "a."}]}},
            "$.extra.publishers.dev.secret",
            "environment variable EMPTY is empty: an empty secret is refused",
        ),
        ({"dev": {"secret": "${PUB_SECRET}"}}, "$.extra.publishers.dev.topics", "must be a non-empty list"),
        (
            {"dev": {"secret": "${PUB_SECRET}", "topics": [{"uri": "a b"}]}},
            "$.extra.publishers.dev.topics[0].uri",
            "invalid grant URI 'a b'",
        ),
        (
            {"dev": {"secret": "${PUB_SECRET}", "topics": [{"uri": "a", "allow": ["publish"]}]}},
            "$.extra.publishers.dev.topics[0].allow",
            "unknown key 'allow'",
        ),
        (
            {"dev": {"secret": "${PUB_SECRET}", "topics": [{"uri": "a"}], "rate_limit": {"per_second": 0}}},
            "$.extra.publishers.dev.rate_limit.per_second",
            "must be a positive number",
        ),
        (
            {"dev": {"secret": "${PUB_SECRET}", "topics": [{"uri": "a"}], "rate": 1}},
            "$.extra.publishers.dev.rate",
            "unknown key 'rate'",
        ),
        (
            {"bad key": {"secret": "${PUB_SECRET}", "topics": [{"uri": "a"}]}},
            "$.extra.publishers.bad key",
            "a key id is",
        ),
    ],
)
def test_publisher_errors_name_their_path(publishers: object, path: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_settings({"publishers": publishers}, "$.extra", env=ENV)
    assert (info.value.path, message in info.value.message) == (path, True), info.value


@pytest.mark.parametrize(
    ("http", "path"),
    [
        ({"max_body_bytes": 10}, "$.extra.http_publish.max_body_bytes"),
        ({"windw": 1}, "$.extra.http_publish.windw"),
    ],
)
def test_http_publish_errors_name_their_path(http: object, path: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_settings({"http_publish": http}, "$.extra", env=ENV)
    assert info.value.path == path


def test_slow_subscriber_defaults_to_1_mib() -> None:
    assert parse_settings({}, "$.extra").slow_subscriber.max_buffer_bytes == 1024 * 1024
    settings = parse_settings({"slow_subscriber": {"max_buffer_bytes": 65536}}, "$.extra")
    assert settings.slow_subscriber.max_buffer_bytes == 65536


@pytest.mark.parametrize(
    ("slow", "path", "message"),
    [
        ([], "$.extra.slow_subscriber", "must be an object {max_buffer_bytes}, not list"),
        ({"max_buffer": 1}, "$.extra.slow_subscriber.max_buffer", "unknown key 'max_buffer'"),
        (
            {"max_buffer_bytes": 65535},
            "$.extra.slow_subscriber.max_buffer_bytes",
            "must be an integer from 65536 to 268435456, not 65535",
        ),
        ({"max_buffer_bytes": 2**28 + 1}, "$.extra.slow_subscriber.max_buffer_bytes", "not 268435457"),
        ({"max_buffer_bytes": "1 MiB"}, "$.extra.slow_subscriber.max_buffer_bytes", "not '1 MiB'"),
        ({"max_buffer_bytes": True}, "$.extra.slow_subscriber.max_buffer_bytes", "not True"),
    ],
)
def test_slow_subscriber_errors_name_their_path(slow: object, path: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_settings({"slow_subscriber": slow}, "$.extra")
    assert (info.value.path, message in info.value.message) == (path, True), info.value
