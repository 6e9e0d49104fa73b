"""Form parsing skipped for the publish API's and long-poll's requests only, against a real node.

The publish API reads its body as JSON and long-poll its as WAMP messages, so
Twisted parsing a POST body into ``request.args`` is wasted work there
(:mod:`broker.router.crossbar.forms`);
any other resource on the same site that reads a POST form (here
:class:`tests.formecho.FormEcho`, mounted at ``/form``) must still get its
fields, before and after the publish API has served a request.
"""

from __future__ import annotations

import http.client
import json
import uuid
from typing import Any

import pytest

from broker.core import signing
from tests.node import PUBLISHER_SECRET, Node, tests_importable
from tests.rawwamp import SUBSCRIBED, RawWamp
from tests.test_publish_api import request

pytestmark = pytest.mark.node

BOUNDARY = "formboundary"
MULTIPART = (
    f"--{BOUNDARY}\r\n"
    'Content-Disposition: form-data; name="file_name"\r\n\r\n'
    "notes.txt\r\n"
    f"--{BOUNDARY}\r\n"
    'Content-Disposition: form-data; name="chunk"\r\n\r\n'
    "3\r\n"
    f"--{BOUNDARY}--\r\n"
).encode()


def with_form(config: dict[str, Any]) -> None:
    """Mount :class:`tests.formecho.FormEcho` at ``/form`` on the site that serves ``/api``."""
    for transport in config["workers"][0]["transports"]:
        if "api" in transport.get("paths", {}):
            transport["paths"]["form"] = {"type": "resource", "classname": "tests.formecho.FormEcho"}


def post(node: Node, path: str, body: bytes, content_type: str, sign: bool = False) -> tuple[int, bytes]:
    """One POST on a connection of its own (signed with the dev publisher key): (status, body)."""
    headers = {"Content-Type": content_type}
    if sign:
        headers.update(signing.sign_headers("dev", PUBLISHER_SECRET, "POST", path, body))
    connection = http.client.HTTPConnection("127.0.0.1", node.port, timeout=10)
    try:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def form_fields(node: Node) -> tuple[Any, Any]:
    """What ``/form`` parsed from an urlencoded POST (with a query) and from a multipart one."""
    status, body = post(node, "/form?q=3", b"a=1&b=two", "application/x-www-form-urlencoded")
    assert status == 200, body
    status, multipart = post(node, "/form", MULTIPART, f"multipart/form-data; boundary={BOUNDARY}")
    assert status == 200, multipart
    return json.loads(body), json.loads(multipart)


PARSED = ({"a": ["1"], "b": ["two"], "q": ["3"]}, {"chunk": ["3"], "file_name": ["notes.txt"]})


def test_a_form_beside_the_publish_api_keeps_its_fields_after_publishes(make_node: Any) -> None:
    node = make_node(with_form, env=tests_importable())
    assert form_fields(node) == PARSED
    topic = f"public.forms.{uuid.uuid4().hex[:8]}"
    subscriber = RawWamp(node.ws_url, origin=node.origin)
    try:
        assert subscriber.hello()[0] == 2
        assert subscriber.subscribe(topic)[0] == SUBSCRIBED
        for n in range(3):
            status, answer, _ = request(node, {"topic": topic, "data": n})
            assert status == 200, answer
            assert subscriber.event()[4] == [n]
    finally:
        subscriber.close()
    assert form_fields(node) == PARSED  # the publishes did not switch the site's form parsing off


def test_a_publish_body_is_never_parsed_as_a_form_not_even_the_first(make_node: Any) -> None:
    node = make_node(with_form, env=tests_importable())
    # a multipart body Twisted cannot parse: parsed as a form, it is Twisted's bare 400 and a
    # dropped connection; unparsed, it reaches the publish API, which answers JSON
    status, answer = post(node, "/api/publish", b"--x", "multipart/form-data", sign=True)
    assert status == 415, answer
    assert json.loads(answer)["error"] == "broker.error.unsupported_media_type"
    status, body = post(node, "/form", b"--x", "multipart/form-data")
    assert status == 400, body  # the same body to /form is parsed, and refused by Twisted
    assert form_fields(node) == PARSED


def test_a_long_poll_body_is_not_parsed_as_a_form(make_node: Any) -> None:
    node = make_node(with_form, env=tests_importable())
    # parsed as a form, this body is Twisted's bare 400; unparsed, /lp/open answers it in JSON
    connection = http.client.HTTPConnection("127.0.0.1", node.port, timeout=10)
    try:
        headers = {"Content-Type": "multipart/form-data", "Origin": node.origin}
        connection.request("POST", "/lp/open", body=b"--x", headers=headers)
        response = connection.getresponse()
        status, body = response.status, response.read()
    finally:
        connection.close()
    assert status == 400, body
    assert json.loads(body)["error"] == "broker.error.bad_request"
    assert form_fields(node) == PARSED
