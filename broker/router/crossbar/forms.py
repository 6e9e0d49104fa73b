"""Twisted's form parsing of POST bodies, skipped for the publish API's and long-poll's requests only.

What Twisted does: every POST request with a body and a ``Content-Type``
has that header parsed through :class:`email.message.EmailMessage`
(``twisted/web/http.py: _parseContentType``, ~50 µs, a fifth of an HTTP
publish's own time), to fill ``request.args`` from an
``application/x-www-form-urlencoded`` or ``multipart/form-data`` body; a
multipart body it cannot parse is answered with its own bare 400 and a
dropped connection before any resource sees it. The publish API reads its
body as JSON, crossbar's long-poll transport its bodies as WAMP messages
(JSON or MessagePack), neither ever ``request.args`` from a body, so for
their requests that work is wasted (and the bare 400 is not their JSON answer).

What Broker does instead: each POST request decides for itself, in
``Request.requestReceived`` before Twisted parses the body: a request whose
path leads, through the site's mounted children, to a resource of a
*formless* class (:class:`broker.router.publish_api.PublishResource`,
``crossbar/router/longpoll.py: WampLongPollResource``) has its own
``_parsePOSTFormSubmission`` set to False. The site's setting, and
every other request (a resource of the same site that reads a POST form),
are left alone. What it costs: for a POST, the path split at ``/`` and its
first segments unquoted and looked up in the children dictionaries (about
half a microsecond, against the 30-50 µs it saves a publish); nothing for
other methods.

The walk follows only resources mounted with ``putChild`` (crossbar's paths)
and stops at a leaf or the first segment no child is mounted at: a request
it cannot place is parsed as Twisted always did. Item 18 of the index in
:mod:`broker.router.crossbar`. Wraps ``twisted/web/http.py:
Request.requestReceived``. Tests: ``tests/test_form_parsing.py``,
``tests/test_publish_api_fast.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import unquote_to_bytes

from twisted.web import http


def leads_to(root: Any, uri: bytes, formless: tuple[type, ...]) -> bool:
    """Whether the request target ``uri`` is routed from ``root`` to a resource of a ``formless`` class.

    As ``twisted/web/resource.py: getChildForRequest`` routes it (the path
    before ``?``, split at ``/``, each segment unquoted), through mounted
    children only.
    """
    resource = root
    if isinstance(resource, formless):
        return True
    for segment in uri.split(b"?", 1)[0][1:].split(b"/"):
        if getattr(resource, "isLeaf", True):
            return False
        children = getattr(resource, "children", None)
        resource = children.get(unquote_to_bytes(segment)) if children else None
        if resource is None:
            return False
        if isinstance(resource, formless):
            return True
    return False


def skipping_forms(
    formless: tuple[type, ...], original: Callable[[Any, bytes, bytes, bytes], None]
) -> Callable[[Any, bytes, bytes, bytes], None]:
    """``original`` (a ``Request.requestReceived``) that parses no form body for a POST :func:`leads_to`
    a resource of a ``formless`` class."""

    def requestReceived(self: Any, command: bytes, path: bytes, version: bytes) -> None:
        if command == b"POST" and self._parsePOSTFormSubmission:
            site = getattr(self.channel, "site", None)
            if site is not None and leads_to(getattr(site, "resource", None), path, formless):
                self._parsePOSTFormSubmission = False
        original(self, command, path, version)

    return requestReceived


def install(formless: tuple[type, ...]) -> None:
    """Skip form parsing, from now on, for the POST requests routed to a resource of a ``formless`` class."""
    request = http.Request
    request.requestReceived = skipping_forms(formless, request.requestReceived)  # type: ignore[method-assign]
