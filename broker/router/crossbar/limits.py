"""The two limits the WebSocket patches read on every connection or send, changed by a live reload.

Why a module of their own: the HELLO deadline (:mod:`.hello`) and the
slow-subscriber bound (:mod:`.backpressure`) are set when the patches are
installed, and ``broker reload`` changes them without re-patching
(:func:`configure`); both read them from here at the moment they apply.
"""

from __future__ import annotations

from typing import Any

#: ``hello_timeout`` (float) and ``max_buffer_bytes`` (int), once the patches are installed (empty
#: before); ``Any`` as tests replace the dict whole.
_installed: dict[str, Any] = {}


def set_initial(hello_timeout: float, max_buffer_bytes: int) -> None:
    """The limits the patches start with (at install)."""
    _installed.update(hello_timeout=hello_timeout, max_buffer_bytes=max_buffer_bytes)


def configure(hello_timeout: float, max_buffer_bytes: int) -> None:
    """Change the HELLO deadline and the slow-subscriber limit of an installed node (a live
    reload): new connections get the new deadline, every send checks the new limit."""
    if _installed:
        _installed.update(hello_timeout=hello_timeout, max_buffer_bytes=max_buffer_bytes)
