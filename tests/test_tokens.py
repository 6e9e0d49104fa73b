"""Per-user tokens without a node: minting, verifying, and every way a token is refused."""

from __future__ import annotations

from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from broker.config.settings import parse_settings
from broker.core.tokens import TokenKey, check_claims, mint, verify
from broker.errors import ConfigError, InvalidToken, NotAuthorized

#: The test secret is short on purpose (as in tests/node.py); pyjwt warns about it when encoding
pytestmark = pytest.mark.filterwarnings("ignore:The HMAC key is:UserWarning")

SECRET = "test-token-secret"
KEYS = [TokenKey("HS256", SECRET)]
NOW = 1_800_000_000
GRANTS = [{"uri": "user.42.", "match": "prefix"}, {"uri": "public.news", "match": "exact"}]


def test_mint_verify_round_trip() -> None:
    token = mint(SECRET, "42", GRANTS, ttl=300, now=NOW)
    claims = verify(token, KEYS, "broker", now=NOW + 10)
    assert (claims.sub, claims.audience, claims.issued_at, claims.expires_at) == (
        "42",
        "broker",
        NOW,
        NOW + 300,
    )
    grants = claims.grants()
    assert grants.allows("user", "subscribe", "user.42.inbox")
    assert grants.allows("user", "subscribe", "user.42.", "prefix")
    assert not grants.allows("user", "subscribe", "user.43.inbox")
    assert not grants.allows("user", "subscribe", "user.4", "prefix")  # would deliver user.43.*
    assert not grants.allows("user", "publish", "user.42.inbox")


def test_pyjwt_reads_what_the_stdlib_minted() -> None:
    token = mint(SECRET, "42", GRANTS, now=NOW)
    decoded = jwt.decode(
        token,
        SECRET,
        algorithms=["HS256"],
        audience="broker",
        options={"verify_exp": False, "verify_iat": False},
    )
    assert decoded["subscribe"] == GRANTS
    assert jwt.get_unverified_header(token) == {"alg": "HS256", "typ": "JWT"}


def test_invalid_token_is_not_authorized() -> None:
    assert issubclass(InvalidToken, NotAuthorized)
    assert InvalidToken.wamp_uri == "wamp.error.not_authorized"


def test_expired() -> None:
    token = mint(SECRET, "42", GRANTS, ttl=60, now=NOW)
    verify(token, KEYS, "broker", now=NOW + 60 + 30)  # within the leeway
    with pytest.raises(InvalidToken, match=r"^token expired at 2027-01-15T08:01:00Z$"):
        verify(token, KEYS, "broker", now=NOW + 60 + 31)


def test_forged_signature() -> None:
    token = mint("another-secret", "42", GRANTS, now=NOW)
    with pytest.raises(InvalidToken, match=r"^token signature is invalid$"):
        verify(token, KEYS, "broker", now=NOW)
    # user 42's valid signature on a body naming user 43
    head, _, signature = mint(SECRET, "42", GRANTS, now=NOW).split(".")
    body_43 = mint(SECRET, "43", GRANTS, now=NOW).split(".")[1]
    with pytest.raises(InvalidToken, match=r"^token signature is invalid$"):
        verify(f"{head}.{body_43}.{signature}", KEYS, now=NOW)


def test_wrong_audience() -> None:
    token = mint(SECRET, "42", GRANTS, audience="other", now=NOW)
    with pytest.raises(InvalidToken, match=r"^token audience 'other' is not 'broker'$"):
        verify(token, KEYS, "broker", now=NOW)


def test_missing_sub() -> None:
    token = jwt.encode({"aud": "broker", "iat": NOW, "exp": NOW + 60}, SECRET, algorithm="HS256")
    with pytest.raises(InvalidToken, match=r"^token has no 'sub'$"):
        verify(token, KEYS, "broker", now=NOW)


def test_alg_none_and_unconfigured_algorithms_are_refused() -> None:
    token = jwt.encode({"sub": "42", "aud": "broker", "iat": NOW, "exp": NOW + 60}, None, algorithm="none")
    with pytest.raises(InvalidToken, match=r"^token algorithm 'none' is not accepted \(accepted: HS256\)$"):
        verify(token, KEYS, "broker", now=NOW)


def test_max_ttl() -> None:
    token = mint(SECRET, "42", GRANTS, ttl=7200, now=NOW)
    with pytest.raises(InvalidToken, match=r"^token lifetime 7200 s exceeds this node's max_ttl of 3600 s$"):
        verify(token, KEYS, "broker", now=NOW, max_ttl=3600)


@pytest.mark.parametrize(
    ("subscribe", "message"),
    [
        ([{"uri": "a b", "match": "exact"}], r"token subscribe\[0\]: invalid pattern 'a b'"),
        ([{"uri": "x", "match": "regex"}], r"token subscribe\[0\]: match must be one of"),
        ([{"uri": "wamp.session.on_join"}], r"token subscribe\[0\]: 'wamp.session.on_join' is in a reserved"),
        ([{"uri": "broker.", "match": "prefix"}], r"'broker.' is in a reserved namespace"),
        ([{"uri": "x", "allow": ["publish"]}], r"token subscribe\[0\] has unknown key 'allow'"),
        ("user.42.", r"token 'subscribe' must be a list"),
    ],
)
def test_invalid_grants_are_refused(subscribe: Any, message: str) -> None:
    claims = {"sub": "42", "aud": "broker", "iat": NOW, "exp": NOW + 60, "subscribe": subscribe}
    with pytest.raises(InvalidToken, match=message):
        check_claims(claims, "broker", now=NOW)
    if isinstance(subscribe, list):  # minting refuses them up front
        with pytest.raises(InvalidToken, match=message):
            mint(SECRET, "42", subscribe, now=NOW)


