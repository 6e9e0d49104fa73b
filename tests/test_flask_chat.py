"""examples/flask_chat end to end: a real node, the Flask app as its README runs it, real Chromium.

The app is started with ``flask --app examples/flask_chat/chat run --port 0``
(werkzeug's threaded server on a port the OS picks, read back from its log;
ready when a room page answers 200) and stopped by PID. Pages are driven by
``clients/js/e2e/chat.mjs``. Each test uses a room of its own, so tests that
share the session's node never see each other's messages. The message rules
themselves (``chat.messages``, ``chat.settings``) are pure and tested first,
without a server.
"""

from __future__ import annotations

import http.cookiejar
import json
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from broker.client import Publisher
from tests.chromium import E2E, PageDriver, opener
from tests.node import PUBLISHER_SECRET, ROOT, Node

EXAMPLE = ROOT / "examples" / "flask_chat"
sys.path.insert(0, str(EXAMPLE))

from chat import messages, settings  # noqa: E402

XSS = '<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">'


# -- the rules (no server) ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "reason"),
    [
        ("ada", "x" * 501, "Your message is 501 characters long; the limit is 500."),
        ("ada", "   ", "Type a message first."),
        ("ada", "bell\x07", "Your message contains control characters."),
        ("", "hello", "Enter your name."),
        ("n" * 33, "hello", "Your name is 33 characters long; the limit is 32."),
        ("a\x1b[31m", "hello", "Your name contains control characters."),
    ],
)
def test_a_message_that_cannot_be_sent_names_why(name: str, text: str, reason: str) -> None:
    with pytest.raises(messages.Invalid) as refused:
        messages.check_message(name, text)
    assert str(refused.value) == reason


def test_a_message_is_stripped_and_kept_as_typed_markup_and_all() -> None:
    assert messages.check_message(" ada ", f"  {XSS} ") == messages.Message("ada", XSS)
    assert messages.check_message("ada", "é" * 500).text == "é" * 500  # characters, not bytes


def test_a_room_name_is_a_topic_component_or_nothing() -> None:
    assert messages.topic_for("lobby") == "public.chat.lobby"
    assert [messages.topic_for(r) for r in ("Lobby", "a.b", "", "-x", "x" * 33)] == [None] * 5


def test_settings_name_the_missing_secret_and_bad_urls(tmp_path: Path) -> None:
    with pytest.raises(settings.ConfigError, match=r"^BROKER_SECRET is not set"):
        settings.load({}, config_dir=tmp_path)
    with pytest.raises(settings.ConfigError, match=r"^BROKER_URL must be the node's http"):
        settings.load({"BROKER_URL": "ws://127.0.0.1:8080/ws", "BROKER_SECRET": "s"}, config_dir=tmp_path)
    with pytest.raises(settings.ConfigError, match=r"^BROKER_TIMEOUT must be a positive number"):
        settings.load({"BROKER_SECRET": "s", "BROKER_TIMEOUT": "0"}, config_dir=tmp_path)
    (tmp_path / "secrets.env").write_text("BROKER_PUBLISHER_SECRET=from-file\n")
    loaded = settings.load({"CHAT_SECRET_KEY": "k"}, config_dir=tmp_path)
    assert (loaded.secret, loaded.key_id, loaded.broker_url) == ("from-file", "dev", "http://127.0.0.1:8080")
    assert (loaded.public_url, loaded.secret_key, loaded.secret_key_set) == (loaded.broker_url, "k", True)
    assert settings.load({"BROKER_SECRET": "env"}, config_dir=tmp_path).secret == "env"


# -- the app as a process -------------------------------------------------------------------


