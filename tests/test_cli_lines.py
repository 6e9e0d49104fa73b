"""``broker publish --lines`` and ``broker pipe`` end to end, as processes against a real node.

A ``broker tail`` beside each run is the well-behaved subscriber: it must
see every line published, in order, and nothing after a refused one (a
sentinel published afterwards proves nothing came in between).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.node import BROKER, Node
from tests.test_cli_e2e import Tail, cli_env, publish

pytestmark = pytest.mark.node


def run(node: Node, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(BROKER), *args, "--url", node.ws_url],
        input=stdin.decode("utf-8", "surrogateescape").encode("utf-8", "surrogateescape"),
        capture_output=True,
        env=cli_env(),
        timeout=60,
        check=False,
    )
    return subprocess.CompletedProcess(
        result.args, result.returncode, result.stdout.decode(), result.stderr.decode()
    )


def pipe(node: Node, topic: str, *command: str, grace: str = "5") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BROKER), "pipe", topic, "--url", node.ws_url, "--grace", grace, "--", *command],
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=60,
        check=False,
    )


def topic() -> str:
    return f"public.lines.{uuid.uuid4().hex[:8]}"


def payloads(tail: Tail) -> list[object]:
    return [line["args"][0] for line in tail.lines()]


def test_lines_arrive_in_order_json_or_plain_empty_ones_skipped(node: Node, tails: list[Tail]) -> None:
    name = topic()
    lines = [json.dumps({"n": n}) if n % 3 else f"plain {n}" for n in range(300)]
    text = "\n".join(lines[:100]) + "\n\n" + "\r\n".join(lines[100:]) + "\n[1, 2]"  # no final newline
    tail = Tail(node, name, "--anonymous", "--count", "301")
    tails.append(tail)
    result = run(node, "publish", name, "--lines", "--window", "7", stdin=text.encode())
    assert result.returncode == 0, result.stderr
    assert result.stderr == "broker: 302 lines read, 301 published, 0 refused, 1 skipped (empty)\n"
    expected = [{"n": n} if n % 3 else {"line": f"plain {n}"} for n in range(300)] + [[1, 2]]
    assert payloads(tail) == expected


def test_forbidden_topic_refuses_the_first_line_exactly(node: Node) -> None:
    result = run(node, "publish", "broker.internal", "--lines", "--window", "1", stdin=b"a\nb\n")
    assert result.returncode == 1
    assert result.stderr == (
        "broker: line 1 refused: wamp.error.not_authorized: "
        "session not authorized to publish to topic 'broker.internal'\n"
        "broker: 1 line read, 0 published, 1 refused, 0 skipped (empty)\n"
    )


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        (
            b"x" * 70000,
            "broker.error.too_large: the line is longer than the node's max_message_size of 65536 bytes",
        ),
        (
            json.dumps({"x": "y" * 65000}).encode(),
            "broker.error.too_large: the event on '{topic}' would take up to {size} bytes on the wire with "
            "its position (512 of them kept for the WAMP envelope), over this node's message limit of "
            "65536 bytes (max_message_size): make it smaller",
        ),
        (b"caf\xe9", "broker.error.bad_request: not valid UTF-8 (byte 0xe9 at offset 3)"),
        (
            b'{"s": "\\udc00"}',
            "broker.error.bad_request: a JSON string holds a lone surrogate (\\udc00), not Unicode text",
        ),
    ],
    ids=["longer-than-the-limit", "event-too-large", "invalid-utf8", "lone-surrogate"],
)
def test_a_bad_line_stops_the_run_earlier_lines_delivered_nothing_after(
    node: Node, tails: list[Tail], bad: bytes, error: str
) -> None:
    name = topic()
    tail = Tail(node, name, "--anonymous", "--count", "3")
    tails.append(tail)
    result = run(node, "publish", name, "--lines", stdin=b"one\n2\n" + bad + b"\nthree\n4\n")
    assert result.returncode == 1
    assert result.stderr == (
        f"broker: line 3 refused: {error.format(topic=name, size=65782 + len(name))}\n"
        "broker: 3 lines read, 2 published, 1 refused, 0 skipped (empty)\n"
    )
    assert publish(node, name, '"sentinel"').returncode == 0
    assert payloads(tail) == [{"line": "one"}, 2, "sentinel"]


def test_pipe_publishes_what_the_program_prints_and_passes_its_status_on(
    node: Node, tails: list[Tail]
) -> None:
    name = topic()
    tail = Tail(node, name, "--anonymous", "--count", "3")
    tails.append(tail)
    result = pipe(node, name, "sh", "-c", "printf 'a b\\n{\"n\": 2}\\n\\nlast'; echo oops >&2; exit 3")
    assert result.returncode == 3
    assert result.stderr == "oops\nbroker: 4 lines read, 3 published, 0 refused, 1 skipped (empty)\n"
    assert payloads(tail) == [{"line": "a b"}, {"n": 2}, {"line": "last"}]


def test_pipe_status_of_a_program_killed_by_a_signal_and_of_one_not_found(node: Node) -> None:
    assert pipe(node, topic(), "sh", "-c", "kill -9 $$").returncode == 128 + 9
    missing = pipe(node, topic(), "no-such-program-here")
    assert missing.returncode == 127
    assert (
        missing.stderr.splitlines()[0]
        == "broker: cannot run 'no-such-program-here': No such file or directory"
    )


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"


@pytest.mark.parametrize("ignores_sigterm", [False, True], ids=["sigterm", "sigkill-after-grace"])
def test_pipe_stops_the_program_when_the_node_refuses(
    node: Node, tmp_path: Path, ignores_sigterm: bool
) -> None:
    pidfile = tmp_path / "pid"
    trap = "trap '' TERM; " if ignores_sigterm else ""
    script = f"{trap}echo $$ > {pidfile}; while :; do echo tick; sleep 0.05; done"
    result = pipe(node, "broker.internal", "sh", "-c", script, grace="1")
    assert result.returncode == 125
    assert result.stderr.splitlines()[0] == (
        "broker: line 1 refused: wamp.error.not_authorized: "
        "session not authorized to publish to topic 'broker.internal'"
    )
    assert _gone(int(pidfile.read_text()))


def test_sigterm_to_pipe_stops_the_program_and_exits_after_flushing(
    node: Node, tails: list[Tail], tmp_path: Path
) -> None:
    name = topic()
    pidfile = tmp_path / "pid"
    tail = Tail(node, name, "--anonymous", "--count", "1")
    tails.append(tail)
    proc = subprocess.Popen(
        [str(BROKER), "pipe", name, "--url", node.ws_url, "--", "sh", "-c",
         f"echo $$ > {pidfile}; while :; do echo tick; sleep 0.05; done"],
        stderr=subprocess.PIPE, text=True, env=cli_env(),
    )  # fmt: skip
    try:
        assert payloads(tail) == [{"line": "tick"}]  # it runs and publishes
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    assert re.fullmatch(r"broker: (\d+) lines read, \1 published, 0 refused, 0 skipped \(empty\)\n", err), err
    assert _gone(int(pidfile.read_text()))


def test_a_node_that_goes_away_mid_stream_is_a_clear_error(make_node: object, tails: list[Tail]) -> None:
    own: Node = make_node()  # type: ignore[operator]
    name = topic()
    tail = Tail(own, name, "--anonymous", "--count", "1")
    tails.append(tail)
    proc = subprocess.Popen(
        [str(BROKER), "publish", name, "--lines", "--url", own.ws_url],
        stdin=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(),
    )  # fmt: skip
    assert proc.stdin is not None
    try:
        proc.stdin.write("first\n")
        proc.stdin.flush()
        assert payloads(tail) == [{"line": "first"}]
        own.stop()
        proc.wait(timeout=30)  # stdin still open: the loss alone ends it
        assert proc.stderr is not None
        err = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1
    assert err == (
        "broker: after line 1: the connection was lost\n"
        "broker: 1 line read, 1 published, 0 refused, 0 skipped (empty)\n"
    )


def _ping_often(config: dict[str, Any]) -> None:
    options = config["workers"][0]["transports"][0]["paths"]["ws"]["options"]
    options.update(auto_ping_interval=1000, auto_ping_timeout=1000)  # crossbar's smallest


def test_the_nodes_pings_are_answered_while_lines_are_published(make_node: Any, tails: list[Tail]) -> None:
    # the command reads the connection itself while it publishes: a quiet spell longer than the
    # node's ping interval and timeout (any traffic counts as a pong) passes only if the ping
    # is answered; the node would drop the connection otherwise, and line 2 would be lost
    own: Node = make_node(_ping_often)
    name = topic()
    tail = Tail(own, name, "--anonymous", "--count", "2")
    tails.append(tail)
    result = pipe(own, name, "sh", "-c", "echo 1; sleep 3.5; echo 2")
    assert result.returncode == 0, result.stderr
    assert result.stderr == "broker: 2 lines read, 2 published, 0 refused, 0 skipped (empty)\n"
    assert payloads(tail) == [1, 2]


def test_a_long_non_ascii_line_within_the_limit_is_published_whole(node: Node, tails: list[Tail]) -> None:
    # 60,000 bytes of UTF-8: it fits the 65536-byte limit as autobahn would send it; escaped
    # (\u00e9, 6 bytes a character) it would not, and the node would close the connection
    name = topic()
    long_line = "\u00e9" * 30000
    tail = Tail(node, name, "--anonymous", "--count", "2")
    tails.append(tail)
    result = run(node, "publish", name, "--lines", stdin=f'{long_line}\n"after"\n'.encode())
    assert result.returncode == 0, result.stderr
    assert result.stderr == "broker: 2 lines read, 2 published, 0 refused, 0 skipped (empty)\n"
    assert payloads(tail) == [{"line": long_line}, "after"]


def test_a_json_line_near_the_limit_is_sent_as_its_value_not_its_text(node: Node, tails: list[Tail]) -> None:
    # 65,498 bytes of escapes, within the line limit; sent as it came, with the envelope it
    # would pass the node's message limit (the node closes the connection); as its value
    # (21,832 bytes) it fits, as it did through autobahn
    name = topic()
    escaped = '"' + "\\u00e9" * 10916 + '"'
    tail = Tail(node, name, "--anonymous", "--count", "1")
    tails.append(tail)
    result = run(node, "publish", name, "--lines", stdin=escaped.encode() + b"\n")
    assert result.returncode == 0, result.stderr
    assert result.stderr == "broker: 1 line read, 1 published, 0 refused, 0 skipped (empty)\n"
    assert payloads(tail) == ["\u00e9" * 10916]
