"""How a publish request is signed: one canonical form, shared by the node and the SDK.

Crossbar's HTTP bridge signs ``key|timestamp|seq|nonce|body`` with no
separators (a digit can move from nonce to seq under the same signature),
never checks seq or nonce, and compares with ``!=``. Broker signs a canonical
form whose fields are separated by newlines and individually validated (none
may contain a newline), covers the method, path and a SHA-256 of the body,
and compares in constant time. Stdlib only: the SDK imports this module.

The canonical form, byte for byte::

    BROKER-HMAC-SHA256\\n<key id>\\n<METHOD>\\n<path>\\n<timestamp>\\n<nonce>\\n<hex sha256 of body>

and the signature is ``hex(HMAC-SHA256(secret, canonical form))``, sent with
the key id, timestamp (integer Unix seconds) and nonce in the headers below.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from typing import Final

SCHEME: Final = "BROKER-HMAC-SHA256"

HEADER_KEY: Final = "X-Broker-Key"
HEADER_TIMESTAMP: Final = "X-Broker-Timestamp"
HEADER_NONCE: Final = "X-Broker-Nonce"
HEADER_SIGNATURE: Final = "X-Broker-Signature"

#: What each signed field may contain; none admits the separator.
FIELD_PATTERNS: Final = {
    "key id": re.compile(r"^[A-Za-z0-9_.-]{1,64}$"),
    "method": re.compile(r"^[A-Z]{1,16}$"),
    "path": re.compile(r"^/[!-~]{0,2047}$"),
    "timestamp": re.compile(r"^[0-9]{1,12}$"),
    "nonce": re.compile(r"^[A-Za-z0-9_-]{16,64}$"),
}


class SigningError(ValueError):
    """A field cannot be part of a signature (wrong shape or contains a separator)."""


def _check(field: str, value: str) -> str:
    if not FIELD_PATTERNS[field].match(value):
        raise SigningError(f"invalid {field} {value[:80]!r}")
    return value


def canonical(
    key_id: str,
    method: str,
    path: str,
    timestamp: str,
    nonce: str,
    body: bytes,
    body_sha256: str | None = None,
) -> bytes:
    """The exact bytes that are signed (``body_sha256``: the body's hex SHA-256, if already known)."""
    fields = [
        SCHEME,
        _check("key id", key_id),
        _check("method", method),
        _check("path", path),
        _check("timestamp", timestamp),
        _check("nonce", nonce),
        hashlib.sha256(body).hexdigest() if body_sha256 is None else body_sha256,
    ]
    return "\n".join(fields).encode("ascii")


def signature(
    secret: str,
    key_id: str,
    method: str,
    path: str,
    timestamp: str,
    nonce: str,
    body: bytes,
    body_sha256: str | None = None,
) -> str:
    """The hex HMAC-SHA256 of the canonical form."""
    message = canonical(key_id, method, path, timestamp, nonce, body, body_sha256)
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def verify(
    secret: str,
    key_id: str,
    method: str,
    path: str,
    timestamp: str,
    nonce: str,
    body: bytes,
    claimed: str,
    body_sha256: str | None = None,
) -> bool:
    """Whether ``claimed`` is the signature of this request (constant-time comparison)."""
    try:
        expected = signature(secret, key_id, method, path, timestamp, nonce, body, body_sha256)
    except SigningError:
        return False
    return hmac.compare_digest(expected.encode("ascii"), claimed.encode("ascii", "replace"))


def new_nonce() -> str:
    """A fresh random nonce (32 hex digits)."""
    return secrets.token_hex(16)


def sign_headers(
    key_id: str,
    secret: str,
    method: str,
    path: str,
    body: bytes,
    now: float | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """The four headers that authenticate one request."""
    timestamp = str(int(time.time() if now is None else now))
    nonce = nonce or new_nonce()
    return {
        HEADER_KEY: key_id,
        HEADER_TIMESTAMP: timestamp,
        HEADER_NONCE: nonce,
        HEADER_SIGNATURE: signature(secret, key_id, method, path, timestamp, nonce, body),
    }
