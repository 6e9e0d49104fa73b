"""docs/operators.md's nginx block, run for real in front of a node: TLS, WebSocket, long-poll,
the HTTP publish API, Server-Sent Events and a restricted ``/metrics``.

The block is taken from the doc itself (the fenced ``nginx`` block after the
``tests/test_reverse_proxy.py`` marker), so the doc cannot drift from what
works. Only the public name, the listening address, the certificate paths and
the node's port are substituted; the certificate is self-signed and made here.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import re
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from autobahn.util import wildcards2patterns
from autobahn.websocket.protocol import _is_same_origin, _url_to_origin
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from broker.client import Publisher
from tests.node import PUBLISHER_SECRET, ROOT, Node, free_port
from tests.rawwamp import SUBSCRIBED, WELCOME, RawWamp
from tests.sseclient import SseClient
from tools.nginxconf import NGINX, Nginx

DOC = ROOT / "docs" / "operators.md"
MARKER = "<!-- tests/test_reverse_proxy.py runs the next block -->"
PUBLIC_NAME = "broker.example.com"


def doc_nginx_block() -> str:
    """The fenced nginx block right after :data:`MARKER` in docs/operators.md."""
    text = DOC.read_text()
    found = re.search(re.escape(MARKER) + r"\s*```nginx\n(.*?)```", text, re.S)
    if found is None:
        pytest.fail(f"{DOC}: no ```nginx block after {MARKER!r}")
    return found.group(1)


def doc_allowed_origins() -> list[str]:
    """The ``allowed_origins`` the doc tells operators to set for the proxy."""
    found = re.search(r'"allowed_origins":\s*(\[[^\]]*\])', DOC.read_text().split(MARKER, 1)[1])
    if found is None:
        pytest.fail(f"{DOC}: no allowed_origins example after the nginx block")
    return json.loads(found.group(1))  # type: ignore[no-any-return]


def substitute(block: str, replacements: dict[str, str]) -> str:
    """Replace each key exactly once; a key missing from the doc fails the test, naming it."""
    for old, new in replacements.items():
        if block.count(old) != 1:
            pytest.fail(f"{DOC}: the nginx block should contain {old!r} exactly once")
        block = block.replace(old, new)
    return block


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for ``localhost`` and 127.0.0.1, its own CA; (cert, key) PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


@pytest.fixture
def proxied(make_node: Callable[..., Node], tmp_path: Path) -> Iterator[tuple[Node, str, ssl.SSLContext]]:
    """A node behind the doc's nginx block: (node, public https URL, a TLS context trusting it)."""
    if not (os.path.isfile(NGINX) and os.access(NGINX, os.X_OK)):
        pytest.fail(f"nginx is not installed ({NGINX} not found): run `make nginx` first")
    cert, key = self_signed(tmp_path)
    context = ssl.create_default_context(cafile=str(cert))
    port = free_port()
    public = f"https://localhost:{port}"

    def behind_proxy(config: dict[str, Any]) -> None:
        ws = config["workers"][0]["transports"][0]["paths"]["ws"]
        ws["options"]["allowed_origins"] = [public]

    node = make_node(behind_proxy)
    block = substitute(
        doc_nginx_block(),
        {
            "listen 443 ssl;": f"listen 127.0.0.1:{port} ssl;",
            f"server_name {PUBLIC_NAME};": "server_name localhost;",
            f"/etc/letsencrypt/live/{PUBLIC_NAME}/fullchain.pem": str(cert),
            f"/etc/letsencrypt/live/{PUBLIC_NAME}/privkey.pem": str(key),
            "server 127.0.0.1:8080;": f"server 127.0.0.1:{node.port};",
        },
    )
    nginx_dir = tmp_path / "nginx"
    nginx_dir.mkdir()
    nginx = Nginx(nginx_dir, block, port)

    def ready() -> bool:
        with urllib.request.urlopen(f"{public}/health", timeout=2, context=context) as response:
            return bool(response.status == 200)

    nginx.start(ready)
    try:
        yield node, public, context
    finally:
        nginx.stop()
        # pytest shows a test's captured output only when it fails: nginx's side of the story
        print(f"nginx error log:\n{nginx.log()}")


