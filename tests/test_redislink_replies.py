"""The router's Redis link reads and writes RESP itself (:mod:`broker.router.resp`).

Why: txredisapi's pure-Python parser waits for the reactor's next turn after
every bulk string, and a parser that starts a reply again from its first byte
whenever more of it arrives reads a large ``XREAD`` reply several times over.
These tests feed :class:`~broker.router.resp.Replies` the bytes Redis sends,
whole and split at every byte, and check the values it hands on are the ones
txredisapi gives (strings, integers, nil, nested arrays, error replies as
``ResponseError``), that what it has parsed leaves its buffer at once (each
element is read once), and that :func:`~broker.router.resp.command` writes
what txredisapi writes.
"""

from __future__ import annotations

from typing import Any

import pytest
import txredisapi
from twisted.internet import tcp
from twisted.internet.main import CONNECTION_LOST

from broker.engines import redis_batcher
from broker.engines.redis_batcher import MAYBE_STORED as MAYBE
from broker.errors import HistoryUnanswered, RedisProtocolError
from broker.router import resp
from broker.router.redislink import _Protocol
from broker.router.resp import Replies, command

#: ``+OK``, an EVALSHA-like nested reply, nil, an empty array, then an error reply.
WIRE = (
    b"+OK\r\n"
    b"*4\r\n$4\r\nabcd\r\n:7\r\n*2\r\n$0\r\n\r\n$3\r\n\xc3\xa9t\r\n*0\r\n"
    b"$-1\r\n"
    b"*-1\r\n"
    b"-NOSCRIPT No matching script\r\n"
)

#: An array three deep holding nil, an error, a nil array, bytes that are no UTF-8, a bulk string
#: holding CRLF, and an integer after the innermost array closed; then a status reply.
NESTED = b"*3\r\n*2\r\n*3\r\n$-1\r\n-ERR inner\r\n*-1\r\n$2\r\n\xff\xfe\r\n$4\r\na\r\nb\r\n:-12\r\n+PONG\r\n"


def replies(chunks: list[bytes]) -> list[Any]:
    reader = Replies(txredisapi.ResponseError)
    out: list[Any] = []
    for chunk in chunks:
        reader.feed(chunk)
        out += reader.take()
    assert reader.buffered == 0
    return out


def check(out: list[Any]) -> None:
    assert out[:4] == ["OK", ["abcd", 7, ["", "ét"], []], None, None]
    assert len(out) == 5
    assert isinstance(out[4], txredisapi.ResponseError)
    assert str(out[4]) == "NOSCRIPT No matching script"


def check_nested(out: list[Any]) -> None:
    assert len(out) == 2
    (inner, text, number), status = out
    assert status == "PONG"
    assert (text, number) == ("a\r\nb", -12)
    (none, error, nil_array), raw = inner
    assert none is None and nil_array is None
    assert isinstance(error, txredisapi.ResponseError) and str(error) == "ERR inner"
    assert raw == b"\xff\xfe"


def test_replies_received_at_once() -> None:
    check(replies([WIRE]))
    check_nested(replies([NESTED]))


def test_replies_split_anywhere_wait_for_their_last_byte() -> None:
    for wire, checked in ((WIRE, check), (NESTED, check_nested)):
        for cut in range(1, len(wire)):
            checked(replies([wire[:cut], wire[cut:]]))
            for second in range(cut + 1, len(wire)):
                checked(replies([wire[:cut], wire[cut:second], wire[second:]]))
        checked(replies([wire[i : i + 1] for i in range(len(wire))]))


def test_an_element_is_parsed_once_and_leaves_the_buffer() -> None:
    reader = Replies(txredisapi.ResponseError)
    reader.feed(b"*3\r\n$3\r\none\r\n$3\r\ntw")
    assert reader.take() == []
    assert reader.buffered == len(b"$3\r\ntw")  # "one" and the array's header are taken out
    reader.feed(b"o\r\n:3")
    assert reader.take() == []
    assert reader.buffered == len(b":3")
    reader.feed(b"\r\n+OK\r\n")
    assert reader.take() == [["one", "two", 3], "OK"]
    assert reader.buffered == 0


def test_a_long_bulk_string_is_looked_at_again_only_once_it_is_whole() -> None:
    reader = Replies(txredisapi.ResponseError)
    body = b"x" * 100_000
    reader.feed(b"*1\r\n$100000\r\n" + body[:10])
    assert reader.take() == []
    for at in range(10, len(body), 1000):
        reader.feed(body[at : at + 1000])
        assert reader.take() == []
    # the chunks wait unjoined: nothing was parsed again while the string was incomplete
    assert len(reader._chunks) == 100
    reader.feed(b"\r\n")
    assert reader.take() == [["x" * 100_000]]


def test_bytes_that_are_no_reply_raise() -> None:
    reader = Replies(txredisapi.ResponseError)
    reader.feed(b"?what\r\n")
    with pytest.raises(RedisProtocolError, match="unexpected reply b'\\?what"):
        reader.take()


def test_a_command_is_what_txredisapi_writes() -> None:
    protocol = txredisapi.BaseRedisProtocol()
    args: list[Any] = ["EVALSHA", "a" * 40, 2, "{b}:meta", b"\x00\xff", "é", "", "1.5", -3]
    assert command(args) == protocol._build_command(*args)
    assert _Protocol()._build_command(*args) == protocol._build_command(*args)
    assert command(["PING"]) == b"*1\r\n$4\r\nPING\r\n"
    # an argument written once per command is reused for its repeats, and only for equal ones
    repeats: list[Any] = [*args, "é", 2, "1", b"1", 1, "2", "", b"\x00\xff", -3, "a" * 40]
    assert command(repeats) == protocol._build_command(*repeats)


