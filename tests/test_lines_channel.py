"""`broker publish --lines`: its own framing (``core.wsframe``) and its borrowed connection (``cli.channel``).

No reactor: the frames are checked against RFC 6455 by decoding them here,
and the channel runs over a fake protocol whose ``dataReceived`` is
autobahn's stand-in, so the test sees exactly which bytes the channel reads
itself and which it hands back.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from broker.cli.channel import Channel
from broker.core import wsframe


def server_frame(opcode: int, payload: bytes, first: int | None = None) -> bytes:
    """An unmasked server frame (``first``: the first byte, to set odd bits)."""
    size = len(payload)
    head = bytes([0x80 | opcode if first is None else first])
    if size < 126:
        head += bytes([size])
    elif size < 65536:
        head += bytes([126]) + size.to_bytes(2, "big")
    else:
        head += bytes([127]) + size.to_bytes(8, "big")
    return head + payload


def unmask(data: bytes) -> list[tuple[int, bytes, bytes]]:
    """The client frames in ``data``: ``(first byte, mask key, unmasked payload)``, checked to be masked."""
    frames, at = [], 0
    while at < len(data):
        first, second = data[at], data[at + 1]
        assert second & 0x80, "a client frame must be masked"
        size, at = second & 0x7F, at + 2
        if size == 126:
            size, at = int.from_bytes(data[at : at + 2], "big"), at + 2
        elif size == 127:
            size, at = int.from_bytes(data[at : at + 8], "big"), at + 8
        key, at = data[at : at + 4], at + 4
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(data[at : at + size]))
        frames.append((first, key, payload))
        at += size
    return frames


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536])
def test_client_frames_are_final_masked_and_decode_to_their_payload(size: int) -> None:
    payloads = [bytes(range(256)) * (size // 256) + b"x" * (size % 256), b"second"]
    frames = unmask(wsframe.client_frames(wsframe.TEXT, payloads))
    assert [(first, payload) for first, _, payload in frames] == [(0x81, payloads[0]), (0x81, b"second")]
    assert frames[0][1] != frames[1][1]  # a key of its own for each frame


@pytest.mark.parametrize("size", [3, 126, 70000])
def test_parse_reads_a_server_frame_only_once_it_is_whole(size: int) -> None:
    frame = server_frame(wsframe.TEXT, b"y" * size) + b"\x8a"
    whole = len(frame) - 1
    for cut in (1, 2, 3, whole - 1):
        assert wsframe.parse(frame[:cut]) is None
    assert wsframe.parse(frame) == (wsframe.TEXT, b"y" * size, whole)
    assert wsframe.parse(frame, whole) is None


@pytest.mark.parametrize(
    "first",
    [0x01, 0xC1, 0x82, 0x83],
    ids=["not-final", "reserved-bit", "binary", "reserved-opcode"],
)
def test_parse_leaves_frames_it_does_not_read_to_someone_else(first: int) -> None:
    assert wsframe.parse(b"ab" + server_frame(1, b"[]", first=first), 2) == (wsframe.OTHER, b"", 2)


def test_parse_leaves_a_masked_server_frame_alone() -> None:
    assert wsframe.parse(b"\x81\x82abcd!!") == (wsframe.OTHER, b"", 0)


class Transport:
    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)


class Protocol:
    """autobahn's protocol as far as the channel sees it: a transport and a ``dataReceived``."""

    def __init__(self) -> None:
        self.transport = Transport()
        self.autobahn: list[bytes] = []

    def dataReceived(self, data: bytes) -> None:
        self.autobahn.append(data)


class Recorder:
    def __init__(self, protocol: Protocol) -> None:
        self.events: list[Any] = []
        self.channel = Channel(
            protocol,
            lambda request, error: self.events.append(("answer", request, error)),
            lambda: self.events.append("batch"),
            lambda uri, message: self.events.append(("end", uri, message)),
        )


def text(message: object) -> bytes:
    return server_frame(wsframe.TEXT, json.dumps(message).encode())


def test_answers_are_read_across_reads_with_one_batch_call_per_read() -> None:
    protocol = Protocol()
    recorder = Recorder(protocol)
    data = (
        text([17, 1, 5001])
        + text([8, 16, 2, {}, "wamp.error.not_authorized", ["no", 7]])
        + text([17, 3, 5002])
    )
    protocol.dataReceived(data[:5])
    protocol.dataReceived(data[5:-2])
    protocol.dataReceived(data[-2:])
    assert recorder.events == [
        "batch",
        ("answer", 1, None),
        ("answer", 2, ("wamp.error.not_authorized", "no 7")),
        "batch",
        ("answer", 3, None),
        "batch",
    ]
    assert protocol.autobahn == []


def test_a_ping_is_answered_with_a_masked_pong_of_its_payload() -> None:
    protocol = Protocol()
    recorder = Recorder(protocol)
    protocol.dataReceived(server_frame(wsframe.PING, b"12 bytes ping") + text([17, 1, 2]))
    assert [(first, payload) for first, _, payload in unmask(b"".join(protocol.transport.written))] == [
        (0x8A, b"12 bytes ping")
    ]
    assert recorder.events == [("answer", 1, None), "batch"]


def test_a_goodbye_and_all_after_it_go_back_to_autobahn() -> None:
    protocol = Protocol()
    recorder = Recorder(protocol)
    goodbye = text([6, {"message": "the node stops"}, "wamp.close.system_shutdown"])
    close = server_frame(wsframe.CLOSE, b"\x03\xe8")
    protocol.dataReceived(text([17, 1, 2]) + goodbye + close[:1])
    assert recorder.events == [("answer", 1, None), ("end", "wamp.close.system_shutdown", "the node stops")]
    assert recorder.channel.released
    assert protocol.autobahn == [goodbye + close[:1]]
    protocol.dataReceived(close[1:])  # autobahn's own handler again
    assert protocol.autobahn == [goodbye + close[:1], close[1:]]
    recorder.channel.send([b'[16,2,{},"t",[]]'])
    assert protocol.transport.written == []  # released: nothing more is written


@pytest.mark.parametrize(
    "frame",
    [
        text([36, 1, 2, {}, [1]]),
        server_frame(wsframe.TEXT, b"not json"),
        server_frame(1, b"[17,", first=0x01),
        server_frame(2, b"\x93\x11\x01\x02"),
    ],
    ids=["unexpected-message", "not-json", "fragment", "binary"],
)
def test_what_the_channel_does_not_read_ends_it_and_goes_to_autobahn(frame: bytes) -> None:
    protocol = Protocol()
    recorder = Recorder(protocol)
    protocol.dataReceived(frame)
    assert recorder.events == [
        ("end", "wamp.error.protocol_violation", "the router sent a message this command does not expect")
    ]
    assert protocol.autobahn == [frame]


def test_a_close_goes_back_to_autobahn_the_loss_tells_the_rest() -> None:
    protocol = Protocol()
    recorder = Recorder(protocol)
    close = server_frame(wsframe.CLOSE, b"\x03\xe8")
    protocol.dataReceived(text([17, 1, 2]) + close)
    assert recorder.events == [("answer", 1, None)]
    assert recorder.channel.released
    assert protocol.autobahn == [close]


def test_release_hands_autobahn_the_part_of_a_frame_already_read() -> None:
    protocol = Protocol()
    recorder = Recorder(protocol)
    goodbye = text([6, {}, "wamp.close.normal"])
    protocol.dataReceived(goodbye[:4])
    recorder.channel.release()
    assert protocol.autobahn == [goodbye[:4]]
    assert recorder.events == ["batch"]
