"""Twisted's form parsing of POST bodies, turned off for the site that serves ``/api/publish``.

What Twisted does: every POST request with a body and a ``Content-Type``
has that header parsed through :class:`email.message.EmailMessage`
(``twisted/web/http.py: _parseContentType``, ~50 µs, a fifth of an HTTP
publish's own time), to fill ``request.args`` from an
``application/x-www-form-urlencoded`` or ``multipart/form-data`` body. What
Broker does instead: nothing on its site reads form arguments from a body
(the publish API and long-poll take JSON, ``/sse`` reads its query string,
which Twisted still parses), so the site's ``parsePOSTFormSubmission``
(the constructor option of ``twisted.web.server.Site``) is switched off on
the first publish request. Tests: ``tests/test_publish_api_fast.py``.
"""

from __future__ import annotations

from typing import Any


def skip_form_parsing(request: Any) -> None:
    """Make the site that received ``request`` parse no POST body into ``request.args``."""
    site = getattr(getattr(request, "channel", None), "site", None)
    if getattr(site, "_parsePOSTFormSubmission", False):
        site._parsePOSTFormSubmission = False  # type: ignore[union-attr]
