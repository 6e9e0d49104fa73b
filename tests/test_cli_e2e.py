"""``broker publish`` and ``broker tail`` end to end, as separate processes against a real node."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.node import BACKEND_SECRET, BROKER, Node

pytestmark = pytest.mark.node


def cli_env() -> dict[str, str]:
    return {**os.environ, "BROKER_BACKEND_SECRET": BACKEND_SECRET}


def publish(node: Node, topic: str, payload: str) -> subprocess.CompletedProcess[str]:
    return broker("publish", topic, payload, "--url", node.ws_url)


def broker(*args: str) -> subprocess.CompletedProcess[str]:
    """Run one ``broker`` command to completion (as backend, with the test secret)."""
    return subprocess.run(
        [str(BROKER), *args], capture_output=True, text=True, env=cli_env(), timeout=60, check=False
    )


class Tail:
    """A running ``broker tail``, ready once it reports its subscription on stderr."""

    def __init__(self, node: Node, *args: str) -> None:
        self.proc = subprocess.Popen(
            [str(BROKER), "tail", *args, "--url", node.ws_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=cli_env(),
        )
        assert self.proc.stderr is not None
        first = self.proc.stderr.readline()  # blocks until subscribed (or failed)
        self.ready_line = first

    def lines(self, timeout: float = 30) -> list[dict[str, object]]:
        out, _ = self.proc.communicate(timeout=timeout)
        return [json.loads(line) for line in out.splitlines()]


@pytest.mark.parametrize(
    ("args", "topic"),
    [
        (["public.{id}", "--anonymous"], "public.{id}"),
        (["public.{id}.", "--match", "prefix", "--anonymous"], "public.{id}.a.b"),
        (["orders..{id}", "--match", "wildcard"], "orders.7.{id}"),
    ],
)
def test_publish_reaches_tail(node: Node, tails: list[Tail], args: list[str], topic: str) -> None:
    uid = uuid.uuid4().hex[:8]
    tail = Tail(node, *[a.format(id=uid) for a in args], "--count", "2")
    tails.append(tail)
    assert "subscribed" in tail.ready_line
    for n in (1, 2):
        result = publish(node, topic.format(id=uid), json.dumps({"n": n}))
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
    lines = tail.lines()
    positions = [line.pop("position") for line in lines]
    assert lines == [
        {"topic": topic.format(id=uid), "args": [{"n": 1}], "kwargs": {}},
        {"topic": topic.format(id=uid), "args": [{"n": 2}], "kwargs": {}},
    ]
    # a fresh topic: its events are seq 1 and 2 of one epoch, cursors increasing
    assert [p["seq"] for p in positions] == [1, 2]
    assert positions[0]["epoch"] == positions[1]["epoch"]
    assert positions[0]["cursor"] < positions[1]["cursor"]
    assert tail.proc.returncode == 0


def test_publish_prints_a_json_line_with_topic_id_and_position(node: Node, tails: list[Tail]) -> None:
    topic = f"public.ids.{uuid.uuid4().hex[:8]}"
    tail = Tail(node, topic, "--anonymous", "--count", "2")
    tails.append(tail)
    printed = []
    for n in (1, 2):
        result = publish(node, topic, json.dumps({"n": n}))
        assert result.returncode == 0, result.stderr
        assert result.stderr == ""
        [line] = result.stdout.splitlines()
        printed.append(json.loads(line))
    assert [(p["topic"], p["position"]["seq"]) for p in printed] == [(topic, 1), (topic, 2)]
    assert all(isinstance(p["id"], int) and set(p) == {"topic", "id", "position"} for p in printed)
    # the very positions a subscriber got with the events
    assert [line["position"] for line in tail.lines()] == [p["position"] for p in printed]


def test_publish_to_forbidden_topic_fails_loudly(node: Node) -> None:
    result = publish(node, "broker.internal", '{"n": 1}')
    assert result.returncode == 1
    assert "wamp.error.not_authorized" in result.stderr


def test_publish_invalid_topic_names_it(node: Node) -> None:
    result = publish(node, "a b", '{"n": 1}')
    assert result.returncode == 1
    assert "wamp.error.invalid_uri" in result.stderr


def test_publish_invalid_json_is_refused_before_connecting(node: Node) -> None:
    result = publish(node, "public.demo", "{not json")
    assert result.returncode == 2
    assert "JSON" in result.stderr


def test_tail_refused_subscription_exits_1(node: Node) -> None:
    result = broker("tail", "orders.x", "--anonymous", "--url", node.ws_url)
    assert result.returncode == 1
    assert "wamp.error.not_authorized" in result.stderr


def test_publish_to_stopped_node_is_a_clear_error() -> None:
    from tests.node import free_port

    result = broker("publish", "public.demo", "1", "--url", f"ws://127.0.0.1:{free_port()}/ws")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip()


def test_tail_from_position_prints_missed_then_live_events(node: Node, tails: list[Tail]) -> None:
    uid = uuid.uuid4().hex[:8]
    topic = f"public.resume.{uid}"
    first = Tail(node, topic, "--anonymous", "--count", "1")
    tails.append(first)
    assert publish(node, topic, '"seen"').returncode == 0
    [seen] = first.lines()
    position = seen["position"]
    for n in range(3):  # published while nobody tails
        assert publish(node, topic, str(n)).returncode == 0
    resumed = Tail(
        node, topic, "--anonymous", "--count", "4", "--from", f"{position['epoch']}:{position['cursor']}"
    )
    tails.append(resumed)
    assert publish(node, topic, '"live"').returncode == 0
    lines = resumed.lines()
    assert [line["args"] for line in lines] == [[0], [1], [2], ["live"]]
    assert [line["position"]["seq"] for line in lines] == [2, 3, 4, 5]


def test_tail_from_lost_position_fails_clearly(node: Node) -> None:
    result = broker("tail", "public.x", "--anonymous", "--from", "not-the-epoch:0", "--url", node.ws_url)
    assert result.returncode == 1
    assert "cannot resume from not-the-epoch:0: epoch changed: the history was reset" in result.stderr


def test_tail_from_prints_missed_events_beyond_one_message(node: Node, tails: list[Tail]) -> None:
    """620 missed events (20 of 10 KB) take several recovery pages under the 64 KiB limit."""
    from tests.rawwamp import PUBLISHED, RawWamp

    topic = f"public.resume.{uuid.uuid4().hex[:8]}"
    publisher = RawWamp(node.ws_url, origin=node.origin)
    assert publisher.hello(authid="backend", secret=BACKEND_SECRET)[0] == 2
    first = Tail(node, topic, "--anonymous", "--count", "1")
    tails.append(first)
    assert publisher.publish(topic, ["seen"])[0] == PUBLISHED  # type: ignore[index]
    position = first.lines()[0]["position"]
    missed = [{"n": n, "blob": "z" * 10_000} if n % 31 == 0 else {"n": n} for n in range(620)]
    for data in missed:
        assert publisher.publish(topic, [data])[0] == PUBLISHED  # type: ignore[index]
    resumed = Tail(
        node,
        topic,
        "--anonymous",
        "--count",
        "620",
        "--from",
        f"{position['epoch']}:{position['cursor']}",  # type: ignore[index]
    )
    tails.append(resumed)
    lines = resumed.lines()
    assert resumed.proc.returncode == 0
    assert [line["args"][0]["n"] for line in lines] == list(range(620))  # type: ignore[index]


def test_tail_from_a_position_before_a_restart_says_the_history_was_reset(
    tmp_path: Path, tails: list[Tail]
) -> None:
    """The memory store's usual case: the node restarted, its history began a new epoch.
    One clear line with the way on, exit 1, no "Unhandled error in Deferred"; the way on works."""
    first_node = Node(tmp_path).start()
    topic = f"public.restart.{uuid.uuid4().hex[:8]}"
    try:
        first = Tail(first_node, topic, "--anonymous", "--count", "1")
        tails.append(first)
        assert publish(first_node, topic, '"before"').returncode == 0
        old = first.lines()[0]["position"]
    finally:
        first_node.stop()
    node = Node(tmp_path, port=first_node.port).start()
    try:
        result = broker(
            "tail", topic, "--anonymous", "--from", f"{old['epoch']}:{old['cursor']}", "--url", node.ws_url
        )
        assert result.returncode == 1
        assert result.stdout == ""
        lines = result.stderr.splitlines()
        assert lines[0] == f"broker: subscribed to {topic} (exact)"
        [message] = lines[1:]
        prefix = (
            f"broker: cannot resume from {old['epoch']}:{old['cursor']}: epoch changed: the history was "
            f"reset; nothing after {old['epoch']}:{old['cursor']} was printed: run again with --from "
        )
        assert message.startswith(prefix) and message.endswith(
            " to go on from the current position, or without --from"
        )
        now = message[len(prefix) :].split(" ")[0]
        assert not now.startswith(f"{old['epoch']}:")
        # the way on it names: the position of the new history, from which events print again
        resumed = Tail(node, topic, "--anonymous", "--count", "1", "--from", now)
        tails.append(resumed)
        assert "subscribed" in resumed.ready_line
        assert publish(node, topic, '"after"').returncode == 0
        [line] = resumed.lines()
        assert line["args"] == ["after"] and resumed.proc.returncode == 0
    finally:
        node.stop()
