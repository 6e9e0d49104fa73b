"""HTTP publish: Broker's signed ``POST /api/publish`` against crossbar's own publisher bridge.

Why: backends publish over HTTP, and crossbar already ships an HTTP
``publisher`` bridge that Broker deliberately does not expose (it accepts
replays, signs without separators, answers 200 for refused events). This
measures what Broker's stricter endpoint costs: requests/s for single-event
publishes and events/s for batches of 100, under the same load against a
plain crossbar 26.10 node with a signed and an unsigned ``publisher`` path.

Load: several client processes, each with a few threads, each thread one
keep-alive HTTP/1.1 connection (:class:`KeepAlive`, a minimal socket client:
``http.client`` took more client CPU per request than the router's work, on
the same two cores) posting back to back for a fixed time, each request
signed anew (fresh nonce and timestamp); a request counts only when answered
200 with no error in the body. One
WebSocket subscriber listens on the topic on each node, so every event is
really dispatched. Broker's node runs the project config (positions,
history, metrics) with the dev key's rate limit removed; requests carry no
idempotency key (crossbar has none to compare with). A second Broker node
runs on the Redis engine (its own redis-server), and the router worker's CPU
per request and per event is measured with psutil. The section ends with
issue 16's verdicts: single requests at least 1.5x crossbar's signed bridge,
a batch of 100 at least 50,000 events/s, on each engine.

    .venv/bin/python -m bench.http_publish [--quick]
"""

from __future__ import annotations

import argparse
import base64
import datetime
import hashlib
import hmac
import http.client
import json
import multiprocessing
import os
import re
import socket
import sys
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import psutil

from bench import report as report_module
from bench.plainnode import PlainNode
from bench.report import Progress, Section, progress
from bench.wsload import Fleet
from broker.core import signing
from tests.node import PUBLISHER_SECRET, Node
from tests.redisserver import RedisServer

TOPIC = "public.httpbench"
PAYLOAD = {"symbol": "ACME", "price": 123.45, "volume": 1000, "note": "x" * 40}
BATCH = 100
#: The signed crossbar path's key and secret (bench-only, loopback).
CB_KEY, CB_SECRET = "bench", "bench-bridge-secret"
#: Issue 16's targets: single requests against crossbar's signed bridge, and a batch's events/s.
SINGLE_RATIO, BATCH_EVENTS = 1.5, 50_000
SINGLE, BATCHED = "Broker /api/publish, single", f"Broker /api/publish, batch of {BATCH}"
REDIS_SINGLE, REDIS_BATCHED = f"{SINGLE}, Redis engine", f"{BATCHED}, Redis engine"
SIGNED = "crossbar bridge, signed"


def no_rate_limit(config: dict[str, Any]) -> None:
    """Broker's project config without the dev key's rate limit (1000/s would cap the bench)."""
    config["workers"][0]["components"][0]["extra"]["publishers"]["dev"].pop("rate_limit", None)


#: crossbar's HTTP publisher bridge, unsigned and signed (the notes' tested options, with a
#: body limit), publishing as the plain node's ``anonymous`` role (allowed everything, cached).
BRIDGE_PATHS = {
    "publish": {"type": "publisher", "realm": "app", "role": "anonymous"},
    "publish-signed": {
        "type": "publisher",
        "realm": "app",
        "role": "anonymous",
        "options": {
            "key": CB_KEY,
            "secret": CB_SECRET,
            "post_body_limit": 65536,
            "timestamp_delta_limit": 300,
        },
    },
}


# -- requests, one kind per target: (method path, headers, body, events per request) --------
def broker_body(batch: int) -> bytes:
    """The JSON body of one Broker request (the same for every request of a kind)."""
    if batch == 1:
        return json.dumps({"topic": TOPIC, "data": PAYLOAD}).encode()
    return json.dumps({"events": [{"topic": TOPIC, "data": PAYLOAD}] * batch}).encode()


def broker_request(batch: int, body: bytes | None = None) -> tuple[str, dict[str, str], bytes]:
    """One signed request: a fresh nonce and timestamp signed over ``body`` (the SDK's signing)."""
    body = broker_body(batch) if body is None else body
    headers = signing.sign_headers("dev", PUBLISHER_SECRET, "POST", "/api/publish", body)
    return "/api/publish", {"Content-Type": "application/json", **headers}, body


