"""Fuzzing: random WAMP messages and raw WebSocket frames, a canary beside them.

Hypothesis generates (1) WAMP messages of every type code, sent before HELLO
or in a joined session, with arbitrary arguments (URIs, dicts, deep lists,
huge numbers), and (2) arbitrary bytes and frames after the WebSocket
handshake. Each example ends definitely: a joined session is probed with a
SUBSCRIBE that must be answered unless the router closed the connection; raw
bytes are followed by the end of our sending side, which the router must
answer by closing. The promise: the router never fails with 1011 (internal
error) or hangs, never logs a traceback, and the canary subscriber misses
nothing.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed

from tests.faults import Finding, Scale
from tests.faults.canary import Canary
from tests.faults.wire import OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_TEXT, RawSocket, close_code, frame
from tests.node import Node
from tests.rawwamp import ABORT, SUBSCRIBE, WELCOME, Closed, RawWamp

#: Type codes of WAMP (every one the router knows) and a few it does not.
TYPE_CODES = [1, 2, 3, 4, 5, 6, 8, 16, 17, 32, 33, 34, 35, 36, 48, 49, 50, 64, 65, 66, 67, 68, 69, 70, 0, 99]

uris = st.one_of(
    st.sampled_from(["public.x", "broker.recover", "broker.reload", "wamp.session.list", "", "a..b", "A.b"]),
    st.text(max_size=40),
)
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70), st.floats(), uris
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
wamp_messages = st.builds(
    lambda code, rest: [code, *rest], st.sampled_from(TYPE_CODES), st.lists(values, max_size=6)
)
raw_frames = st.one_of(
    st.binary(max_size=300),
    st.builds(
        lambda payload, opcode, fin: frame(payload, opcode, fin),
        st.binary(max_size=200),
        st.sampled_from([OP_TEXT, OP_BINARY, OP_CONT, OP_CLOSE, OP_PING, 0x3, 0xB]),
        st.booleans(),
    ),
    st.builds(lambda payload: frame(payload, mask=False), st.binary(max_size=50)),
)


class Outcomes:
    """What the router did with the fuzzed connections."""

    def __init__(self) -> None:
        self.codes: Counter[str] = Counter()
        self.hangs: list[str] = []

    def close(self, code: int | None) -> None:
        self.codes[f"close {code}"] += 1

    def internal_errors(self) -> int:
        return self.codes["close 1011"]


def _probe_joined(node: Node, message: list[Any], outcomes: Outcomes) -> None:
    client = RawWamp(node.ws_url, origin=node.origin)
    try:
        if client.hello()[0] != WELCOME:
            outcomes.hangs.append("no WELCOME for a plain HELLO")
            return
        client.send(json.dumps(message))
        client.send([SUBSCRIBE, 987654321, {}, "public.fuzz.probe"])
        while True:
            reply = client.recv(timeout=10)
            if reply[0] in (33, 8) and reply[1] == 987654321:
                outcomes.codes["answered"] += 1
                return
    except Closed as closed:
        outcomes.close(closed.code)
    except ConnectionClosed as closed:  # closed while we were still sending
        outcomes.close(closed.rcvd.code if closed.rcvd else None)
    except TimeoutError:
        outcomes.hangs.append(f"joined session not answered after {json.dumps(message)[:120]}")
    finally:
        client.close()


def _probe_unjoined(node: Node, message: list[Any], outcomes: Outcomes) -> None:
    client = RawWamp(node.ws_url, origin=node.origin)
    try:
        client.send(json.dumps(message))
        reply = client.hello()
        outcomes.codes["answered" if reply[0] in (WELCOME, ABORT, 4) else f"type {reply[0]}"] += 1
    except Closed as closed:
        outcomes.close(closed.code)
    except ConnectionClosed as closed:  # closed while we were still sending
        outcomes.close(closed.rcvd.code if closed.rcvd else None)
    except TimeoutError:
        outcomes.hangs.append(f"no answer to HELLO after {json.dumps(message)[:120]}")
    finally:
        client.close()


def _probe_raw(node: Node, data: bytes, outcomes: Outcomes) -> None:
    sock = RawSocket(node)
    try:
        sock.send(data)
        try:
            sock.sock.shutdown(1)  # no more from us: the router must end the connection
        except OSError:
            pass  # it already has (ENOTCONN): what it sent before is still to be read
        frames, closed = sock.frames(timeout=15)
        if not closed:
            outcomes.hangs.append(f"connection kept open after raw bytes {data[:60]!r}")
        else:
            outcomes.close(close_code(frames))
    finally:
        sock.close()


def run(node: Node, scale: Scale) -> list[Finding]:
    """Fuzz ``node``; one finding per promise."""
    examples = scale.count(60)
    outcomes = Outcomes()
    canary = Canary(node).start()
    common = settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=False,
        suppress_health_check=list(HealthCheck),
    )

    @common
    @given(wamp_messages, st.booleans())
    def wamp_case(message: list[Any], joined: bool) -> None:
        (_probe_joined if joined else _probe_unjoined)(node, message, outcomes)

    @common
    @given(raw_frames)
    def raw_case(data: bytes) -> None:
        _probe_raw(node, data, outcomes)

    wamp_case()
    raw_case()
    report = canary.finish()
    log = node.log()
    total = sum(outcomes.codes.values()) + len(outcomes.hangs)
    summary = ", ".join(f"{k}: {v}" for k, v in sorted(outcomes.codes.items()))
    return [
        Finding(
            f"hypothesis: {examples} WAMP messages (before HELLO and joined), {examples} raw frame sequences",
            f"{total} connections; {summary}",
            outcomes.internal_errors() == 0,
            "no connection may end with 1011 (internal error)",
        ),
        Finding(
            "fuzzed connections answered or closed (no hang)",
            f"{len(outcomes.hangs)} hung" + (f": {outcomes.hangs[0]}" if outcomes.hangs else ""),
            not outcomes.hangs,
        ),
        Finding("canary subscriber beside the fuzzer", report.figure(), report.ok),
        Finding(
            "router log after fuzzing",
            f"{log.count('Traceback')} tracebacks",
            "Traceback" not in log,
        ),
    ]