def test_a_command_argument_of_another_type_is_refused() -> None:
    with pytest.raises(TypeError, match="str, bytes or int, not float"):
        command(["SET", "k", 1.5])  # type: ignore[list-item]


# -- bounded against a corrupt or hostile peer ------------------------------------


@pytest.mark.parametrize(
    ("wire", "says"),
    [
        (b"$99999999999999\r\n", "bulk string of 99999999999999 bytes"),  # refused before buffering it
        (b"*2000000000\r\n", "array of 2000000000 elements"),
        (b"$-2\r\n", "bulk string of -2 bytes"),
        (b"$abc\r\n", "no RESP2"),
        (b":12x\r\n", "no RESP2"),
        (b"$3\r\nabcXY", "not followed by CRLF"),
        (b"*1\r\n" * (resp.MAX_DEPTH + 1), f"nested deeper than {resp.MAX_DEPTH}"),
        (b"+" + b"o" * resp.MAX_LINE, f"line longer than {resp.MAX_LINE} bytes"),
    ],
)
def test_a_reply_no_redis_sends_is_a_protocol_error_at_once(wire: bytes, says: str) -> None:
    reader = Replies(txredisapi.ResponseError)
    reader.feed(wire)
    with pytest.raises(RedisProtocolError, match=says):
        reader.take()


def test_replies_at_the_bounds_are_read() -> None:
    reader = Replies(txredisapi.ResponseError, max_bulk=5)
    deep = b"*1\r\n" * resp.MAX_DEPTH + b":1\r\n"
    reader.feed(b"$5\r\nabcde\r\n" + deep + b"+" + b"o" * (resp.MAX_LINE - 3) + b"\r\n")
    value: Any = 1
    for _ in range(resp.MAX_DEPTH):
        value = [value]
    assert reader.take() == ["abcde", value, "o" * (resp.MAX_LINE - 3)]
    reader.feed(b"$6\r\n")
    with pytest.raises(RedisProtocolError, match="at most 5"):
        reader.take()


class _Transport:
    def __init__(self) -> None:
        self.aborted = False

    def abortConnection(self) -> None:
        self.aborted = True


def test_the_link_fails_every_waiting_call_and_drops_the_connection() -> None:
    protocol = _Protocol()
    transport = _Transport()
    protocol.transport = transport
    waiting = [protocol.replyQueue.get(), protocol.replyQueue.get()]
    got: list[Any] = []
    for deferred in waiting:
        deferred.addBoth(got.append)
    protocol.dataReceived(b"$99999999999999\r\n")
    assert transport.aborted
    assert len(got) == 2
    assert all(isinstance(r, RedisProtocolError) for r in got)


def test_a_call_failed_by_a_corrupt_reply_tells_its_publishers_perhaps_stored() -> None:
    """Redis may have run the call whose reply came corrupt: not "not stored" (a 503 that says a
    retry with the same Idempotency-Key publishes at most once), never a 200."""
    refusal = redis_batcher.failure(RedisProtocolError("unexpected reply"), 2.0)
    assert isinstance(refusal, HistoryUnanswered)
    assert (
        str(refusal) == f"the history engine did not answer (RedisProtocolError: unexpected reply): {MAYBE}"
    )


def bare_client(accepts: int | None) -> tuple[Any, list[bytes], list[bytes]]:
    """A TCP transport that is not connected to anything: its socket takes ``accepts`` bytes
    per send (None: the connection is lost); what it sends and what it buffers are recorded."""
    transport: Any = tcp.Client.__new__(tcp.Client)
    transport.dataBuffer, transport.offset, transport._tempDataBuffer = b"", 0, []
    transport.connected, transport.disconnecting = True, False
    sent: list[bytes] = []
    buffered: list[bytes] = []

    def write_some(data: bytes) -> Any:
        if accepts is None:
            return CONNECTION_LOST
        sent.append(bytes(data[:accepts]))
        return min(accepts, len(data))

    def write(data: bytes) -> None:
        buffered.append(data)
        transport._tempDataBuffer.append(data)

    transport.writeSomeData, transport.write = write_some, write
    return transport, sent, buffered


def test_a_command_is_sent_at_once_unless_bytes_wait_before_it() -> None:
    protocol = _Protocol()
    protocol.transport, sent, buffered = bare_client(1 << 20)
    protocol._write(b"PING1")
    assert (sent, buffered) == ([b"PING1"], [])  # no buffer, no registration for writing
    protocol.transport, sent, buffered = bare_client(3)
    protocol._write(b"PING2")
    protocol._write(b"PING3")
    assert sent == [b"PIN"]  # the rest is buffered, and the next command waits behind it
    assert buffered == [b"G2", b"PING3"]
    protocol.transport, sent, buffered = bare_client(None)
    protocol._write(b"PING4")
    assert buffered == [b"PING4"]  # the buffered write finds the lost connection


class _OwnWrites(tcp.Client):
    """A TCP client class with its own ``writeSomeData``: not one ``send_now`` reads the buffer
    fields of (the instance's recorder from :func:`bare_client` stands in for it here)."""

    def writeSomeData(self, data: Any) -> Any:
        return super().writeSomeData(data)


def test_a_command_on_another_transport_class_or_over_tls_goes_through_its_write() -> None:
    protocol = _Protocol()
    protocol.transport, sent, buffered = bare_client(1 << 20)
    protocol.transport.__class__ = _OwnWrites
    protocol._write(b"PING5")
    assert (sent, buffered) == ([], [b"PING5"])
    protocol.transport, sent, buffered = bare_client(1 << 20)
    protocol.transport.TLS = True  # TLS started on the connection: the TLS layer writes
    protocol._write(b"PING6")
    assert (sent, buffered) == ([], [b"PING6"])
