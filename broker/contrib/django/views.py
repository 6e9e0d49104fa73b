"""Hand a logged-in user's browser a token for the node: ``token_view``.

Why: the browser connects to the node directly (WAMP over WebSocket), but
only the Django backend knows who is logged in and which topics are theirs.
``token_view`` mints a short-lived HS256 token (:func:`broker.core.tokens.mint`,
stdlib only) naming ``request.user`` and their topic patterns; the browser
fetches it from its own origin with its session cookie and presents it to the
node as its WAMP ticket. Anonymous requests get 401, never a token.

Settings:

``BROKER_TOKEN_SECRET``
    the node's HS256 secret (its ``${BROKER_TOKEN_SECRET}``).
``BROKER_TOKEN_GRANTS``
    what the user may subscribe to: a list of patterns with a ``{user_id}``
    placeholder, strings being prefix patterns (``["user.{user_id}.",
    "public."]``) and ``{"uri", "match"}`` objects taken as given; or a
    callable ``user -> list`` of such patterns (or its dotted import path).
``BROKER_TOKEN_TTL``
    seconds a token lives (default 300).

::

    path("broker/token", token_view)   # urls.py
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponseNotAllowed, JsonResponse
from django.utils.cache import add_never_cache_headers
from django.utils.module_loading import import_string

from broker.core.tokens import DEFAULT_TTL, mint


def _setting(name: str) -> Any:
    value = getattr(settings, name, None)
    if value is None or value == "":
        raise ImproperlyConfigured(f"{name} is not set: token_view needs it in the Django settings")
    return value


def _format(pattern: object, user_id: str) -> dict[str, str]:
    """One configured pattern for this user: a string is a prefix pattern."""
    if isinstance(pattern, str):
        return {"uri": pattern.format(user_id=user_id), "match": "prefix"}
    if isinstance(pattern, Mapping):
        return {
            "uri": str(pattern.get("uri", "")).format(user_id=user_id),
            "match": pattern.get("match", "exact"),
        }
    raise ImproperlyConfigured(
        f"BROKER_TOKEN_GRANTS: a pattern is a string or an object {{uri, match}}, not {pattern!r}"
    )


def grants_for(user: Any) -> list[dict[str, str]]:
    """The patterns ``user`` may subscribe to, from ``BROKER_TOKEN_GRANTS``."""
    configured = _setting("BROKER_TOKEN_GRANTS")
    user_id = str(user.pk)
    if isinstance(configured, str):
        configured = import_string(configured)
    if callable(configured):
        produce: Callable[[Any], Any] = configured
        configured = produce(user)
    if isinstance(configured, str | bytes) or not isinstance(configured, list | tuple):
        raise ImproperlyConfigured(
            "BROKER_TOKEN_GRANTS must be a list of patterns or a callable returning one"
        )
    return [_format(pattern, user_id) for pattern in configured]


def token_view(request: HttpRequest) -> JsonResponse | HttpResponseNotAllowed:
    """``{"token": ..., "expires_at": <epoch seconds>}`` for the logged-in user; 401 otherwise.

    ``expires_at`` is the token's ``exp``: fetch a new token before it to
    reconnect (a session already joined is not cut off when its token expires).
    Answers are never cached (Django's decorators for that are untyped, so
    the method check and the headers are done here).
    """
    if request.method not in ("GET", "POST"):
        return HttpResponseNotAllowed(["GET", "POST"])
    if not request.user.is_authenticated:
        response = JsonResponse({"error": "authentication required"}, status=401)
    else:
        secret = _setting("BROKER_TOKEN_SECRET")
        ttl = getattr(settings, "BROKER_TOKEN_TTL", DEFAULT_TTL)
        now = int(time.time())
        token = mint(secret, str(request.user.pk), grants_for(request.user), ttl=ttl, now=now)
        response = JsonResponse({"token": token, "expires_at": now + ttl})
    add_never_cache_headers(response)
    return response
