"""``broker.contrib.django.views.token_view`` in the test project, with Django's test client.

The token it hands out is checked by pyjwt and used against the real shared
node: the logged-in user subscribes to their own topics and no one else's.
"""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import Client, override_settings

from tests.node import TOKEN_SECRET, Node
from tests.rawwamp import SUBSCRIBED, WELCOME, RawWamp
from tests.test_django import django_project  # noqa: F401 - the module's autouse project setup

pytestmark = pytest.mark.filterwarnings("ignore:The HMAC key is:UserWarning")

GRANTS = ["user.{user_id}.", "public."]


def user_grants(user: Any) -> list[dict[str, str]]:
    """A ``BROKER_TOKEN_GRANTS`` callable: an exact topic per user."""
    return [{"uri": f"user.{user.pk}.profile", "match": "exact"}]


@pytest.fixture
def logged_in() -> Client:
    from django.contrib.auth import get_user_model  # only once the project is set up

    user = get_user_model().objects.create(username=f"u{time.monotonic_ns()}")
    client = Client()
    client.force_login(user)
    client.user = user  # type: ignore[attr-defined]
    return client


def claims(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.content
    body = response.json()
    decoded: dict[str, Any] = jwt.decode(body["token"], TOKEN_SECRET, algorithms=["HS256"], audience="broker")
    assert body["expires_at"] == decoded["exp"]
    return decoded


@override_settings(BROKER_TOKEN_SECRET=TOKEN_SECRET, BROKER_TOKEN_GRANTS=GRANTS)
def test_anonymous_gets_401() -> None:
    response = Client().get("/broker/token")
    assert response.status_code == 401
    assert response.json() == {"error": "authentication required"}
    assert "no-cache" in response["Cache-Control"]


@override_settings(BROKER_TOKEN_SECRET=TOKEN_SECRET, BROKER_TOKEN_GRANTS=GRANTS)
def test_a_logged_in_user_gets_a_token_for_their_topics(logged_in: Client, node: Node) -> None:
    user = logged_in.user  # type: ignore[attr-defined]
    response = logged_in.post("/broker/token")
    assert "no-cache" in response["Cache-Control"]
    decoded = claims(response)
    assert decoded["sub"] == str(user.pk)
    assert decoded["exp"] - decoded["iat"] == 300
    assert decoded["subscribe"] == [
        {"uri": f"user.{user.pk}.", "match": "prefix"},
        {"uri": "public.", "match": "prefix"},
    ]
    wamp = RawWamp(node.ws_url, origin=node.origin)
    try:
        assert wamp.hello(ticket=response.json()["token"])[0] == WELCOME
        assert wamp.subscribe(f"user.{user.pk}.inbox")[0] == SUBSCRIBED
        assert wamp.subscribe(f"user.{user.pk + 1}.inbox")[4] == "wamp.error.not_authorized"
    finally:
        wamp.close()


@override_settings(
    BROKER_TOKEN_SECRET=TOKEN_SECRET,
    BROKER_TOKEN_GRANTS="tests.test_django_tokens.user_grants",
    BROKER_TOKEN_TTL=60,
)
def test_grants_from_a_callable(logged_in: Client) -> None:
    decoded = claims(logged_in.get("/broker/token"))
    assert decoded["exp"] - decoded["iat"] == 60
    assert decoded["subscribe"] == [{"uri": f"user.{logged_in.user.pk}.profile", "match": "exact"}]  # type: ignore[attr-defined]


def test_missing_settings_are_named(logged_in: Client) -> None:
    with (
        override_settings(BROKER_TOKEN_GRANTS=GRANTS),
        pytest.raises(ImproperlyConfigured, match="BROKER_TOKEN_SECRET"),
    ):
        logged_in.get("/broker/token")
    with (
        override_settings(BROKER_TOKEN_SECRET=TOKEN_SECRET),
        pytest.raises(ImproperlyConfigured, match="BROKER_TOKEN_GRANTS"),
    ):
        logged_in.get("/broker/token")


@override_settings(BROKER_TOKEN_SECRET=TOKEN_SECRET, BROKER_TOKEN_GRANTS=GRANTS)
def test_other_methods_are_405(logged_in: Client) -> None:
    assert logged_in.delete("/broker/token").status_code == 405


def test_never_for_anonymous_even_without_settings() -> None:
    assert Client().get("/broker/token").status_code == 401


def test_a_glob_in_the_grants_setting_is_refused_with_the_hint(logged_in: Client) -> None:
    """``user.{user_id}.*`` would mint a token whose subscription receives nothing."""
    from broker.errors import InvalidToken

    with (
        override_settings(BROKER_TOKEN_SECRET=TOKEN_SECRET, BROKER_TOKEN_GRANTS=["user.{user_id}.*"]),
        pytest.raises(InvalidToken, match=r"'\*' matches only itself; WAMP wildcards are empty components"),
    ):
        logged_in.get("/broker/token")
