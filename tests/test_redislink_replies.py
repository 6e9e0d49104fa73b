"""The router's Redis link reads replies itself (:class:`broker.router.redislink._Replies`).

Why: txredisapi's pure-Python parser waits for the reactor's next turn after
every bulk string, so the link parses replies in one pass. These tests feed it
the bytes Redis sends, whole and split at every byte, and check the values it
hands on are the ones txredisapi gives (strings, integers, nil, nested arrays,
error replies as ``ResponseError``).
"""

from __future__ import annotations

from typing import Any

import txredisapi

from broker.router.redislink import _Replies

#: ``+OK``, an EVALSHA-like nested reply, nil, an empty array, then an error reply.
WIRE = (
    b"+OK\r\n"
    b"*4\r\n$4\r\nabcd\r\n:7\r\n*2\r\n$0\r\n\r\n$3\r\n\xc3\xa9t\r\n*0\r\n"
    b"$-1\r\n"
    b"*-1\r\n"
    b"-NOSCRIPT No matching script\r\n"
)


def replies(chunks: list[bytes]) -> list[Any]:
    reader = _Replies()
    out: list[Any] = []
    for chunk in chunks:
        reader.feed(chunk)
        while True:
            complete, reply = reader.next()
            if not complete:
                break
            out.append(reply)
    return out


def check(out: list[Any]) -> None:
    assert out[:4] == ["OK", ["abcd", 7, ["", "ét"], []], None, None]
    assert len(out) == 5
    assert isinstance(out[4], txredisapi.ResponseError)
    assert str(out[4]) == "NOSCRIPT No matching script"


def test_replies_received_at_once() -> None:
    check(replies([WIRE]))


def test_replies_split_anywhere_wait_for_their_last_byte() -> None:
    for cut in range(1, len(WIRE)):
        check(replies([WIRE[:cut], WIRE[cut:]]))
    check(replies([WIRE[i : i + 1] for i in range(len(WIRE))]))