def test_a_broad_token_grant_never_reaches_reserved_namespaces() -> None:
    claims = check_claims(
        {
            "sub": "42",
            "aud": "broker",
            "iat": NOW,
            "exp": NOW + 60,
            "subscribe": [{"uri": "", "match": "prefix"}],
        },
        "broker",
        now=NOW,
    )
    assert claims.grants().allows("user", "subscribe", "anything.at.all")
    assert not claims.grants().allows("user", "subscribe", "wamp.session.on_join")
    assert not claims.grants().allows("user", "subscribe", "broker.x")


@pytest.mark.parametrize("kind", ["RS256", "EdDSA"])
def test_public_key_algorithms(kind: str) -> None:
    private: Any = (
        rsa.generate_private_key(65537, 2048) if kind == "RS256" else ed25519.Ed25519PrivateKey.generate()
    )
    pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    claims = {"sub": "7", "aud": "broker", "iat": NOW, "exp": NOW + 60, "subscribe": GRANTS}
    token = jwt.encode(claims, private, algorithm=kind)
    settings = parse_settings(
        {"tokens": {"keys": [{"alg": kind, "public_key": "${PEM}"}, {"alg": "HS256", "secret": "${S}"}]}},
        "$.extra",
        env={"PEM": pem, "S": SECRET},
    )
    assert settings.tokens is not None
    assert verify(token, settings.tokens.keys, now=NOW).sub == "7"
    other: Any = (
        rsa.generate_private_key(65537, 2048) if kind == "RS256" else ed25519.Ed25519PrivateKey.generate()
    )
    with pytest.raises(InvalidToken, match=r"^token signature is invalid$"):
        verify(jwt.encode(claims, other, algorithm=kind), settings.tokens.keys, now=NOW)
    # an HS256 token signed with the public key as its secret (the classic confusion) is refused
    confused = mint(SECRET, "7", GRANTS, now=NOW)
    assert verify(confused, settings.tokens.keys, now=NOW).sub == "7"  # the real HS256 key still works
    with pytest.raises(InvalidToken, match=r"^token algorithm 'HS256' is not accepted"):
        verify(confused, [TokenKey(kind, pem)], now=NOW)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("tokens", "path", "message"),
    [
        ({}, "$.extra.tokens.keys", "must be a non-empty list"),
        ({"keys": [{"alg": "HS512", "secret": "${S}"}]}, "$.extra.tokens.keys[0].alg", "must be one of"),
        ({"keys": [{"alg": "HS256", "secret": "plain"}]}, "$.extra.tokens.keys[0].secret", "${NAME}"),
        (
            {"keys": [{"alg": "HS256", "secret": "${UNSET}"}]},
            "$.extra.tokens.keys[0].secret",
            "UNSET is not set",
        ),
        ({"keys": [{"alg": "RS256", "public_key": "nope"}]}, "$.extra.tokens.keys[0].public_key", "PEM"),
        ({"keys": [{"alg": "HS256", "public_key": "x"}]}, "$.extra.tokens.keys[0].public_key", "unknown key"),
        ({"keys": [{"alg": "HS256", "secret": "${S}"}], "max_ttl": 0}, "$.extra.tokens.max_ttl", "integer"),
        (
            {"keys": [{"alg": "HS256", "secret": "${S}"}], "leeway": 301},
            "$.extra.tokens.leeway",
            "must be an integer from 0 to 300, not 301",
        ),
        (
            {"keys": [{"alg": "HS256", "secret": "${S}"}], "leeway": 1.5},
            "$.extra.tokens.leeway",
            "must be an integer from 0 to 300",
        ),
        (
            {"keys": [{"alg": "HS256", "secret": "${S}"}], "audience": ""},
            "$.extra.tokens.audience",
            "non-empty",
        ),
        ({"keys": [{"alg": "HS256", "secret": "${S}"}], "ttl": 1}, "$.extra.tokens.ttl", "unknown key"),
    ],
)
def test_token_settings_errors_name_their_path(tokens: Any, path: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings({"tokens": tokens}, "$.extra", env={"S": SECRET})
    assert caught.value.path == path
    assert message in caught.value.message


def test_rsa_key_for_eddsa_is_a_config_error() -> None:
    pem = (
        rsa.generate_private_key(65537, 2048)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    with pytest.raises(ConfigError, match="EdDSA needs an Ed25519PublicKey"):
        parse_settings({"tokens": {"keys": [{"alg": "EdDSA", "public_key": pem}]}}, "$.extra", env={})


def test_mint_checks_its_arguments() -> None:
    with pytest.raises(ValueError, match="secret"):
        mint("", "42", [])
    with pytest.raises(ValueError, match="sub"):
        mint(SECRET, "", [])
    with pytest.raises(ValueError, match="ttl"):
        mint(SECRET, "42", [], ttl=0)


def test_leeway_defaults_to_30_s_and_is_what_verify_allows() -> None:
    keys = [{"alg": "HS256", "secret": "${S}"}]
    assert parse_settings({"tokens": {"keys": keys}}, "$.extra", env={"S": SECRET}).tokens.leeway == 30  # type: ignore[union-attr]
    strict = parse_settings({"tokens": {"keys": keys, "leeway": 0}}, "$.extra", env={"S": SECRET}).tokens
    assert strict is not None and strict.leeway == 0
    token = mint(SECRET, "7", [], ttl=60, now=NOW)
    assert verify(token, strict.keys, now=NOW + 60 + 30).sub == "7"  # the default leeway
    with pytest.raises(InvalidToken, match=r"^token expired at "):
        verify(token, strict.keys, now=NOW + 60.5, leeway=strict.leeway)
