"""``POST <long-poll path>/open``: a JSON 400 for a malformed body, not crossbar's 500.

Why: crossbar 26.10 parses the open request without checking it. Invalid
UTF-8, ``{"protocols": 5}`` or an unknown protocol raise inside
``render_POST`` (500 "Processing Failed"); ``{}`` makes it return a ``str``,
which Twisted answers with a 500 page showing the request's and the
resource's reprs. Broker checks the body first (:func:`broker.core.longpoll.open_protocol`)
and answers ``400 {"error": "broker.error.bad_request", "message": ...}``
naming the problem; a valid body goes on to crossbar, which opens the session.
Item 9 of the index in :mod:`broker.router.crossbar`.

Wraps ``crossbar/router/longpoll.py: WampLongPollResourceOpen.render_POST``
(inside the origin check of :mod:`.longpoll_origins`). Tests: ``tests/test_longpoll.py``.
"""

from __future__ import annotations

import json
from typing import Any

from crossbar.router import longpoll
from twisted.logger import Logger

from broker.core.longpoll import open_protocol
from broker.errors import ClientError

_log = Logger(namespace="broker.hardening")


def _make_render_post(original: Any) -> Any:
    def render_post(self: Any, request: Any) -> bytes:
        resource = self._parent
        body = request.content.read()
        try:
            open_protocol(body, resource._serializers.keys())
        except ClientError as error:
            _log.warn(
                "refusing long-poll session from {peer}: {reason}",
                peer=request.getClientIP(),
                reason=str(error),
            )
            resource._set_standard_headers(request)
            request.setResponseCode(error.http_status)
            request.setHeader(b"content-type", b"application/json")
            return json.dumps({"error": error.wamp_uri, "message": str(error)}).encode()
        request.content.seek(0)  # crossbar reads the body again
        result: bytes = original(self, request)
        return result

    return render_post


def install() -> None:
    """Check ``open`` bodies before crossbar does (call before any wrapper that must run first)."""
    lp_open = longpoll.WampLongPollResourceOpen
    lp_open.render_POST = _make_render_post(lp_open.render_POST)  # type: ignore[method-assign]