def https(
    public: str, context: ssl.SSLContext, path: str, body: bytes | None = None, **headers: str
) -> tuple[int, bytes]:
    request = urllib.request.Request(f"{public}{path}", data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@pytest.mark.node
def test_wamp_and_http_publish_through_nginx_with_tls(proxied: tuple[Node, str, ssl.SSLContext]) -> None:
    _node, public, context = proxied
    wss = public.replace("https://", "wss://") + "/ws"
    subscriber = RawWamp(wss, origin=public, ssl_context=context)
    try:
        assert subscriber.hello()[0] == WELCOME
        assert subscriber.subscribe("public.proxied")[0] == SUBSCRIBED
        publisher = Publisher(public, "dev", PUBLISHER_SECRET)
        publisher.ssl_context = context  # the system's CAs do not know the test's certificate
        published = publisher.publish("public.proxied", {"via": "nginx"})
        event = subscriber.event()
        assert event[4] == [{"via": "nginx"}]
        assert event[5]["broker_position"] == published.position
    finally:
        subscriber.close()

    # the node, not nginx, refuses an oversize body: its JSON 413
    status, body = https(
        public, context, "/api/publish", b"x" * 70_000, **{"Content-Type": "application/json"}
    )
    assert (status, json.loads(body)["error"]) == (413, "broker.error.too_large")
    # long-poll opens through the proxy, from the public origin
    status, body = https(
        public,
        context,
        "/lp/open",
        json.dumps({"protocols": ["wamp.2.json"]}).encode(),
        Origin=public,
        **{"Content-Type": "application/json"},
    )
    assert status == 200 and "transport" in json.loads(body), body
    # /metrics is for the monitoring network, not for 127.0.0.1 through the proxy
    assert https(public, context, "/metrics")[0] == 403


@pytest.mark.node
def test_server_sent_events_stream_through_nginx_unbuffered(
    proxied: tuple[Node, str, ssl.SSLContext],
) -> None:
    """Each event reaches the client as it is published, not when nginx's buffer fills; a
    reconnect through the proxy resumes from ``Last-Event-ID``; a foreign origin gets the node's 403."""
    _node, public, context = proxied
    port = int(public.rsplit(":", 1)[1])
    topic = "public.proxied.sse"
    stream = SseClient(port, f"/sse?topic={topic}", headers={"Origin": public}, ssl_context=context).open()
    publisher = Publisher(public, "dev", PUBLISHER_SECRET)
    publisher.ssl_context = context
    try:
        assert stream.status == 200
        assert stream.next().event == "ready"
        published = publisher.publish(topic, {"via": "nginx"})
        event = stream.next()  # one small event: nginx would hold it back if it buffered
        assert (event.data["args"], event.data["position"]) == ([{"via": "nginx"}], published.position)
    finally:
        stream.close()
    publisher.publish(topic, "missed")
    again = SseClient(
        port, f"/sse?topic={topic}", headers={"Last-Event-ID": str(event.id)}, ssl_context=context
    )
    try:
        assert again.open().next().data["args"] == ["missed"]
    finally:
        again.close()
    foreign = SseClient(
        port, f"/sse?topic={topic}", headers={"Origin": "https://evil.example.com"}, ssl_context=context
    ).open()
    assert (foreign.status, foreign.body()["error"]) == (403, "wamp.error.not_authorized")


@pytest.mark.node
def test_foreign_origin_is_refused_through_nginx(proxied: tuple[Node, str, ssl.SSLContext]) -> None:
    _node, public, context = proxied
    wss = public.replace("https://", "wss://") + "/ws"
    with pytest.raises(InvalidStatus) as refused:
        connect(wss, subprotocols=["wamp.2.json"], origin="https://evil.example.com", ssl=context)  # type: ignore[list-item,arg-type]
    assert refused.value.response.status_code == 400
    # the public origin over plain http (a downgrade) is a different origin
    with pytest.raises(InvalidStatus):
        connect(wss, subprotocols=["wamp.2.json"], origin=public.replace("https", "http"), ssl=context)  # type: ignore[list-item,arg-type]


def test_doc_allowed_origins_admit_the_public_origin() -> None:
    """autobahn compares ``scheme://host:port`` with the port always there: the doc's
    entry must carry it, and one without it would refuse every browser."""
    origin = _url_to_origin(f"https://{PUBLIC_NAME}")
    assert _is_same_origin(origin, "http", 8080, wildcards2patterns(doc_allowed_origins()))
    assert not _is_same_origin(origin, "http", 8080, wildcards2patterns([f"https://{PUBLIC_NAME}"]))
    assert not _is_same_origin(
        _url_to_origin("https://evil.example.com"), "http", 8080, wildcards2patterns(doc_allowed_origins())
    )
