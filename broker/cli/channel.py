"""A joined session's WebSocket, borrowed for ``broker publish --lines``: PUBLISH out, PUBLISHED in, raw.

Why: through autobahn, every line cost the command line a message object,
a serializer call, a Deferred, a frame built and, back, a frame parsed, a
message object and a Deferred resolved — more CPU per line than the node
spent on it, so the two took turns instead of working side by side. The
session is joined (authenticated, its errors reported) by autobahn as for
any command; then :class:`Channel` takes the connection's incoming bytes
while the lines are published: it writes each batch of PUBLISH messages as
one write, reads the PUBLISHED and ERROR answers itself and answers pings.
The first frame it does not read (a GOODBYE, an ABORT, a close, anything
unexpected) and everything after it go back to autobahn, which ends the
session as usual; so does everything once :meth:`Channel.release` is
called, before the session leaves. The connection's loss still reaches
autobahn (and the session's ``disconnected``) as always.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Final

from broker.core import wsframe

#: WAMP message types read here.
ERROR: Final = 8
PUBLISH: Final = 16
PUBLISHED: Final = 17
GOODBYE: Final = 6
ABORT: Final = 3
#: What ends the publishing when the router sends what this does not read.
_UNEXPECTED: Final = (
    "wamp.error.protocol_violation",
    "the router sent a message this command does not expect",
)


class Channel:
    """Sends PUBLISH messages and hands their answers to ``on_answer`` until released.

    ``on_answer(request, error)`` gets each answer: ``error`` None for
    PUBLISHED, else ``(uri, message)``. ``on_batch()`` runs once after each
    read's answers (the time to send more). ``on_end(uri, message)`` runs
    when the router ends the session (GOODBYE or ABORT) or sends what this
    does not read; autobahn then has the connection back.
    """

    def __init__(
        self,
        protocol: Any,
        on_answer: Callable[[int, tuple[str, str] | None], None],
        on_batch: Callable[[], None],
        on_end: Callable[[str, str], None],
    ) -> None:
        self._protocol = protocol
        self._transport = protocol.transport
        self._autobahn = protocol.dataReceived
        self._buffer = b""
        self._on_answer = on_answer
        self._on_batch = on_batch
        self._on_end = on_end
        self.released = False
        protocol.dataReceived = self._received  # this connection's own handler, until released

    def send(self, messages: list[bytes]) -> None:
        """WAMP messages (serialized JSON), as text frames in one write."""
        if not self.released:
            self._transport.write(wsframe.client_frames(wsframe.TEXT, messages))

    def release(self) -> None:
        """Give the connection back to autobahn, with whatever part of a frame arrived."""
        if self.released:
            return
        self.released = True
        del self._protocol.dataReceived  # the class's own handler again
        rest, self._buffer = self._buffer, b""
        if rest:
            self._autobahn(rest)

    def _received(self, data: bytes) -> None:
        buffer = self._buffer + data if self._buffer else data
        at = 0
        while True:
            frame = wsframe.parse(buffer, at)
            if frame is None:
                break
            opcode, payload, end = frame
            if opcode == wsframe.TEXT:
                answer = _answer(payload)
                if answer is None:
                    self._buffer = buffer[at:]
                    self._hand_back(_ending(payload))
                    return
                self._on_answer(*answer)
            elif opcode == wsframe.PING:
                self._transport.write(wsframe.client_frames(wsframe.PONG, [payload]))
            elif opcode == wsframe.CLOSE:  # autobahn closes; the loss reaches the session as always
                self._buffer = buffer[at:]
                self.release()
                return
            elif opcode != wsframe.PONG:  # a frame not read here
                self._buffer = buffer[at:]
                self._hand_back(_UNEXPECTED)
                return
            at = end
        self._buffer = buffer[at:]
        self._on_batch()

    def _hand_back(self, ending: tuple[str, str]) -> None:
        self._on_end(*ending)
        self.release()


def _answer(payload: bytes) -> tuple[int, tuple[str, str] | None] | None:
    """A PUBLISHED's or a PUBLISH ERROR's ``(request, error)``; None for any other message."""
    try:
        message = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(message, list) or len(message) < 3:
        return None
    kind = message[0]
    if kind == PUBLISHED and len(message) == 3 and isinstance(message[1], int):
        return message[1], None
    if kind == ERROR and len(message) >= 5 and message[1] == PUBLISH and isinstance(message[2], int):
        args = message[5] if len(message) > 5 and isinstance(message[5], list) else []
        return message[2], (str(message[4]), " ".join(str(a) for a in args))
    return None


def _ending(payload: bytes) -> tuple[str, str]:
    """What a GOODBYE or ABORT says (reason, message); what else the router sent, otherwise."""
    try:
        message = json.loads(payload)
    except ValueError:
        message = None
    if isinstance(message, list) and len(message) == 3 and message[0] in (GOODBYE, ABORT):
        details = message[1] if isinstance(message[1], dict) else {}
        return str(message[2]), str(details.get("message", ""))
    return _UNEXPECTED