def crossbar_request(signed: bool) -> tuple[str, dict[str, str], bytes]:
    body = json.dumps({"topic": TOPIC, "args": [PAYLOAD]}).encode()
    headers = {"Content-Type": "application/json"}
    if not signed:
        return "/publish", headers, body
    # crossbar's scheme: base64url(HMAC-SHA256(secret, key|timestamp|seq|nonce|body)), in the query
    now = datetime.datetime.now(datetime.UTC)
    timestamp = now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
    seq, nonce = str(time.monotonic_ns()), str(int.from_bytes(os.urandom(6), "big"))
    mac = hmac.new(CB_SECRET.encode(), (CB_KEY + timestamp + seq + nonce).encode() + body, hashlib.sha256)
    query = urllib.parse.urlencode(
        {
            "key": CB_KEY,
            "timestamp": timestamp,
            "seq": seq,
            "nonce": nonce,
            "signature": base64.urlsafe_b64encode(mac.digest()).decode(),
        }
    )
    return f"/publish-signed?{query}", headers, body


def builder(kind: str) -> Any:
    """A function making one fresh request of ``kind`` (signed anew each time; the body of a
    Broker request is encoded once)."""
    if kind in ("broker", "broker-batch"):
        body = broker_body(BATCH if kind == "broker-batch" else 1)
        return lambda: broker_request(BATCH if kind == "broker-batch" else 1, body)
    return lambda: crossbar_request(signed=kind == "crossbar-signed")


class KeepAlive:
    """One keep-alive HTTP/1.1 connection posting requests and reading answers by their
    ``Content-Length``: a few microseconds of client CPU per request where ``http.client`` takes
    ~100 (its header parsing through ``email``), so the clients, on the same cores as the router,
    take less of the CPU the router is measured on. An answer has a ``Content-Length`` (Broker's)
    or comes in chunks (crossbar's bridge, no trailers)."""

    def __init__(self, port: int) -> None:
        self.host = f"127.0.0.1:{port}".encode()
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def post(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        head = b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n%s\r\n" % (
            path.encode(),
            self.host,
            len(body),
            lines.encode("latin-1"),
        )
        self.sock.sendall(head + body)
        while (end := self.buffer.find(b"\r\n\r\n")) < 0:
            self.buffer += self._recv()
        header, self.buffer = self.buffer[:end], self.buffer[end + 4 :]
        length = _CONTENT_LENGTH.search(header)
        if length is not None:
            return int(header[9:12]), self._take(int(length.group(1)))
        if not _CHUNKED.search(header):
            raise http.client.HTTPException("an answer with neither Content-Length nor chunks")
        body = b""
        while True:  # chunked (crossbar's bridge): size line, data, CRLF; a 0 chunk and CRLF last
            while (eol := self.buffer.find(b"\r\n")) < 0:
                self.buffer += self._recv()
            size = int(self.buffer[:eol].split(b";")[0], 16)
            self.buffer = self.buffer[eol + 2 :]
            chunk = self._take(size + 2)
            if size == 0:
                return int(header[9:12]), body
            body += chunk[:-2]

    def _take(self, n: int) -> bytes:
        while len(self.buffer) < n:
            self.buffer += self._recv()
        taken, self.buffer = self.buffer[:n], self.buffer[n:]
        return taken

    def _recv(self) -> bytes:
        data = self.sock.recv(262144)
        if not data:
            raise ConnectionResetError("the server closed the connection")
        return data

    def close(self) -> None:
        self.sock.close()


_CONTENT_LENGTH = re.compile(rb"(?im)^content-length:[ \t]*([0-9]+)")
_CHUNKED = re.compile(rb"(?im)^transfer-encoding:[ \t]*chunked")