class ChatApp:
    """The example run as its README says, against the node at ``broker_url``."""

    def __init__(self, workdir: Path, broker_url: str, env: dict[str, str] | None = None) -> None:
        self.log_path = workdir / f"flask-{uuid.uuid4().hex[:6]}.log"
        environ = {
            "PATH": "/usr/bin:/bin",
            "BROKER_URL": broker_url,
            "BROKER_SECRET": PUBLISHER_SECRET,
            "CHAT_SECRET_KEY": "test-chat-secret-key",
            "PYTHONPATH": str(ROOT),
            **(env or {}),
        }
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "flask", "--app", "examples/flask_chat/chat", "run", "--port", "0"],
                cwd=ROOT,
                env=environ,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.url = self._wait_ready(60)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def _wait_ready(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        url = ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"the Flask app ended ({self.proc.returncode}):\n{self.log()}")
            found = re.search(r"Running on (http://127\.0\.0\.1:\d+)", self.log())
            if found:
                url = found.group(1)
                try:
                    with urllib.request.urlopen(f"{url}/rooms/lobby", timeout=2) as response:
                        if response.status == 200:
                            return url
                except (urllib.error.URLError, ConnectionError, TimeoutError):
                    pass
            time.sleep(0.1)
        self.stop()
        raise AssertionError(f"the Flask app did not become ready at {url or '?'}:\n{self.log()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Browser:
    """A non-browser HTTP client of the app with its own cookie jar (the session holds the CSRF token)."""

    def __init__(self, app: ChatApp) -> None:
        self.app = app
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()), NoRedirect()
        )

    def get(self, path: str) -> tuple[int, str]:
        with self.opener.open(f"{self.app.url}{path}", timeout=30) as response:
            return response.status, response.read().decode()

    def csrf(self, room: str) -> str:
        found = re.search(r'name="csrf_token" value="([^"]+)"', self.get(f"/rooms/{room}")[1])
        assert found
        return found.group(1)

    def post(self, room: str, fields: dict[str, str], accept: str = "text/html") -> tuple[int, str, Any]:
        body = urllib.parse.urlencode(fields).encode()
        request = urllib.request.Request(
            f"{self.app.url}/rooms/{room}/messages", data=body, headers={"Accept": accept}, method="POST"
        )
        try:
            response = self.opener.open(request, timeout=60)
        except urllib.error.HTTPError as answer:
            response = answer
        with response:
            return response.status, response.read().decode(), response.headers


