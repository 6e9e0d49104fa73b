"""The chat's settings, read from the environment once, when the app is created.

Why the fallbacks: after ``make run`` in the repository root the example must
publish with no further setup, as the Django example does. The node's
publisher key ``dev`` has its secret in ``BROKER_PUBLISHER_SECRET``, which
``broker run`` writes to the git-ignored ``.crossbar/secrets.env``; the secret
is read from ``BROKER_SECRET``, then that variable, then that file. A missing
secret stops the app at start, naming the variable, rather than at the first
message.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from broker.config import devsecrets

REPO_ROOT = Path(__file__).resolve().parents[3]


class ConfigError(RuntimeError):
    """A setting is missing or invalid; the message names the environment variable."""


@dataclass(frozen=True)
class Settings:
    """Where and as whom the app publishes, and what browsers are told."""

    #: the node's HTTP base URL the app publishes to (``BROKER_URL``)
    broker_url: str
    #: the node's base URL as browsers reach it (``BROKER_PUBLIC_URL``, default ``broker_url``):
    #: the page loads the JS client from it and connects to its ``/ws``
    public_url: str
    key_id: str
    secret: str = field(repr=False)
    #: signs the session cookie that holds the CSRF token and the user's name
    secret_key: str = field(repr=False)
    #: False when ``CHAT_SECRET_KEY`` is unset and a random key was drawn for this process
    secret_key_set: bool
    #: seconds one publish attempt may take (``BROKER_TIMEOUT``)
    timeout: float


def _base_url(name: str, value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{name} must be the node's http:// or https:// base URL, not {value!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError(f"{name} must be a base URL without a path, not {value!r}")
    return value.rstrip("/")


def load(environ: Mapping[str, str] = os.environ, config_dir: Path = REPO_ROOT / ".crossbar") -> Settings:
    """The settings from ``environ``; ConfigError names the first variable that is wrong."""
    broker_url = _base_url("BROKER_URL", environ.get("BROKER_URL", "http://127.0.0.1:8080"))
    public_url = _base_url("BROKER_PUBLIC_URL", environ.get("BROKER_PUBLIC_URL", broker_url))
    secret = environ.get("BROKER_SECRET") or environ.get("BROKER_PUBLISHER_SECRET")
    if not secret:
        secret = devsecrets.load(devsecrets.path_for(config_dir)).get("BROKER_PUBLISHER_SECRET")
    if not secret:
        raise ConfigError(
            "BROKER_SECRET is not set (nor BROKER_PUBLISHER_SECRET, nor .crossbar/secrets.env: "
            "run `make run` once, or export the publisher key's secret)"
        )
    raw_timeout = environ.get("BROKER_TIMEOUT", "5")
    try:
        timeout = float(raw_timeout)
    except ValueError:
        timeout = 0.0
    if not timeout > 0:
        raise ConfigError(f"BROKER_TIMEOUT must be a positive number of seconds, not {raw_timeout!r}")
    secret_key = environ.get("CHAT_SECRET_KEY", "")
    return Settings(
        broker_url=broker_url,
        public_url=public_url,
        key_id=environ.get("BROKER_KEY_ID", "dev"),
        secret=secret,
        secret_key=secret_key or secrets.token_hex(32),
        secret_key_set=bool(secret_key),
        timeout=timeout,
    )
