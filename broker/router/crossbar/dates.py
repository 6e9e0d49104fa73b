"""The ``Date`` header of Twisted's web answers, formatted once per second, not per request.

What Twisted does: ``twisted/web/server.py: Request.process`` sets ``Date``
to ``datetimeToString()`` for every request, a ``gmtime`` and a nine-field
format (~1% of a keep-alive ``POST /api/publish``'s router CPU) for a value
that changes once a second.

What Broker does instead: :func:`install` gives ``twisted.web.server`` (the
name ``Request.process`` calls) a :func:`cached` ``datetimeToString`` that
keeps the text of the current second: for no argument, the text of
``gmtime(now)``, the second ``gmtime()`` reads itself (any other argument is
formatted as before). Item 20 of the index in :mod:`broker.router.crossbar`.
Replaces the ``datetimeToString`` that ``twisted/web/server.py`` imports from
``twisted/web/http.py`` (``http.datetimeToString`` itself is unchanged).
Tests: ``tests/test_http_dates.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from twisted.web import server


def cached(original: Callable[..., bytes], clock: Callable[[], float] = time.time) -> Callable[..., bytes]:
    """``original`` (``datetimeToString``) answering a call without argument from the text of
    the current second, made once per second."""
    kept: list[Any] = [None, b""]

    def datetimeToString(msSinceEpoch: float | None = None) -> bytes:
        if msSinceEpoch is not None:
            return original(msSinceEpoch)
        second = int(clock())
        if kept[0] != second:
            kept[1] = original(second)
            kept[0] = second
        return kept[1]  # type: ignore[no-any-return]

    return datetimeToString


def install() -> None:
    """Format the ``Date`` of Twisted's web answers once per second."""
    server.datetimeToString = cached(server.datetimeToString)  # type: ignore[attr-defined]
