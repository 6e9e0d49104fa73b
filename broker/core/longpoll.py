"""Rules for WAMP over long-poll requests, as plain functions (no I/O, no Twisted).

Why: crossbar 26.10's long-poll transport (``/lp``) checks neither the size of
what a client sends nor the shape of the request that opens a session. A send
of 16 MiB is buffered and routed (WebSocket refuses anything over its
``max_message_size``), and a malformed ``POST /lp/open`` body answers 500 HTML
(for ``{}`` a page showing the request's and the resource's reprs).
:mod:`broker.router.crossbar.longpoll_limits` and :mod:`broker.router.crossbar.longpoll_open`
apply these rules to every long-poll request.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, Final

from broker.core.protocol import MAX_JSON_NESTING, json_nesting_exceeds
from broker.errors import ClientError

#: crossbar's ``max_message_size`` for a WebSocket path that sets none (16 MiB).
DEFAULT_MAX_MESSAGE_SIZE: Final = 2**24

#: What ``POST <path>/open`` expects, for error messages.
OPEN_EXAMPLE: Final = '{"protocols": ["wamp.2.json"]}'


def max_message_size(paths: Mapping[str, Any]) -> int:
    """The message limit a web transport's WebSocket paths impose, for its long-poll paths.

    The smallest ``max_message_size`` of its WebSocket paths (crossbar's
    default where one sets none); crossbar's default if it has none.
    """
    sizes = [
        service.get("options", {}).get("max_message_size", DEFAULT_MAX_MESSAGE_SIZE)
        for service in paths.values()
        if isinstance(service, Mapping) and service.get("type") == "websocket"
    ]
    return min(sizes, default=DEFAULT_MAX_MESSAGE_SIZE)


def body_too_large(size: int, limit: int, declared: bool) -> str | None:
    """Why a long-poll request body of ``size`` bytes is refused, or None if it may be read.

    ``declared``: ``size`` is the request's ``Content-Length``, not what
    has arrived so far of a chunked body.
    """
    if size <= limit:
        return None
    if declared:
        return f"long-poll request body of {size} bytes exceeds max_message_size ({limit} bytes)"
    return f"long-poll request body exceeds max_message_size ({limit} bytes)"


def _kind(value: object) -> str:
    """A JSON value's type in JSON's words."""
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"


def open_protocol(body: bytes, supported: Iterable[str]) -> str:
    """The WAMP protocol a ``POST <path>/open`` body asks for (``wamp.2.json``).

    ``supported`` are the serializer ids the transport speaks (``json``,
    ``json.batched``, ...). The client's first protocol this node speaks wins,
    as in crossbar. Raises :class:`ClientError` naming what is wrong.
    """
    if json_nesting_exceeds(body):
        raise ClientError(f"the long-poll open request is nested deeper than {MAX_JSON_NESTING} levels")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ClientError(f"the long-poll open request is not UTF-8 (invalid byte at {exc.start})") from None
    try:
        options = json.loads(text)
    except ValueError as exc:
        raise ClientError(f"the long-poll open request is not JSON ({exc})") from None
    if not isinstance(options, dict):
        raise ClientError(
            f"the long-poll open request must be a JSON object like {OPEN_EXAMPLE}, not {_kind(options)}"
        )
    if "protocols" not in options:
        raise ClientError(f'the long-poll open request has no "protocols" (expected {OPEN_EXAMPLE})')
    protocols = options["protocols"]
    if not isinstance(protocols, list) or not all(isinstance(p, str) for p in protocols):
        raise ClientError(
            f'"protocols" must be an array of strings like ["wamp.2.json"], not {json.dumps(protocols)[:80]}'
        )
    speaks = [f"wamp.2.{s}" for s in sorted(supported)]
    for protocol in protocols:
        if protocol in speaks:
            return str(protocol)
    raise ClientError(
        f"no common protocol: offered {json.dumps(protocols)[:200]}, this node speaks {', '.join(speaks)}"
    )


def websocket_origin_policy(paths: dict[str, Any]) -> tuple[list[str], bool]:
    """The origins a web transport's WebSocket paths allow (crossbar's default ``*`` where
    unset), and whether any of them allows the ``null`` origin."""
    origins: list[str] = []
    allow_null = False
    for service in paths.values():
        if isinstance(service, dict) and service.get("type") == "websocket":
            options = service.get("options", {})
            origins.extend(options.get("allowed_origins", ["*"]))
            allow_null = allow_null or bool(options.get("allow_null_origin", False))
    return origins, allow_null


def websocket_auth(paths: dict[str, Any]) -> dict[str, Any]:
    """The ``auth`` of a web transport's first WebSocket path, for its long-poll sessions."""
    for service in paths.values():
        if isinstance(service, dict) and service.get("type") == "websocket" and "auth" in service:
            return {"auth": service["auth"]}
    return {}
