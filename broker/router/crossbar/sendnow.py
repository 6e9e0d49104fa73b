"""An HTTP answer (or a Redis command) sent from the call that writes it, not from the reactor's next turn.

What Twisted 26.10 does: ``Request.write`` hands the status line, headers and
body to the TCP transport (``twisted/internet/abstract.py``
``FileDescriptor.write``/``writeSequence``), which buffers them and registers
the socket for writing (an ``epoll_ctl``); on the reactor's next turn
``doWrite`` sends them and unregisters it (another ``epoll_ctl``). For one
small answer to a publish request that is two system calls and a reactor
turn more than the ``send`` itself: about 15 µs of the router's ~250 µs per
single HTTP publish. What Broker does instead, in :func:`write_now`: the
transport's writes during ``request.write`` are collected, and when nothing
is buffered before them they go out at once in one ``writeSomeData`` (the
transport's own non-blocking ``send``); what the socket does not take, or
an error, goes to the transport's ``write`` as before, so flow control,
producers and connection loss stay Twisted's. Any transport that is not a
plain TCP connection of the kind checked here (TLS, a protocol wrapper, a
test's fake) takes ``request.write`` unchanged. :func:`send_now` does the
same for bytes written to such a transport directly (the Redis link's
commands, :mod:`broker.router.redislink`).

Reads Twisted's private buffer fields (``_tempDataBuffer``, ``dataBuffer``,
``offset``, ``_writeDisconnected``, ``TLS``): only on ``tcp.Connection`` classes
whose ``write``, ``writeSequence`` and ``writeSomeData`` are the ones read here
(checked once per class), and only when TLS is off.
Tests: ``tests/test_sendnow.py``, ``tests/test_redislink_replies.py``.
"""

from __future__ import annotations

from typing import Any, Final

from twisted.internet import _newtls, abstract, tcp

#: The fields of a transport :func:`write_now` reads, all of which a checked class has.
FIELDS: Final = ("dataBuffer", "offset", "_writeDisconnected", "connected", "disconnecting", "TLS")

_WRITES: Final = (abstract.FileDescriptor.write, _newtls.ConnectionMixin.write)
_SEQUENCES: Final = (abstract.FileDescriptor.writeSequence, _newtls.ConnectionMixin.writeSequence)
_checked: dict[type, bool] = {}


def _direct(kind: type) -> bool:
    """Whether transports of class ``kind`` are Twisted's TCP connections, writing as checked here."""
    fits = _checked.get(kind)
    if fits is None:
        fits = (
            issubclass(kind, tcp.Connection)
            and kind.write in _WRITES
            and kind.writeSequence in _SEQUENCES
            and kind.writeSomeData is tcp.Connection.writeSomeData
            and all(hasattr(kind, field) for field in FIELDS)
        )
        _checked[kind] = fits
    return fits


def _idle(transport: Any) -> bool:
    """Whether ``transport`` is a plain TCP connection, open, with nothing buffered to send."""
    return (
        _direct(type(transport))
        and transport.connected
        and not transport.disconnecting
        and not transport.TLS
        and not transport._writeDisconnected
        and not transport._tempDataBuffer
        and len(transport.dataBuffer) <= transport.offset
    )


def _send(transport: Any, blob: bytes) -> None:
    """Send ``blob`` on an idle ``transport`` at once; what the socket does not take (or all of
    it, after an error) through the transport's buffer: its next doWrite sends it, or meets
    the error again and loses the connection as it would have."""
    sent = transport.writeSomeData(blob)
    if sent == len(blob):
        return
    transport.write(blob[sent:] if isinstance(sent, int) else blob)


def send_now(transport: Any, data: bytes) -> None:
    """``transport.write(data)``, sent at once when ``transport`` is a plain TCP connection with
    nothing buffered (else, or for what the socket does not take, through its buffer)."""
    if _idle(transport):
        _send(transport, data)
    else:
        transport.write(data)


def write_now(request: Any, data: bytes) -> None:
    """``request.write(data)``, its bytes sent at once when the socket's buffer is empty."""
    transport = getattr(request.channel, "transport", None)
    if transport is None or not _idle(transport):
        request.write(data)
        return
    collected: list[bytes] = []
    transport.write = collected.append
    transport.writeSequence = collected.extend
    try:
        request.write(data)
    finally:
        del transport.write, transport.writeSequence
    if collected:
        _send(transport, b"".join(collected))
