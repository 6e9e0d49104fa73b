"""``*`` is not a WAMP wildcard: every place that takes a subscription pattern refuses
``public.*`` as a prefix or wildcard pattern with the hint, instead of subscribing to
something that receives nothing. Exact topics keep ``*`` (a legal loose-URI character)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from broker.cli import main as cli
from broker.config import configedit
from broker.core import tokens
from broker.core.uris import check_uri, is_valid_uri
from broker.errors import ConfigError, InvalidToken, InvalidUri
from tests.rawwamp import ERROR, SUBSCRIBED, RawWamp
from tests.test_config_edit import EXTRA, project
from tests.test_hardening import Bystander, bystander  # noqa: F401 - the fixture

HINT = "WAMP wildcards are empty components: public..x, and a prefix pattern ends in a dot: public."


def refused(uri: str, match: str, used: str = "'*'", here: str = "") -> Any:
    message = f"invalid pattern {uri!r} ({match}): {used} matches only itself; {HINT}"
    return pytest.param(uri, match, message + (f" (here: {here!r})" if here else ""), id=f"{uri}-{match}")


@pytest.mark.parametrize(
    ("uri", "match", "message"),
    [
        refused("public.*", "wildcard", here="public."),
        refused("public.*", "prefix", here="public."),
        refused("orders.*.created", "wildcard", here="orders..created"),
        refused("public.foo*", "prefix"),
        refused("a.+.b", "wildcard", "'+'", here="a..b"),
    ],
)
def test_glob_patterns_are_refused_with_the_hint(uri: str, match: str, message: str) -> None:
    with pytest.raises(InvalidUri) as error:
        check_uri(uri, match, what="pattern")
    assert str(error.value) == message


@pytest.mark.parametrize(
    ("uri", "match"),
    [("public.*", "exact"), ("public..x", "wildcard"), ("a+b.", "prefix"), ("a.b+", "wildcard")],
)
def test_star_in_an_exact_topic_and_plus_inside_a_component_stay_valid(uri: str, match: str) -> None:
    assert is_valid_uri(uri, match)


def test_cli_tail_refuses_a_glob_before_connecting(capsys: pytest.CaptureFixture[str]) -> None:
    # no node at this URL: the refusal comes before any connection attempt
    assert cli.main(["tail", "public.*", "--match", "wildcard", "--url", "ws://127.0.0.1:1/ws"]) == 1
    assert capsys.readouterr().err == (
        "broker: subscribe failed: wamp.error.invalid_uri: invalid pattern 'public.*' (wildcard): "
        f"'*' matches only itself; {HINT} (here: 'public.')\n"
    )


def test_cli_token_refuses_a_glob(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["token", "42", "--subscribe", "user.42.*:prefix"])
    assert exit_.value.code == 2
    assert f"'*' matches only itself; {HINT} (here: 'user.42.')" in capsys.readouterr().err


@pytest.mark.parametrize(
    "edit",
    [
        lambda c: configedit.grant(c, "anonymous", "public.*", "prefix", ["subscribe"]),
        lambda c: configedit.set_history_policy(c, "public.*", "wildcard", 10, 60),
        lambda c: configedit.add_publisher(c, "shop", [("orders.*", "prefix")]),
    ],
    ids=["grant", "set-history", "add-publisher"],
)
def test_config_edits_refuse_a_glob(edit: Callable[[dict[str, Any]], Any]) -> None:
    config = project()
    before = json.dumps(config)
    with pytest.raises(ConfigError) as error:
        edit(config)
    assert error.value.path.startswith(EXTRA) and error.value.path.endswith(".uri")
    assert "'*' matches only itself; WAMP wildcards are empty components: public..x" in str(error.value)
    assert json.dumps(config) == before


def test_a_token_with_a_glob_is_neither_minted_nor_accepted() -> None:
    with pytest.raises(
        InvalidToken, match=r"token subscribe\[0\]: invalid pattern 'user\.42\.\*' \(prefix\)"
    ):
        tokens.mint("secret", "42", [{"uri": "user.42.*", "match": "prefix"}])
    claims = {
        "sub": "42",
        "aud": "broker",
        "iat": 0,
        "exp": 60,
        "subscribe": [{"uri": "a.*", "match": "wildcard"}],
    }
    with pytest.raises(InvalidToken, match="WAMP wildcards are empty components"):
        tokens.check_claims(claims, "broker", now=1)


@pytest.mark.node
def test_the_node_answers_a_glob_subscription_with_the_hint(
    connect: Callable[..., RawWamp],
    bystander: Bystander,  # noqa: F811
) -> None:
    client = connect("anonymous")
    reply = client.subscribe("public.*", match="wildcard")
    assert reply[:5] == [ERROR, 32, 1, {}, "wamp.error.invalid_uri"]
    assert reply[5][0].endswith(f"'*' matches only itself; {HINT} (here: 'public.')")
    assert client.subscribe("public..x", match="wildcard")[0] == SUBSCRIBED  # the session stays
