"""Subscribers dropping at random during a publish burst, each recovering what it missed.

Exact, prefix and wildcard subscribers (:class:`tests.faults.gapless.GaplessSubscriber`)
drop their connection at random moments while a backend publishes a burst at a
steady rate, reconnect after a random absence and recover through
``broker.recover``. Payloads mix small, 1 KB and 10 KB events, so what one
absence missed is larger than one WebSocket message may be. The promise, per
subscriber: every event of its pattern exactly once, in order.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable

from tests.faults import Finding, Scale
from tests.faults.gapless import GaplessSubscriber
from tests.node import BACKEND_SECRET, Node
from tests.rawwamp import RawWamp


def patterns(uid: str) -> list[tuple[str, str, Callable[[str], bool]]]:
    """(pattern, match, which topics it covers) for the three policies."""
    base = f"public.fault.{uid}"
    return [
        (f"{base}.t0.price", "exact", lambda t: t == f"{base}.t0.price"),
        (f"{base}.", "prefix", lambda t: t.startswith(f"{base}.")),
        (f"{base}..price", "wildcard", lambda t: t.endswith(".price")),
    ]


def run(node: Node, scale: Scale, seed: int = 11) -> list[Finding]:
    """Publish ``events`` while ``subscribers`` drop and recover; one finding per match policy."""
    rng = random.Random(seed)
    uid = uuid.uuid4().hex[:8]
    events, subscriber_count, rate = scale.count(900), scale.count(6), 300.0
    base = f"public.fault.{uid}"
    topics = [f"{base}.t{i}.price" for i in range(3)] + [f"{base}.t3.volume"]
    kinds = patterns(uid)
    subscribers = [(GaplessSubscriber(*kinds[i % 3][:2]), kinds[i % 3][2]) for i in range(subscriber_count)]
    for sub, _ in subscribers:
        sub.connect(node)
    # payload sizes a real feed mixes: mostly small, some 1 KB, a few 10 KB (recovery pages by size)
    pads = [rng.choice((0, 0, 100, 1000, 10_000)) for _ in range(events)]
    published: list[str] = []
    done = threading.Event()

    def publish() -> None:
        client = RawWamp(node.ws_url, origin=node.origin)
        assert client.hello(authid="backend", secret=BACKEND_SECRET)[0] == 2
        next_at = time.monotonic()
        for n in range(events):
            topic = topics[n % len(topics)]
            reply = client.publish(topic, [n, "x" * pads[n]])
            if reply is not None and reply[0] == 17:
                published.append(topic)
            next_at += 1 / rate
            time.sleep(max(0.0, next_at - time.monotonic()))
        client.close()
        done.set()

    def churn(sub: GaplessSubscriber, seed: int) -> None:
        local = random.Random(seed)
        while not done.is_set():
            sub.read(local.uniform(0.1, 1.2))
            if done.is_set():
                break
            sub.drop()
            time.sleep(local.uniform(0.05, 0.8))  # away: part of the scenario, not a readiness wait
            try:
                sub.connect(node)
            except Exception as exc:  # recorded: the verdict fails on it
                sub.errors.append(f"reconnect: {type(exc).__name__}: {exc}")
                return
        # the burst is over: catch up by one last recovery and the live tail
        sub.drop()
        try:
            sub.connect(node)
            sub.read(1.0)
        except Exception as exc:
            sub.errors.append(f"final recovery: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=publish, daemon=True)]
    threads += [
        threading.Thread(target=churn, args=(sub, rng.randrange(2**32)), daemon=True)
        for sub, _ in subscribers
    ]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(events / rate + 120)
    elapsed = time.monotonic() - started
    findings = []
    for policy in ("exact", "prefix", "wildcard"):
        group = [(sub, covers) for sub, covers in subscribers if sub.match == policy]
        lost = duplicated = reconnects = recovered = 0
        errors: list[str] = []
        for sub, covers in group:
            expected = [n for n, topic in enumerate(published) if covers(topic)]
            got = [n for n in sub.received if isinstance(n, int)]
            lost += len(set(expected) - set(got))
            duplicated += len(got) - len(set(got))
            reconnects += sub.reconnects
            recovered += sub.recovered
            errors += sub.errors
            if got != sorted(got):
                errors.append("events out of order")
            sub.drop()
        findings.append(
            Finding(
                f"{len(group)} {policy} subscribers dropping at random during {len(published)} events at "
                f"{rate:.0f}/s ({elapsed:.0f} s)",
                f"{reconnects} reconnects, {recovered} events recovered, {lost} lost, {duplicated} duplicated"
                + (f"; {len(errors)} errors, first: {errors[0]}" if errors else ""),
                lost == 0 and duplicated == 0 and not errors and len(published) == events,
            )
        )
    return findings
