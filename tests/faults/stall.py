"""A subscriber that stops reading while events flow: the router's memory, measured.

A raw WebSocket subscriber with a small receive buffer subscribes and then
never reads again; a backend publishes large events to its topic while a
canary subscribes beside it. Without a bound, everything routed to the stalled
peer waits in the router (crossbar #874: +200 MB in 2.5 s). The promises: the
router worker's resident memory grows by at most a few times
``slow_subscriber.max_buffer_bytes``, the stalled peer is let go, and the
canary misses nothing.
"""

from __future__ import annotations

import json
import socket
import uuid
from pathlib import Path

from tests.faults import Finding, Scale
from tests.faults.canary import Canary
from tests.faults.wire import RawSocket, frame
from tests.node import BACKEND_SECRET, Node, children
from tests.rawwamp import HELLO, ROLES, SUBSCRIBE, RawWamp

#: Router growth the stalled peer may add: the 1 MiB slow-subscriber bound plus the allocator's slack.
MAX_GROWTH_BYTES = 16 * 2**20


def rss(pid: int) -> int:
    """Resident memory of ``pid`` in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise LookupError(f"no VmRSS for {pid}")


def _publish_burst(node: Node, worker: int, topic: str, events: int) -> tuple[int, int]:
    """Publish ``events`` events of 60 KB to ``topic``; the worker's RSS before and at its peak."""
    publisher = RawWamp(node.ws_url, origin=node.origin)
    assert publisher.hello(authid="backend", secret=BACKEND_SECRET)[0] == 2
    before = peak = rss(worker)
    payload = "x" * 60_000
    for n in range(events):
        publisher.publish(topic, [n, payload], acknowledge=n % 50 == 0)  # paced by an ack now and then
        if n % 50 == 0:
            peak = max(peak, rss(worker))
    publisher.publish(topic, [events], acknowledge=True)
    publisher.close()
    return before, max(peak, rss(worker))


def run(node: Node, scale: Scale) -> list[Finding]:
    """The same burst twice: to a topic nobody stalls on, then to one a stalled peer subscribed.

    Both bursts grow the router by what history keeps of them (``max_events`` of
    60 KB each); what the stalled peer costs is the difference.
    """
    (worker,) = children(node.pid)
    uid = uuid.uuid4().hex[:8]
    events = scale.count(1500)
    base_before, base_peak = _publish_burst(node, worker, f"public.stall.{uid}.free", events)
    topic = f"public.stall.{uid}.stalled"
    stalled = RawSocket(node)
    stalled.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.send(frame(json.dumps([HELLO, "app", {"roles": ROLES}]).encode()))
    stalled.send(frame(json.dumps([SUBSCRIBE, 1, {}, topic]).encode()))
    welcome, _ = stalled.frames(timeout=2)  # WELCOME and SUBSCRIBED (or what came before 2 s)
    canary = Canary(node, rate=50).start()
    before, peak = _publish_burst(node, worker, topic, events)
    _, closed = stalled.frames(timeout=10)
    stalled.close()
    report = canary.finish()
    growth = (peak - before) - (base_peak - base_before)
    mib = 2**20
    return [
        Finding(
            f"a subscriber that stops reading, {events} events of 60 KB ({events * 60 / 1000:.0f} MB) to it",
            f"router RSS +{(peak - before) / mib:.0f} MiB, +{(base_peak - base_before) / mib:.0f} MiB "
            f"for the same burst without it: {growth / mib:+.0f} MiB for the stalled peer",
            growth <= MAX_GROWTH_BYTES,
            f"allowed: +{MAX_GROWTH_BYTES / mib:.0f} MiB",
        ),
        Finding(
            "the stalled subscriber is let go",
            "closed by the router" if closed else "still connected",
            closed and bool(welcome),
        ),
        Finding("canary subscriber beside the stalled one", report.figure(), report.ok),
    ]
