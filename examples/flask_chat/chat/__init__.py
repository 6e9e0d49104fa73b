"""A chat room in Flask, live in the browser through Broker: Flask-SocketIO's demo without sockets in Flask.

Why this shape: the Flask app never holds a connection open. A message is an
ordinary form POST, which the app checks and publishes with Broker's
publisher SDK (:class:`broker.client.Publisher`, stdlib HTTP, no crossbar);
the page takes the JS client from the node and subscribes to the room's
topic there. So any WSGI server runs it as it runs any Flask app, with no
eventlet, gevent or sticky sessions, and a page opened later reads the room's
recent messages from the node's history (``broker.recover``), not from a
database of the app's own.

CSRF: the form carries a per-session token (kept in Flask's signed session
cookie, ``SameSite=Lax``) that every POST must echo; the page's script posts
the same form with ``fetch``, so one check covers both. A JSON API checked by
``Origin`` alone would also work, but the token keeps the form usable without
JavaScript and does not depend on every browser and proxy passing ``Origin``.

Run it (from the repository root, a node running): ``flask --app examples/flask_chat/chat run``.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, abort, jsonify, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from broker.client import Publisher, PublishError, RateLimited, Unavailable

from . import settings as chat_settings
from .messages import MAX_NAME, MAX_TEXT, Invalid, check_message, topic_for

log = logging.getLogger("chat")

#: how many of the room's newest messages a page shows on load (read from history)
HISTORY_LIMIT = 50


class Failed(Exception):
    """A POST that sends nothing: ``message`` is shown to the user, ``status`` answered
    (with ``Retry-After`` when the node gave a hint)."""

    def __init__(self, message: str, status: int, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.retry_after = retry_after


def refusal(exc: PublishError) -> Failed:
    """What the user is told when the node did not take the message; the details go to the log."""
    if isinstance(exc, RateLimited):
        log.warning("publish refused: %s", exc)
        wait = f" in {max(1, round(exc.retry_after))} s" if exc.retry_after else " in a moment"
        return Failed(f"You are sending messages too fast. Try again{wait}.", 429, exc.retry_after)
    if isinstance(exc, Unavailable):
        log.warning("publish failed: %s", exc)
        message = "The chat service is unavailable right now; your message was not sent. Try again."
        return Failed(message, 503, exc.retry_after)
    # a key, secret or grant that does not fit the node: the user can do nothing about it
    log.error("publish refused, check the chat's BROKER_* settings: %s", exc)
    return Failed(
        "The chat service refused the message; it was not sent. Please tell the site's operator.", 502
    )


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def csp(public_url: str) -> str:
    """The Content-Security-Policy: scripts only from here and the node, no inline ones."""
    node = _origin(public_url)
    ws = node.replace("http", "ws", 1)
    return (
        f"default-src 'self'; script-src 'self' {node}; connect-src 'self' {node} {ws}; "
        "img-src 'self'; style-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )


def csrf_token() -> str:
    """This session's CSRF token, created on first use."""
    token = session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


def csrf_ok(sent: str | None) -> bool:
    """Whether the POST echoed this session's token (compared in constant time)."""
    expected = session.get("csrf")
    return isinstance(expected, str) and isinstance(sent, str) and hmac.compare_digest(expected, sent)


def wants_json() -> bool:
    """The page's script asks for JSON; a plain form POST gets HTML."""
    return request.accept_mimetypes.best == "application/json"


def create_app(environ: dict[str, str] | None = None) -> Flask:
    """The chat app, configured from ``environ`` (default: the process environment)."""
    config = chat_settings.load() if environ is None else chat_settings.load(environ)
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=config.secret_key,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_HTTPONLY=True,
        MAX_CONTENT_LENGTH=16 * 1024,
    )
    if not config.secret_key_set:
        log.warning("CHAT_SECRET_KEY is not set: sessions last until this process ends and are not shared")
    publisher = Publisher(config.broker_url, config.key_id, config.secret, timeout=config.timeout, retries=2)
    policy = csp(config.public_url)

    @app.after_request
    def security_headers(response: Response) -> Response:
        response.headers["Content-Security-Policy"] = policy
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        return response

    def room_page(
        room: str, status: int = 200, error: str = "", name: str | None = None, text: str = ""
    ) -> tuple[str, int]:
        page = render_template(
            "room.html",
            room=room,
            topic=topic_for(room),
            public_url=config.public_url,
            csrf=csrf_token(),
            name=session.get("name", "") if name is None else name,
            text=text,
            error=error,
            history_limit=HISTORY_LIMIT,
            max_name=MAX_NAME,
            max_text=MAX_TEXT,
        )
        return page, status

    @app.get("/")
    def index() -> Response:
        return redirect(url_for("room", room="lobby"))

    @app.get("/rooms/<room>")
    def room(room: str) -> tuple[str, int]:
        if topic_for(room) is None:
            abort(404)
        return room_page(room)

    @app.post("/rooms/<room>/messages")
    def post_message(room: str) -> Any:
        topic = topic_for(room)
        if topic is None:
            abort(404)
        form = request.form
        try:
            if not csrf_ok(form.get("csrf_token")):
                raise Failed("This form has expired. Reload the page and send your message again.", 400)
            try:
                message = check_message(form.get("name"), form.get("text"))
            except Invalid as exc:
                raise Failed(str(exc), 400) from exc
            session["name"] = message.user
            sent_at = datetime.now(UTC).isoformat(timespec="seconds")
            try:
                publisher.publish(topic, {"user": message.user, "text": message.text, "at": sent_at})
            except PublishError as exc:
                raise refusal(exc) from exc
        except Failed as failed:
            headers = {"Retry-After": str(max(1, round(failed.retry_after)))} if failed.retry_after else {}
            if wants_json():
                return jsonify(error=failed.message), failed.status, headers
            page, status = room_page(
                room, failed.status, failed.message, form.get("name", ""), form.get("text", "")
            )
            return page, status, headers
        if wants_json():
            return jsonify(sent=True)
        return redirect(url_for("room", room=room), 303)

    return app
