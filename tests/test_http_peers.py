"""An HTTP connection's addresses are asked of its transport once (item 19,
:mod:`broker.router.crossbar.peers`)."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.web import http

from broker.router.crossbar import peers
from broker.router.crossbar.peers import kept


class Counting(StringTransport):
    """A transport that counts how often it is asked for its addresses."""

    def __init__(self, port: int) -> None:
        super().__init__(
            hostAddress=IPv4Address("TCP", "127.0.0.1", 8080),
            peerAddress=IPv4Address("TCP", "10.0.0.1", port),
        )
        self.asked = {"host": 0, "peer": 0}

    def getHost(self) -> Any:
        self.asked["host"] += 1
        return super().getHost()

    def getPeer(self) -> Any:
        self.asked["peer"] += 1
        return super().getPeer()


class Channel(http.HTTPChannel):
    """Twisted's channel with the addresses kept as the patch keeps them."""

    getPeer = kept("_broker_peer", http.HTTPChannel.getPeer)
    getHost = kept("_broker_host", http.HTTPChannel.getHost)


class Seen(http.Request):
    seen: ClassVar[list[tuple[Any, Any]]] = []

    def process(self) -> None:
        Seen.seen.append((self.client, self.host))
        self.setHeader(b"content-length", b"0")
        self.finish()


def test_each_request_on_a_connection_gets_the_addresses_asked_once() -> None:
    Seen.seen = []
    channel = Channel()
    channel.requestFactory = Seen
    transport = Counting(40000)
    channel.makeConnection(transport)
    for _ in range(3):
        channel.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert len(Seen.seen) == 3
    assert transport.asked == {"host": 1, "peer": 1}
    assert all(
        seen == (IPv4Address("TCP", "10.0.0.1", 40000), IPv4Address("TCP", "127.0.0.1", 8080))
        for seen in Seen.seen
    )


def test_a_channel_with_another_transport_asks_it_again() -> None:
    channel = Channel()
    first, second = Counting(1), Counting(2)
    channel.transport = first
    assert channel.getPeer() == IPv4Address("TCP", "10.0.0.1", 1)
    channel.transport = second
    assert channel.getPeer() == IPv4Address("TCP", "10.0.0.1", 2)
    assert channel.getPeer() == IPv4Address("TCP", "10.0.0.1", 2)
    assert (first.asked["peer"], second.asked["peer"]) == (1, 1)


def test_install_keeps_the_addresses_of_twisteds_channel(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("getPeer", "getHost"):
        monkeypatch.setattr(http.HTTPChannel, name, getattr(http.HTTPChannel, name))  # undone after
    peers.install()
    channel = http.HTTPChannel()
    transport = Counting(3)
    channel.transport = transport
    assert channel.getPeer() is channel.getPeer()
    assert channel.getHost() is channel.getHost()
    assert transport.asked == {"host": 1, "peer": 1}
