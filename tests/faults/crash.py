"""A node with SQLite history stopped mid-stream: kill -9, SIGTERM, a killed router worker.

A backend publishes acknowledged events at a steady rate while a gapless
subscriber (:class:`tests.faults.gapless.GaplessSubscriber`) reads them; the
node is stopped one of three ways mid-stream and started again at the same
address from the same directory. Both clients reconnect (bounded retries) and
the subscriber recovers. The promises: every event the node acknowledged
reaches the subscriber exactly once; a SIGTERM is an ordinary stop (exit 0);
a node whose router worker dies exits non-zero (so its supervisor restarts
it) instead of staying up half-alive.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from typing import Any

from tests.faults import Finding, Scale
from tests.faults.gapless import GaplessSubscriber
from tests.node import BACKEND_SECRET, Node, children
from tests.rawwamp import RawWamp

#: How the node is stopped, and the exit status that promise allows.
STOPS: dict[str, tuple[str, Any]] = {
    "kill -9 of the node": ("killed", lambda status: True),  # nothing to promise about SIGKILL's status
    "SIGTERM to the node": ("exit 0", lambda status: status == 0),
    "kill -9 of the router worker": ("exit non-zero", lambda status: status not in (0, None)),
}


def sqlite_store(config: dict[str, Any]) -> None:
    extra = config["workers"][0]["components"][0]["extra"]
    extra["history"]["store"] = {"type": "sqlite", "path": "history.sqlite3"}


def _connect_within(make: Any, seconds: float) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        try:
            return make()
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)  # the node is restarting: retry, bounded by the deadline


def _stop(node: Node, how: str) -> int | None:
    if how == "kill -9 of the node":
        return node.stop(signal.SIGKILL)
    if how == "SIGTERM to the node":
        return node.stop(signal.SIGTERM)
    for pid in children(node.pid):
        os.kill(pid, signal.SIGKILL)
    assert node.proc is not None
    try:
        return node.proc.wait(20)
    except Exception:
        return node.stop(signal.SIGKILL) and None


def run(workdir: Any, scale: Scale) -> list[Finding]:
    """Each way of stopping, once, on a fresh node; one finding for delivery, one for the status."""
    findings = []
    for n, how in enumerate(STOPS):
        node = Node(workdir / f"crash{n}", mutate=sqlite_store)
        try:
            findings += _one(node, how, scale)
        finally:
            node.stop()  # whatever happened: a scenario never leaves its node running
    return findings


def _one(node: Node, how: str, scale: Scale) -> list[Finding]:
    node.start()
    port = node.port
    topic = f"public.crash.{uuid.uuid4().hex[:8]}"
    events, rate = scale.count(300), 150.0
    acked: list[int] = []
    sub = GaplessSubscriber(topic, "exact")
    sub.connect(node)
    stopped = threading.Event()
    restarted = threading.Event()
    finished = threading.Event()

    def backend() -> RawWamp:
        client = RawWamp(node.ws_url, origin=node.origin)
        if client.hello(authid="backend", secret=BACKEND_SECRET)[0] != 2:
            raise ConnectionError("no WELCOME")
        return client

    def publish() -> None:
        client = backend()
        n = 0
        while n < events:
            try:
                reply = client.publish(topic, [n])
                if reply is not None and reply[0] == 17:
                    acked.append(n)
                n += 1
                time.sleep(1 / rate)  # the stream's pace
            except Exception:
                restarted.wait(60)
                client = _connect_within(backend, 60)
                n += 1  # that one may or may not have been stored: it was not acknowledged
        client.close()
        finished.set()

    def read() -> None:
        while not (finished.is_set() and len(sub.received) >= len(acked)):
            try:
                sub.read(0.5)
                if sub.client is None:
                    raise ConnectionError("gone")
            except Exception:
                sub.drop()
                restarted.wait(60)
                try:
                    _connect_within(lambda: sub.connect(node), 60)
                except Exception as exc:
                    sub.errors.append(f"reconnect: {type(exc).__name__}: {exc}")
                    return
            if finished.wait(0) and time.monotonic() > deadline:
                return

    deadline = time.monotonic() + events / rate + 90
    threads = [threading.Thread(target=publish, daemon=True), threading.Thread(target=read, daemon=True)]
    for thread in threads:
        thread.start()
    while len(acked) < events // 2 and time.monotonic() < deadline:
        time.sleep(0.02)  # mid-stream: half the events acknowledged
    status = _stop(node, how)
    stopped.set()
    node.fixed_port = port
    node.start()
    restarted.set()
    for thread in threads:
        thread.join(max(1.0, deadline - time.monotonic()))
    got = [n for n in sub.received if isinstance(n, int)]
    lost = sorted(set(acked) - set(got))
    duplicated = len(got) - len(set(got))
    extra = len(set(got) - set(acked))
    node.stop()
    sub.drop()
    label, promise = STOPS[how]
    return [
        Finding(
            f"{how} with SQLite history after {events // 2} of {events} acknowledged events, restarted",
            f"{len(acked)} acknowledged, {len(got)} received, {len(lost)} lost, {duplicated} duplicated, "
            f"{extra} unacknowledged but stored"
            + (f"; lost: {lost[:10]}" if lost else "")
            + (f"; errors: {sub.errors[0]}" if sub.errors else ""),
            not lost and not duplicated and not sub.errors,
        ),
        Finding(f"{how}: exit status ({label} expected)", f"exit status {status}", bool(promise(status))),
    ]
