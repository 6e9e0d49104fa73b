"""One client hurting everyone: fragment floods, a trickling slowloris, long-poll floods.

Each attack runs with a canary subscriber beside it
(:class:`tests.faults.canary.Canary`). The promises: the router cuts the
attacker off after a bounded amount of its input (not at the end of it), the
canary misses nothing and keeps its latency, and real clients still get in.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from typing import Any

from tests.faults import Finding, Scale
from tests.faults.canary import Canary
from tests.faults.wire import RawSocket, close_code, fragments
from tests.node import Node
from tests.rawwamp import HELLO, ROLES, SUBSCRIBE, RawWamp


def fragment_flood(node: Node, scale: Scale) -> list[Finding]:
    """Connections that never send HELLO, each sending a 60 KB message as 1-byte fragments."""
    attackers = scale.count(4)
    message = json.dumps([HELLO, "app", {"roles": ROLES, "x": "y" * 60_000}]).encode()
    flood = fragments(message, 1)
    canary = Canary(node, rate=50).start()
    # what a peer's send() returns says little: the kernel takes all 420 KB at once on
    # loopback. The router's close frame says where it stopped: 1008 at the fragment limit
    # (the message is a valid HELLO, so without the limit the peer joins and stays).
    outcomes: list[tuple[int | None, bool]] = [(None, False)] * attackers

    def attack(i: int) -> None:
        sock = RawSocket(node)
        try:
            sock.send(flood)
            frames, closed = sock.frames(timeout=30)
            outcomes[i] = (close_code(frames), closed)
        finally:
            sock.close()

    started = time.monotonic()
    threads = [threading.Thread(target=attack, args=(i,), daemon=True) for i in range(attackers)]
    for thread in threads:
        thread.start()
    end = time.monotonic() + 120
    for thread in threads:
        thread.join(max(0.0, end - time.monotonic()))
    elapsed = time.monotonic() - started
    report = canary.finish()
    cut = [outcome for outcome in outcomes if outcome == (1008, True)]
    return [
        Finding(
            f"{attackers} connections without HELLO, each a 60 KB message in 1-byte fragments "
            f"({len(flood) // 1000} KB of frames)",
            f"{len(cut)} of {attackers} cut off mid-message (close 1008, connection closed; {elapsed:.1f} s)",
            len(cut) == attackers,
        ),
        Finding("canary subscriber beside the fragment flood", report.figure(), report.ok),
    ]


def _trickle(node: Node, stop: threading.Event, closed_after: list[float], interval: float) -> None:
    sock = socket.create_connection(("127.0.0.1", node.port), timeout=60)
    started = time.monotonic()
    lines = [b"GET /ws HTTP/1.1\r\n", f"Host: 127.0.0.1:{node.port}\r\n".encode()]
    lines += [f"X-Trickle-{n}: {n}\r\n".encode() for n in range(1000)]
    try:
        for line in lines:
            sock.sendall(line)
            sock.settimeout(interval)
            try:
                if sock.recv(4096) == b"":
                    break  # the router closed us
            except TimeoutError:
                pass  # still open: the next line, one interval later
            except (ConnectionResetError, BrokenPipeError):
                break
            if stop.is_set():
                return
    except (ConnectionResetError, BrokenPipeError):
        pass
    finally:
        sock.close()
    closed_after.append(time.monotonic() - started)


def slowloris(node: Node, scale: Scale, deadline: float) -> list[Finding]:
    """Sockets trickling one header line every 2 s, never finishing the request; real clients beside."""
    count = scale.count(38)
    stop = threading.Event()
    closed_after: list[float] = []
    canary = Canary(node, rate=20).start()
    threads = [
        threading.Thread(target=_trickle, args=(node, stop, closed_after, 2.0), daemon=True)
        for _ in range(count)
    ]
    for thread in threads:
        thread.start()
    time.sleep(1.0)  # let the trickles start (pacing the attack, not waiting for readiness)
    late_clients = 0
    errors: list[str] = []
    for _ in range(scale.count(5)):
        try:
            client = RawWamp(node.ws_url, origin=node.origin)
            if client.hello()[0] == 2 and client.subscribe("public.trickle.bystander")[0] == 33:
                late_clients += 1
            client.close()
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
    end = time.monotonic() + deadline + 30
    for thread in threads:
        thread.join(max(0.0, end - time.monotonic()))
    stop.set()
    report = canary.finish()
    longest = max(closed_after, default=float("inf"))
    return [
        Finding(
            f"{count} sockets trickling one HTTP header line every 2 s",
            f"{len(closed_after)} of {count} closed by the router, the last after {longest:.1f} s "
            f"(deadline {deadline:g} s)",
            len(closed_after) == count and longest <= deadline + 5,
        ),
        Finding(
            "real clients connecting during the trickle",
            f"{late_clients} of {scale.count(5)} joined and subscribed"
            + (f"; first error: {errors[0]}" if errors else ""),
            late_clients == scale.count(5),
        ),
        Finding("canary subscriber beside the slowloris", report.figure(), report.ok),
    ]


def _lp_post(node: Node, path: str, body: bytes, timeout: float = 20) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", node.port, timeout=timeout)
    try:
        conn.request("POST", f"/lp/{path}", body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, response.read()
    except (ConnectionResetError, BrokenPipeError) as exc:
        return -1, str(exc).encode()
    finally:
        conn.close()


def _lp_open(node: Node) -> str:
    status, body = _lp_post(node, "open", json.dumps({"protocols": ["wamp.2.json"]}).encode())
    if status != 200:
        raise ConnectionError(f"/lp/open answered {status}: {body[:200]!r}")
    return str(json.loads(body)["transport"])


def longpoll_flood(node: Node, scale: Scale) -> list[Finding]:
    """Oversize long-poll sends (1 and 16 MiB) and subscriptions to 8 MiB topic URIs, a canary beside."""
    canary = Canary(node, rate=50).start()
    answers: list[Any] = []
    for size in (2**20, 16 * 2**20):
        transport = _lp_open(node)
        answers.append(("send", size, _lp_post(node, f"{transport}/send", b"[" + b" " * size + b"]")[0]))
    refused_subscribes = 0
    for _ in range(scale.count(4)):
        transport = _lp_open(node)
        _lp_post(node, f"{transport}/send", json.dumps([HELLO, "app", {"roles": ROLES}]).encode())
        status, _ = _lp_post(
            node, f"{transport}/send", json.dumps([SUBSCRIBE, 1, {}, "public." + "a" * 8 * 2**20]).encode()
        )
        refused_subscribes += status != 204
    report = canary.finish()
    oversize_refused = all(status in (413, 400) for _, _, status in answers)
    return [
        Finding(
            "long-poll sends of 1 MiB and 16 MiB (the WebSocket limit is 64 KiB)",
            ", ".join(f"{size // 2**20} MiB: HTTP {status}" for _, size, status in answers),
            oversize_refused,
        ),
        Finding(
            f"{scale.count(4)} anonymous long-poll sessions subscribing to 8 MiB topic URIs",
            f"{refused_subscribes} of {scale.count(4)} refused",
            refused_subscribes == scale.count(4),
        ),
        Finding("canary subscriber beside the long-poll flood", report.figure(), report.ok),
    ]


def run(node: Node, scale: Scale) -> list[Finding]:
    """Every flood against ``node``, one after another."""
    findings = fragment_flood(node, scale)
    findings += longpoll_flood(node, scale)
    return findings


def small_budget(config: dict[str, Any]) -> None:
    """A node whose connection budget a slowloris can fill: 40 connections."""
    config["workers"][0]["transports"][0]["max_connections"] = 40


def run_slowloris(node: Node, scale: Scale) -> list[Finding]:
    """The slowloris against a node with :func:`small_budget`: 36 trickling sockets (bounded size) and
    the canary's two connections leave no slot unless trickling ones cannot hold them all."""
    web = json.loads(node.config_path().read_text())["workers"][0]["transports"][0]
    return slowloris(node, scale, float(web["options"]["client_timeout"]))