def _load_process(kind: str, port: int, threads: int, start_at: float, seconds: float, results: Any) -> None:
    """Post ``kind`` requests back to back on ``threads`` keep-alive connections."""
    counts = {"ok": 0, "errors": {}}
    lock = threading.Lock()
    make = builder(kind)

    def loop() -> None:
        connection = KeepAlive(port)
        ok, errors = 0, {}
        time.sleep(max(0.0, start_at - time.time()))
        end = start_at + seconds
        while time.time() < end:
            path, headers, body = make()
            try:
                status, answer = connection.post(path, headers, body)
            except (OSError, http.client.HTTPException) as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                connection.close()
                connection = KeepAlive(port)
                continue
            if status == 200 and b'"error"' not in answer:
                ok += 1
            else:
                key = f"{status} {' '.join(answer[:60].decode('utf-8', 'replace').split())}"
                errors[key] = errors.get(key, 0) + 1
        connection.close()
        with lock:
            counts["ok"] += ok
            for key, n in errors.items():
                counts["errors"][key] = counts["errors"].get(key, 0) + n

    workers = [threading.Thread(target=loop) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(seconds + 30)
    results.put(counts)


@dataclass
class Result:
    label: str
    requests_s: float
    events_s: float
    errors: dict[str, int]
    delivered: int
    expected: int
    #: the router worker's CPU seconds (user + system) over the measured window
    cpu: float = 0.0
    #: the window's length (s)
    seconds: float = 1.0

    def us_per_request(self) -> float:
        return self.cpu / (self.requests_s * self.seconds) * 1e6 if self.requests_s else 0.0

    def us_per_event(self) -> float:
        return self.cpu / (self.events_s * self.seconds) * 1e6 if self.events_s else 0.0


def _cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        times = psutil.Process(pid).cpu_times()
        total += times.user + times.system
    return total


def measure(
    label: str,
    kind: str,
    port: int,
    fleet: Fleet,
    seconds: float,
    processes: int,
    threads: int,
    workers: list[int] | None = None,
) -> Result:
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    before = fleet.stats()["events"]
    start_at = time.time() + 2.0  # after every process has spawned and imported
    procs = [
        ctx.Process(target=_load_process, args=(kind, port, threads, start_at, seconds, results))
        for _ in range(processes)
    ]
    for proc in procs:
        proc.start()
    time.sleep(max(0.0, start_at - time.time()))
    cpu_before = _cpu(workers or [])
    answers = [results.get(timeout=seconds + 60) for _ in procs]
    cpu = _cpu(workers or []) - cpu_before  # the window plus the answers' way back: a slight overcount
    for proc in procs:
        proc.join(timeout=10)
    ok = sum(a["ok"] for a in answers)
    errors: dict[str, int] = {}
    for answer in answers:
        for key, n in answer["errors"].items():
            errors[key] = errors.get(key, 0) + n
    per_request = BATCH if kind == "broker-batch" else 1
    # in-flight events still reach the subscriber after the window: wait briefly for them
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and fleet.stats()["events"] - before < ok * per_request:
        time.sleep(0.1)
    delivered = fleet.stats()["events"] - before
    rate = ok / seconds
    return Result(label, rate, rate * per_request, errors, delivered, ok * per_request, cpu, seconds)


def markdown(
    results: list[Result], seconds: float, rounds: int, processes: int, threads: int, elapsed: float
) -> str:
    by = {r.label: r for r in results}
    lines = [
        "## HTTP publish: Broker's API versus crossbar's publisher bridge",
        "",
        f"{processes} client processes x {threads} threads, each a keep-alive HTTP/1.1 connection "
        "(a minimal socket client, `KeepAlive`: `http.client`'s header parsing took more client CPU per "
        "request than the router's work, on the same two cores; every request signed anew with the SDK's "
        "`sign_headers`, fresh nonce and timestamp, over a body encoded once) "
        f"posting back to back for {seconds:.0f} s, best of {rounds} round(s) with the targets alternating; "
        "~100-byte JSON events, one WebSocket subscriber on the "
        "topic. A request counts when answered 200 without an error in the body (crossbar's bridge answers "
        '200 with `{"error": ...}` for refused events). Broker: project config, dev key without rate limit, '
        "no idempotency key; the Redis rows: the same config on a node with `BROKER_REDIS_URL` (its own "
        "redis-server, no persistence: nonces and rate limits claimed cluster-wide, events appended to the "
        "shared log). Router CPU: the router worker's user + system seconds from the window's start until "
        "every client answered (psutil), per 200 request and per event.",
        "",
        "| target | requests/s | events/s | router CPU µs/request | µs/event "
        "| delivered to the subscriber | errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in results:
        errors = ", ".join(f"{n}x {k}" for k, n in r.errors.items()) or "none"
        lines.append(
            f"| {r.label} | {r.requests_s:,.0f} | {r.events_s:,.0f} "
            f"| {r.us_per_request():,.0f} | {r.us_per_event():,.1f} "
            f"| {r.delivered:,}/{r.expected:,} | {errors} |"
        )
    single, bridge = by.get(SINGLE), by.get(SIGNED)
    unsigned, batch = by.get("crossbar bridge, unsigned"), by.get(BATCHED)
    lines.append("")
    if single and bridge and unsigned and bridge.requests_s and unsigned.requests_s:
        lines.append(
            f"Ratios: Broker single / crossbar signed = **{single.requests_s / bridge.requests_s:.2f}**; "
            f"Broker single / crossbar unsigned = **{single.requests_s / unsigned.requests_s:.2f}**."
        )
    if batch and bridge and bridge.events_s:
        lines.append(
            f"Batched, Broker delivers **{batch.events_s / bridge.events_s:.1f}x** the events/s of "
            "crossbar's signed bridge, which takes one event per request (it has no batch form)."
        )
    lines += ["", *verdicts(by)]
    lines += [
        "",
        "Context, not measured here (docs/http-publish.md and the crossbar 26.10 notes): crossbar's signed "
        "bridge accepts an identical signed request again and again within its timestamp window (`seq` "
        "and `nonce` are parsed, never checked: `# FIXME` in `bridge/rest/common.py`), signs "
        "`key|timestamp|seq|nonce|body` without separators and compares with `!=`; Broker accepts each "
        "nonce once (409 on a replay), signs a separated canonical form in constant time, and answers "
        "200 only when the router acknowledged every event. The SDK (`broker.client.Publisher`) adds an "
        "idempotency key and opens one connection per call, so it is slower than this keep-alive loop.",
        "",
        f"Section time: {elapsed:.0f} s.",
    ]
    return "\n".join(lines)


def verdicts(by: dict[str, Result]) -> list[str]:
    """Issue 16's HTTP targets, met or not on this run, for the memory and the Redis engine."""
    bridge = by.get(SIGNED)
    lines = ["Issue 16 targets:", ""]
    for engine, single_label, batch_label in [
        ("memory", SINGLE, BATCHED),
        ("Redis", REDIS_SINGLE, REDIS_BATCHED),
    ]:
        single, batch = by.get(single_label), by.get(batch_label)
        if single is not None and bridge is not None and bridge.requests_s:
            ratio = single.requests_s / bridge.requests_s
            verdict = "**met**" if ratio >= SINGLE_RATIO else "**not met**"
            lines.append(
                f"- single requests, {engine} engine, ≥ {SINGLE_RATIO}x crossbar's signed bridge: {verdict} "
                f"({single.requests_s:,.0f} / {bridge.requests_s:,.0f} requests/s = {ratio:.2f}x)."
            )
        if batch is not None:
            verdict = "**met**" if batch.events_s >= BATCH_EVENTS else "**not met**"
            lines.append(
                f"- a batch of {BATCH}, {engine} engine, ≥ {BATCH_EVENTS:,} events/s: {verdict} "
                f"({batch.events_s:,.0f} events/s)."
            )
    return lines


#: (label, request kind, node) in the order measured; rounds alternate through all of them.
CASES = [
    (SINGLE, "broker", "broker"),
    (SIGNED, "crossbar-signed", "crossbar"),
    ("crossbar bridge, unsigned", "crossbar-unsigned", "crossbar"),
    (BATCHED, "broker-batch", "broker"),
    (REDIS_SINGLE, "broker", "redis"),
    (REDIS_BATCHED, "broker-batch", "redis"),
]


class _Case(NamedTuple):
    name: str
    kind: str
    node: str


def run(quick: bool, progress: Progress = progress) -> Section:
    started = time.monotonic()
    seconds, rounds, processes, threads = (2.0, 1, 2, 2) if quick else (5.0, 2, 3, 2)
    work = Path(tempfile.mkdtemp(prefix="broker-httpbench-"))
    redis = RedisServer(work / "redis")
    cases = report_module.SELECTION.servers([_Case(*case) for case in CASES])
    nodes: dict[str, Node | PlainNode] = {
        "broker": Node(work / "broker", mutate=no_rate_limit),
        "crossbar": PlainNode(work / "crossbar", paths=BRIDGE_PATHS),
        "redis": Node(work / "broker-redis", mutate=no_rate_limit, env={"BROKER_REDIS_URL": redis.url}),
    }
    nodes = {name: node for name, node in nodes.items() if any(c.node == name for c in cases)}
    fleets: dict[str, Fleet] = {}
    best: dict[str, Result] = {}
    try:
        for name, node in nodes.items():
            node.start()
            fleets[name] = Fleet(node.ws_url, node.origin, TOPIC, processes=1)
            fleets[name].open(1, timeout=20)
        # both nodes run throughout and the cases alternate, so a burst of load from elsewhere
        # on this shared machine does not land on one target only; the best round counts
        for round_ in range(rounds):
            for label, kind, name in cases:
                progress(f"http publish: {label}, {seconds:.0f} s (round {round_ + 1}/{rounds}) ...")
                node = nodes[name]
                result = measure(
                    label, kind, node.port, fleets[name], seconds, processes, threads, node.workers
                )
                progress(f"  {result.requests_s:,.0f} requests/s, {result.events_s:,.0f} events/s")
                if label not in best or result.events_s > best[label].events_s:
                    best[label] = result
    finally:
        for fleet in fleets.values():
            fleet.close()
        for node in nodes.values():
            node.stop()
        redis.stop()
    results = [best[label] for label, _, _ in cases if label in best]
    text = markdown(results, seconds, rounds, processes, threads, time.monotonic() - started)
    ok = len(results) == len(cases) and all(r.requests_s > 0 and r.delivered >= r.expected for r in results)
    if not ok:
        text += "\n\n**Fell short:** a target answered errors or its subscriber missed events (table above)."
    return Section("HTTP publish", text, [], ok)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one 2 s round per target")
    section = run(parser.parse_args().quick)
    print(section.markdown)
    return 0 if section.ok else 1


if __name__ == "__main__":
    sys.exit(main())
