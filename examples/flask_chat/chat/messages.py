"""What a chat message may be, checked before anything is published.

Pure functions, so the rules are unit-tested without a server. Lengths count
characters (code points) after surrounding whitespace is stripped; control
characters (newlines, NUL, escape sequences) are refused rather than removed, so what a user sees in
the room is what they typed. Escaping is not done here: the data stays the
text the user typed, and every place that shows it escapes it (Jinja's
autoescaping, ``textContent`` in the page).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

#: the longest message, in characters
MAX_TEXT = 500
#: the longest user name, in characters
MAX_NAME = 32
#: a room's name, which is also the last component of its topic
ROOM_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
#: every room publishes to this prefix plus its name: ``public.`` lets anonymous pages subscribe
TOPIC_PREFIX = "public.chat."


class Invalid(ValueError):
    """The form's input is not a message that can be sent; ``str()`` says why, for the user."""


@dataclass(frozen=True)
class Message:
    """A message that passed the checks."""

    user: str
    text: str


def _has_control_characters(value: str) -> bool:
    return any(unicodedata.category(char) == "Cc" for char in value)


def check_name(raw: str | None) -> str:
    """The user name, stripped; Invalid if it is missing, too long or has control characters."""
    name = (raw or "").strip()
    if not name:
        raise Invalid("Enter your name.")
    if len(name) > MAX_NAME:
        raise Invalid(f"Your name is {len(name)} characters long; the limit is {MAX_NAME}.")
    if _has_control_characters(name):
        raise Invalid("Your name contains control characters.")
    return name


def check_message(name: str | None, text: str | None) -> Message:
    """The message to publish; Invalid, with the reason to show, if it cannot be sent."""
    user = check_name(name)
    body = (text or "").strip()
    if not body:
        raise Invalid("Type a message first.")
    if len(body) > MAX_TEXT:
        raise Invalid(f"Your message is {len(body)} characters long; the limit is {MAX_TEXT}.")
    if _has_control_characters(body):
        raise Invalid("Your message contains control characters.")
    return Message(user, body)


def topic_for(room: str) -> str | None:
    """The topic of ``room``, or None if that is not a valid room name."""
    return TOPIC_PREFIX + room if ROOM_PATTERN.fullmatch(room) else None
