"""Per-user tokens: a backend mints, the node verifies, grants ride along.

Why: a logged-in user's browser must subscribe to *its own* topics
(``user.42.``) and no one else's, yet the node knows nothing about the
application's users. The backend, which does, signs a short-lived JWT naming
the user (``sub``) and the topic patterns they may subscribe to; the node
checks the signature (WAMP ticket auth, :mod:`broker.router.component`) and
enforces those grants per session. The claims::

    {"sub": "42", "aud": "broker", "iat": 1700000000, "exp": 1700000300,
     "subscribe": [{"uri": "user.42.", "match": "prefix"}, {"uri": "public.", "match": "prefix"}]}

:func:`mint` is HS256 with the standard library only, because the publisher
SDK (:mod:`broker.client`) re-exports it and must install into any backend
without dependencies. :func:`verify` uses pyjwt (the node's ``node`` extra),
imported when called, for HS256 and the public-key algorithms RS256 and
EdDSA. Every failure is an :class:`~broker.errors.InvalidToken` whose message
says which check failed. No crossbar, no Twisted.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal, cast

from broker.core.grants import Grant, Grants
from broker.core.uris import MATCH_POLICIES, Match, check_uri, is_reserved
from broker.errors import InvalidToken, InvalidUri

Algorithm = Literal["HS256", "RS256", "EdDSA"]

#: The algorithms a node accepts; ``none`` and the rest are never accepted.
ALGORITHMS: Final[tuple[Algorithm, ...]] = ("HS256", "RS256", "EdDSA")
#: The ``aud`` claim tokens carry unless configured otherwise.
DEFAULT_AUDIENCE: Final = "broker"
#: Seconds a minted token lives by default: long enough to connect, short enough to leak little.
DEFAULT_TTL: Final = 300
#: The role a token-authenticated session gets (its grants are the token's).
USER_ROLE: Final = "user"
#: Seconds of clock skew allowed around ``iat``/``nbf``/``exp`` unless the node configures
#: ``tokens.leeway``; a session ends ``leeway`` seconds after its token's ``exp``.
DEFAULT_LEEWAY: Final = 30


@dataclass(frozen=True)
class TokenKey:
    """One key the node verifies tokens with: a shared secret (HS256) or a public key PEM."""

    alg: Algorithm
    key: str = field(repr=False)


@dataclass(frozen=True)
class Claims:
    """A verified token: who the user is and what they may subscribe to."""

    sub: str
    audience: str
    issued_at: float
    expires_at: float
    subscribe: tuple[Grant, ...]

    def grants(self) -> Grants:
        """The token's subscribe grants as the grant table of role ``user``.

        :meth:`broker.core.grants.Grants.allows` keeps them out of the reserved
        ``wamp.``/``broker.`` namespaces (and :func:`parse_grants` refuses
        grants that name them), so a token can never reach meta events.
        """
        return Grants({USER_ROLE: self.subscribe})


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")


def parse_grants(raw: object) -> tuple[Grant, ...]:
    """Validate a token's ``subscribe`` list into subscribe-only grants.

    Each item is ``{"uri": ..., "match": "exact"|"prefix"|"wildcard"}`` (match
    defaults to exact) or a ``(uri, match)`` pair. Patterns in the reserved
    ``wamp.``/``broker.`` namespaces are refused: only the node's own config
    may grant those.
    """
    if raw is None:
        return ()
    if isinstance(raw, str | bytes) or not isinstance(raw, Iterable):
        raise InvalidToken("token 'subscribe' must be a list of {uri, match} patterns")
    grants = []
    for i, item in enumerate(raw):
        if isinstance(item, Mapping):
            unknown = sorted(set(item) - {"uri", "match"})
            if unknown:
                raise InvalidToken(f"token subscribe[{i}] has unknown key {unknown[0]!r}")
            uri, match = item.get("uri"), item.get("match", "exact")
        elif isinstance(item, list | tuple) and len(item) == 2:
            uri, match = item
        else:
            raise InvalidToken(f"token subscribe[{i}] must be an object {{uri, match}}, not {item!r}")
        if match not in MATCH_POLICIES:
            raise InvalidToken(
                f"token subscribe[{i}]: match must be one of {', '.join(MATCH_POLICIES)}, not {match!r}"
            )
        try:
            check_uri(uri, match, what="pattern")
        except InvalidUri as exc:
            raise InvalidToken(f"token subscribe[{i}]: {exc}") from None
        assert isinstance(uri, str)
        if is_reserved(uri):
            raise InvalidToken(f"token subscribe[{i}]: {uri!r} is in a reserved namespace (wamp., broker.)")
        grants.append(Grant(uri=uri, match=cast(Match, match), actions=frozenset({"subscribe"})))
    return tuple(grants)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode("utf-8")


def mint(
    secret: str | bytes,
    sub: str,
    subscribe: Iterable[Mapping[str, str] | Sequence[str]],
    ttl: int = DEFAULT_TTL,
    audience: str = DEFAULT_AUDIENCE,
    now: float | None = None,
) -> str:
    """A signed HS256 token for user ``sub`` that may subscribe to ``subscribe``.

    The grants are checked here as the node will check them, so a backend
    finds a bad pattern when minting, not when its user's browser is refused.
    Raises :class:`~broker.errors.InvalidToken` for bad grants and
    :class:`ValueError` for a bad secret, ``sub`` or ``ttl``.
    """
    if not secret:
        raise ValueError("secret must not be empty")
    if not isinstance(sub, str) or not sub:
        raise ValueError(f"sub must be a non-empty string (the user id), not {sub!r}")
    if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl < 1:
        raise ValueError(f"ttl must be a positive number of seconds, not {ttl!r}")
    grants = parse_grants(list(subscribe))
    issued = int(time.time() if now is None else now)
    claims = {
        "sub": sub,
        "aud": audience,
        "iat": issued,
        "exp": issued + ttl,
        "subscribe": [{"uri": g.uri, "match": g.match} for g in grants],
    }
    signing_input = f"{_b64(_json({'alg': 'HS256', 'typ': 'JWT'}))}.{_b64(_json(claims))}"
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    signature = hmac.new(key, signing_input.encode("ascii"), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def _number(claims: Mapping[str, Any], name: str) -> float:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidToken(f"token has no {name!r}" if value is None else f"token {name!r} is not a number")
    return float(value)


def check_claims(
    claims: Mapping[str, Any],
    audience: str,
    now: float | None = None,
    leeway: float = DEFAULT_LEEWAY,
    max_ttl: float | None = None,
) -> Claims:
    """Check the claims of a token whose signature is already verified.

    ``leeway`` absorbs clock skew between the backend and the node (a token is
    accepted until ``exp + leeway``; the node ends its session then); a token
    whose lifetime (``exp - iat``) exceeds ``max_ttl`` is refused, so a
    backend bug cannot mint tokens that stay valid for days.
    """
    now = time.time() if now is None else now
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise InvalidToken("token has no 'sub'")
    aud = claims.get("aud")
    auds = aud if isinstance(aud, list) else [aud]
    if audience not in auds:
        raise InvalidToken(
            f"token has no 'aud' (expected {audience!r})"
            if aud is None
            else f"token audience {aud!r} is not {audience!r}"
        )
    expires = _number(claims, "exp")
    issued = _number(claims, "iat")
    if now > expires + leeway:
        raise InvalidToken(f"token expired at {_iso(expires)}")
    if issued > now + leeway:
        raise InvalidToken(f"token issued in the future ({_iso(issued)})")
    if "nbf" in claims and _number(claims, "nbf") > now + leeway:
        raise InvalidToken(f"token not valid before {_iso(_number(claims, 'nbf'))}")
    if max_ttl is not None and expires - issued > max_ttl:
        raise InvalidToken(
            f"token lifetime {expires - issued:g} s exceeds this node's max_ttl of {max_ttl:g} s"
        )
    return Claims(
        sub=sub,
        audience=audience,
        issued_at=issued,
        expires_at=expires,
        subscribe=parse_grants(claims.get("subscribe")),
    )


def verify(
    token: object,
    keys: Sequence[TokenKey],
    audience: str = DEFAULT_AUDIENCE,
    now: float | None = None,
    leeway: float = DEFAULT_LEEWAY,
    max_ttl: float | None = None,
) -> Claims:
    """Verify ``token``'s signature with one of ``keys``, then its claims.

    The header's ``alg`` must be one the node has a key for (never ``none``,
    and an HS256 token is never checked against a public key). pyjwt checks
    the signature only; the claims are checked by :func:`check_claims`, so
    ``now`` is injectable and every message is Broker's own.
    """
    import jwt  # the node's dependency: the SDK (mint only) must not need it

    if not isinstance(token, str) or not token:
        raise InvalidToken("no token (expected a signed JWT as the ticket)")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.DecodeError as exc:
        raise InvalidToken(f"token is malformed: {exc}") from None
    alg = header.get("alg")
    candidates = [key for key in keys if key.alg == alg]
    if not candidates:
        accepted = ", ".join(sorted({key.alg for key in keys})) or "none configured"
        raise InvalidToken(f"token algorithm {alg!r} is not accepted (accepted: {accepted})")
    options = {
        "verify_signature": True,
        "verify_exp": False,
        "verify_nbf": False,
        "verify_iat": False,
        "verify_aud": False,
        "verify_iss": False,
        "verify_sub": False,
        "verify_jti": False,
        "require": [],
    }
    for key in candidates:
        try:
            with warnings.catch_warnings():
                # pyjwt >= 2.10 warns on HMAC keys under 32 bytes on every verify; the key
                # length is the operator's choice (``broker run`` generates 43 characters)
                warnings.filterwarnings("ignore", message="The HMAC key is")
                claims = jwt.decode(token, key.key, algorithms=[key.alg], options=options)  # type: ignore[arg-type]
        except jwt.InvalidSignatureError:
            continue
        except jwt.DecodeError as exc:
            raise InvalidToken(f"token is malformed: {exc}") from None
        except jwt.InvalidTokenError as exc:
            raise InvalidToken(f"token is invalid: {exc}") from None
        return check_claims(claims, audience, now=now, leeway=leeway, max_ttl=max_ttl)
    raise InvalidToken("token signature is invalid")