class NoRedirect(urllib.request.HTTPRedirectHandler):
    """Keep a 303 as the answer: the test asserts where it points."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class Page(PageDriver):
    """One Chromium page on a room, driven through chat.mjs."""

    def __init__(self, url: str) -> None:
        super().__init__(E2E / "chat.mjs", url)

    def send(self, text: str, name: str | None = None) -> dict[str, Any]:
        return self.ask(send={"text": text, **({"name": name} if name is not None else {})})

    def wait(self, text: str) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = self.ask(wait=text)["messages"]
        return messages


@pytest.fixture
def pages() -> Iterator[Callable[..., Page]]:
    yield from opener(Page)  # type: ignore[misc]


@pytest.fixture
def start_app(tmp_path: Path) -> Iterator[Callable[..., ChatApp]]:
    started: list[ChatApp] = []

    def start(broker_url: str, **env: str) -> ChatApp:
        app = ChatApp(tmp_path, broker_url, env)
        started.append(app)
        return app

    yield start
    for app in started:
        app.stop()


@pytest.fixture
def app(node: Node, start_app: Callable[..., ChatApp]) -> ChatApp:
    return start_app(node.url)


def new_room() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


def said(user: str, text: str, history: bool = False) -> dict[str, Any]:
    return {"user": user, "text": text, "history": history}


@pytest.mark.node
def test_a_message_from_one_page_appears_live_on_another_once_and_as_text(
    app: ChatApp, pages: Callable[..., Page]
) -> None:
    room = new_room()
    first, second = pages(f"{app.url}/rooms/{room}"), pages(f"{app.url}/rooms/{room}")
    assert (first.ready["state"], first.ready["messages"]) == ("connected", [])

    assert first.send(XSS, name="<b>ada</b>")["refused"] == ""
    assert first.send("sentinel")["refused"] == ""  # the name is remembered by the form

    expected = [said("<b>ada</b>", XSS), said("<b>ada</b>", "sentinel")]
    assert second.wait("sentinel") == expected  # each once, in order, live
    assert first.wait("sentinel") == expected
    seen = second.ask(inspect=True)
    assert (seen["pwned"], seen["elements"]) == (None, 0)  # shown as text: nothing ran, no tags made


@pytest.mark.node
def test_a_page_opened_later_shows_the_rooms_last_messages_from_history(
    node: Node, app: ChatApp, pages: Callable[..., Page]
) -> None:
    room = new_room()
    publisher = Publisher(node.url, "dev", PUBLISHER_SECRET)
    other = f"public.chat.{new_room()}"
    for n in range(60):  # more than the page shows, interleaved with another room's messages
        publisher.publish(
            f"public.chat.{room}", {"user": "bot", "text": f"old {n}", "at": "2026-01-01T00:00:00"}
        )
        publisher.publish(other, {"user": "bot", "text": "elsewhere"})
    writer = pages(f"{app.url}/rooms/{room}")
    assert writer.send("<i>newest</i>", name="grace")["refused"] == ""
    writer.wait("<i>newest</i>")

    later = pages(f"{app.url}/rooms/{room}")
    assert later.ready["history"] == "loaded"
    assert later.ready["messages"] == [said("bot", f"old {n}", True) for n in range(11, 60)] + [
        said("grace", "<i>newest</i>", True)
    ]
    assert later.ask(inspect=True)["elements"] == 0
    assert writer.send("after", name="grace")["refused"] == ""
    assert later.wait("after")[-2:] == [said("grace", "<i>newest</i>", True), said("grace", "after")]


def short_chat_history(config: dict[str, Any]) -> None:
    extra = config["workers"][0]["components"][0]["extra"]
    policy = {"uri": "public.chat.", "match": "prefix", "max_events": 20, "max_age": 3600}
    extra["history"]["policies"].insert(0, policy)


@pytest.mark.node
def test_a_room_that_keeps_fewer_messages_than_the_page_shows_lists_all_it_keeps(
    make_node: Callable[..., Node], start_app: Callable[..., ChatApp], pages: Callable[..., Page]
) -> None:
    node = make_node(short_chat_history)
    app = start_app(node.url)
    room = new_room()
    publisher = Publisher(node.url, "dev", PUBLISHER_SECRET)
    for n in range(45):  # the node keeps the last 20: reading further back is unrecoverable
        publisher.publish(f"public.chat.{room}", {"user": "bot", "text": f"old {n}"})
        publisher.publish("public.elsewhere", {"n": n})

    page = pages(f"{app.url}/rooms/{room}")
    assert page.ready["history"] == "partial"  # older ones existed and were trimmed
    assert page.ready["messages"] == [said("bot", f"old {n}", True) for n in range(25, 45)]


@pytest.mark.node
def test_an_over_long_message_is_refused_with_the_limit_and_not_published(
    app: ChatApp, pages: Callable[..., Page]
) -> None:
    room = new_room()
    writer, reader = pages(f"{app.url}/rooms/{room}"), pages(f"{app.url}/rooms/{room}")
    answer = writer.send("x" * 501, name="ada")
    assert answer["refused"] == "Your message is 501 characters long; the limit is 500."
    assert writer.send("y" * 500)["refused"] == ""
    assert reader.wait("y" * 500) == [said("ada", "y" * 500)]  # the refused one never arrived


@pytest.mark.node
def test_the_form_works_without_javascript_and_needs_its_csrf_token(
    app: ChatApp, connect: Callable[..., Any]
) -> None:
    from tests.rawwamp import EVENT, SUBSCRIBED

    room = new_room()
    watcher = connect()
    assert watcher.subscribe(f"public.chat.{room}")[0] == SUBSCRIBED
    client = Browser(app)
    token = client.csrf(room)

    status, page, _ = client.post(room, {"name": "ada", "text": "no token"})
    assert status == 400 and "This form has expired. Reload the page" in page
    forged = Browser(app)  # another session's token is no good either
    assert forged.post(room, {"csrf_token": token, "name": "eve", "text": "forged"})[0] == 400

    status, page, _ = client.post(room, {"csrf_token": token, "name": "ada", "text": "z" * 501})
    assert status == 400
    assert "Your message is 501 characters long; the limit is 500." in page
    assert f'value="{"z" * 501}"' in page  # kept in the form to be shortened
    status, body, _ = client.post(room, {"csrf_token": token, "name": "ada", "text": XSS}, "application/json")
    assert (status, json.loads(body)) == (200, {"sent": True})
    status, _, headers = client.post(room, {"csrf_token": token, "name": "ada", "text": "plain form"})
    assert (status, headers["Location"]) == (303, f"/rooms/{room}")

    received = [watcher.event() for _ in range(2)]
    assert [msg[0] for msg in received] == [EVENT, EVENT]
    assert [(m[4][0]["user"], m[4][0]["text"]) for m in received] == [("ada", XSS), ("ada", "plain form")]
    status, page = client.get(f"/rooms/{room}")
    assert 'value="ada"' in page  # the name is remembered


@pytest.mark.node
def test_a_key_the_node_rejects_is_a_502_for_the_user_and_the_reason_in_the_log(
    node: Node, start_app: Callable[..., ChatApp]
) -> None:
    app = start_app(node.url, BROKER_SECRET="not-the-dev-secret")
    room = new_room()
    client = Browser(app)
    fields = {"csrf_token": client.csrf(room), "name": "ada", "text": "hello"}
    status, body, _ = client.post(room, fields, "application/json")
    message = "The chat service refused the message; it was not sent. Please tell the site's operator."
    assert (status, json.loads(body)) == (502, {"error": message})
    status, page, _ = client.post(room, fields)
    assert status == 502 and message.replace("'", "&#39;") in page
    log = app.log()
    assert "publish refused, check the chat's BROKER_* settings: HTTP 401 broker.error.unauthenticated" in log
    assert "Traceback" not in log and "not-the-dev-secret" not in log


def limited(config: dict[str, Any]) -> None:
    extra = config["workers"][0]["components"][0]["extra"]
    extra["publishers"]["dev"]["rate_limit"] = {"per_second": 0.01, "burst": 2}


@pytest.mark.node
def test_a_rate_limit_or_a_node_that_is_down_is_told_to_the_user_not_a_500(
    make_node: Callable[..., Node], start_app: Callable[..., ChatApp], pages: Callable[..., Page]
) -> None:
    node = make_node(limited)
    app = start_app(node.url)
    room = new_room()
    page = pages(f"{app.url}/rooms/{room}")
    assert page.send("one", name="ada")["refused"] == ""
    assert page.send("two")["refused"] == ""
    too_fast = r"You are sending messages too fast\. Try again in \d+ s\."
    refused = page.send("three")["refused"]
    assert re.fullmatch(too_fast, refused), refused
    client = Browser(app)
    fields = {"csrf_token": client.csrf(room), "name": "ada", "text": "four"}
    status, body, headers = client.post(room, fields, "application/json")
    assert status == 429 and re.fullmatch(too_fast, json.loads(body)["error"]), body
    assert int(headers["Retry-After"]) >= 1
    assert [m["text"] for m in page.wait("two")] == ["one", "two"]

    node.stop()
    assert page.ask(state="reconnecting")["state"] == "reconnecting"
    answer = page.send("while down")
    assert (
        answer["refused"]
        == "The chat service is unavailable right now; your message was not sent. Try again."
    )
    status, page_html, _ = client.post(room, {"csrf_token": client.csrf(room), "name": "ada", "text": "down"})
    assert status == 503
    assert "The chat service is unavailable right now" in page_html
    opened_while_down = pages(f"{app.url}/rooms/{room}")  # the client cannot even load
    assert (opened_while_down.ready["state"], opened_while_down.ready["history"]) == (
        "unavailable",
        "unavailable",
    )
    assert opened_while_down.ready["notice"].startswith(
        f"Live updates are unavailable: the JS client did not load from {node.url} "
    )
    assert opened_while_down.ready["messages"] == []
    assert opened_while_down.send("still down", name="ada")["refused"].startswith(
        "The chat service is unavailable"
    )
    log = app.log()
    assert "Traceback" not in log and '" 500 ' not in log
    assert '" 429 ' in log and '" 503 ' in log


def test_the_app_loads_no_crossbar_twisted_or_autobahn() -> None:
    code = (
        "import sys; sys.path.insert(0, 'examples/flask_chat'); from chat import create_app; "
        "create_app({'BROKER_SECRET': 's', 'CHAT_SECRET_KEY': 'k'}).test_client().get('/rooms/lobby'); "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'crossbar', 'twisted', 'autobahn'}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
