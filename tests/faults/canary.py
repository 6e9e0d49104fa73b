"""A canary: a subscriber beside the attack that must get every event, in order.

A publisher thread sends numbered events to one topic at a steady rate while a
scenario runs; the canary subscriber reads them in a thread of its own. After
the attack, :meth:`Canary.finish` says how many were lost, duplicated or late.
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from dataclasses import dataclass, field

from tests.node import BACKEND_SECRET, Node
from tests.rawwamp import SUBSCRIBED, RawWamp


@dataclass
class CanaryReport:
    sent: int
    received: int
    lost: int
    duplicated: int
    out_of_order: int
    max_lateness: float
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error and self.lost == 0 and self.duplicated == 0 and self.out_of_order == 0

    def figure(self) -> str:
        text = (
            f"canary: {self.received}/{self.sent} events, {self.lost} lost, {self.duplicated} duplicated, "
            f"max lateness {self.max_lateness * 1000:.0f} ms"
        )
        return f"{text} ({self.error})" if self.error else text


@dataclass
class Canary:
    """Publishes ``rate`` events/s to a fresh ``public.`` topic and receives them."""

    node: Node
    rate: float = 50.0
    topic: str = field(default_factory=lambda: f"public.canary.{uuid.uuid4().hex[:8]}")

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._sent: dict[int, float] = {}
        self._received: list[tuple[int, float]] = []
        self._error = ""
        self.subscriber = RawWamp(self.node.ws_url, origin=self.node.origin)
        assert self.subscriber.hello()[0] == 2
        assert self.subscriber.subscribe(self.topic)[0] == SUBSCRIBED
        self.publisher = RawWamp(self.node.ws_url, origin=self.node.origin)
        assert self.publisher.hello(authid="backend", secret=BACKEND_SECRET)[0] == 2
        self._threads = [threading.Thread(target=self._publish, daemon=True)]
        self._reader = threading.Thread(target=self._read, daemon=True)

    def start(self) -> Canary:
        self._reader.start()
        for thread in self._threads:
            thread.start()
        return self

    def _publish(self) -> None:
        n, interval, next_at = 0, 1.0 / self.rate, time.monotonic()
        try:
            while not self._stop.is_set():
                self._sent[n] = time.monotonic()
                self.publisher.publish(self.topic, [n], acknowledge=False)
                n += 1
                next_at += interval
                self._stop.wait(max(0.0, next_at - time.monotonic()))
        except Exception as exc:  # the report names it; the scenario's verdict fails
            self._error = f"publisher: {type(exc).__name__}: {exc}"

    def _read(self) -> None:
        try:
            while True:
                msg = self.subscriber.recv(timeout=30)
                if msg[0] == 36 and msg[4]:
                    self._received.append((msg[4][0], time.monotonic()))
                    if self._stop.is_set() and len(self._received) >= len(self._sent):
                        return
        except Exception as exc:
            if not self._stop.is_set() or len(self._received) < len(self._sent):
                self._error = self._error or f"subscriber: {type(exc).__name__}: {exc}"

    def finish(self, timeout: float = 30) -> CanaryReport:
        """Stop publishing, wait for the stragglers, close both clients and report."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        deadline = time.monotonic() + timeout
        while len(self._received) < len(self._sent) and time.monotonic() < deadline and not self._error:
            time.sleep(0.05)  # polling a counter the reader thread fills; bounded by the deadline
        self.subscriber.close()
        self.publisher.close()
        self._reader.join(5)
        seen = [n for n, _ in self._received]
        unique = set(seen)
        lateness = [at - self._sent[n] for n, at in self._received if n in self._sent]
        return CanaryReport(
            sent=len(self._sent),
            received=len(seen),
            lost=len(set(self._sent) - unique),
            duplicated=len(seen) - len(unique),
            out_of_order=sum(1 for a, b in itertools.pairwise(seen) if b < a),
            max_lateness=max(lateness, default=0.0),
            error=self._error,
        )
