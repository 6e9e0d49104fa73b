"""How much one connection may make the router do before it has earned it: the rules, without Twisted.

Two floods cost the router far more than the bytes they send:

* **Tiny WebSocket frames.** Autobahn spends 7-15 µs of Python on every frame
  whatever its size, and a masked frame can carry one byte in seven: a 60 KB
  message sent as 1-byte fragments is 60,000 frames, about 0.9 s of the one
  core the router has, and no ``max_message_size`` notices (an empty fragment
  does not even grow the message). Four such connections, none of which had
  sent HELLO, delayed every other client's events by up to 1.9 s. A message
  may therefore have at most :data:`MAX_FRAGMENTS` frames, a peer may send
  control frames (ping, pong) only at :data:`CONTROL_FRAMES_PER_SECOND` after
  a burst of :data:`CONTROL_FRAME_BURST`, and a peer the router has sent a
  close frame gets :data:`MAX_FRAMES_AFTER_CLOSE` more frames to answer it;
  past any of these the router reads no more of what it sends.
* **Trickled HTTP requests** (slowloris). ``client_timeout`` is an idle
  timeout, so one byte every few seconds keeps a half-sent request open
  forever, and enough of them take every slot of ``max_connections``. A
  connection that is waiting for its request (from accept, or from its
  previous response on a kept-alive connection, until the request's last byte)
  has ``client_timeout`` seconds in all. It sits in a :class:`WaitingRoom`,
  and stays there once it is a WebSocket until its WAMP session joins; when
  the port is at its connection cap a new connection takes the slot of the one
  that has waited longest rather than being refused.

:mod:`broker.router.crossbar.connections` applies these rules to crossbar's transports.
"""

from __future__ import annotations

from typing import Final, Generic, TypeVar

#: Frames one WebSocket message may arrive in. Browsers and AutobahnJS never
#: fragment; libraries that do use fragments of kilobytes (64 of 1 KiB is
#: already a whole 64 KiB message).
MAX_FRAGMENTS: Final = 64
#: Control frames (ping, pong) a peer may send per second on average. Broker
#: pings every 10 s, and a client that pings the router needs one every few seconds.
CONTROL_FRAMES_PER_SECOND: Final = 10
#: Control frames a peer may send at once before :data:`CONTROL_FRAMES_PER_SECOND` applies.
CONTROL_FRAME_BURST: Final = 50
#: Frames a peer may still send after the router sent it a close frame (its
#: close reply, and what it had in flight); later ones are not read.
MAX_FRAMES_AFTER_CLOSE: Final = 64


def too_many_fragments() -> str:
    """The close reason for a message in more than :data:`MAX_FRAGMENTS` frames."""
    return f"WebSocket message in more than {MAX_FRAGMENTS} fragments"


def too_many_control_frames() -> str:
    """The close reason for a peer over its control frame budget."""
    return (
        f"more than {CONTROL_FRAME_BURST} WebSocket control frames at once "
        f"or {CONTROL_FRAMES_PER_SECOND} per second"
    )


def request_timeout(seconds: float) -> str:
    """What a connection that did not send its whole request in time is told."""
    return f"request not received within {seconds:g} s"


T = TypeVar("T")


class WaitingRoom(Generic[T]):
    """The connections of one listening port that are waiting for their request, oldest first."""

    def __init__(self) -> None:
        self._waiting: dict[T, None] = {}  # insertion order: the order they started waiting

    def wait(self, connection: T) -> None:
        """``connection`` starts waiting (again: it goes to the back)."""
        self._waiting.pop(connection, None)
        self._waiting[connection] = None

    def leave(self, connection: T) -> None:
        """``connection`` got its request, or is gone; nothing if it was not waiting."""
        self._waiting.pop(connection, None)

    def oldest(self) -> T | None:
        """The connection that has waited longest, or None; it leaves the room."""
        for connection in self._waiting:
            del self._waiting[connection]
            return connection
        return None

    def __len__(self) -> int:
        return len(self._waiting)
