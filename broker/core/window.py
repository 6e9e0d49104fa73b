"""A bounded window of acknowledged publishes, and the counts ``broker publish --lines`` reports.

Why: a program can print lines far faster than a node acknowledges them. The
publisher sends while :meth:`Window.has_room` and otherwise stops reading its
input, so at most ``size`` events are ever in flight and a slow node slows
the program down (its pipe fills) instead of growing memory. The first
refusal closes the window: nothing is sent after it, and what was already in
flight is still counted as it is acknowledged or refused. No I/O, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Refusal:
    """Why line ``line`` was not published: the error URI and message (the node's, or the CLI's own)."""

    line: int
    uri: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line} refused: {self.uri}: {self.message}"


class Window:
    """Counts lines through their life: read, then skipped, refused, or in flight until acknowledged."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"a window holds at least one publish, not {size}")
        self.size = size
        self.read = 0
        self.skipped = 0
        self.published = 0
        self.refused = 0
        self.in_flight = 0
        #: The first refusal; once set, nothing more is sent.
        self.refusal: Refusal | None = None
        #: Set when the rest can never be acknowledged (the connection was lost): what to say.
        self.lost: str | None = None

    @property
    def stopped(self) -> bool:
        """Whether nothing more may be sent (a refusal, or the connection lost)."""
        return self.refusal is not None or self.lost is not None

    def has_room(self) -> bool:
        """Whether one more publish may be sent now."""
        return not self.stopped and self.in_flight < self.size

    @property
    def drained(self) -> bool:
        """Whether every publish sent has been answered (or can no longer be)."""
        return self.in_flight == 0 or self.lost is not None

    def take(self) -> int:
        """Count one more line read from the input; returns its line number (from 1)."""
        self.read += 1
        return self.read

    def skip(self) -> None:
        """The line just taken is published as nothing (an empty line)."""
        self.skipped += 1

    def send(self) -> None:
        """One publish leaves; call only while :meth:`has_room`."""
        if not self.has_room():
            raise RuntimeError("the window is full or closed")
        self.in_flight += 1

    def acknowledged(self) -> None:
        """One publish in flight was acknowledged: it is published."""
        self.in_flight -= 1
        self.published += 1

    def refuse(self, line: int, uri: str, message: str, in_flight: bool = True) -> None:
        """Line ``line`` was refused: by the node (``in_flight``), or before it was sent."""
        if in_flight:
            self.in_flight -= 1
        self.refused += 1
        if self.refusal is None:
            self.refusal = Refusal(line, uri, message)

    def lose(self, reason: str) -> None:
        """The connection is gone: what is in flight stays unacknowledged, nothing more is sent."""
        if self.lost is None:
            self.lost = reason

    def summary(self) -> str:
        """One line: ``5 lines read, 3 published, 1 refused, 1 skipped (empty)`` (+ unacknowledged)."""
        text = (
            f"{self.read} line{'' if self.read == 1 else 's'} read, {self.published} published, "
            f"{self.refused} refused, {self.skipped} skipped (empty)"
        )
        if self.lost is not None and self.in_flight:
            text += f", {self.in_flight} unacknowledged"
        return text
