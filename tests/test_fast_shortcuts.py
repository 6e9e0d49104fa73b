"""Shortcuts of Broker's fast paths against the long way they stand for, without a node.

Small client frames unmasked without autobahn's cffi masker
(:mod:`broker.router.crossbar.unmask`); the size shortcut of
``check_deliverable`` against :func:`wire_size` for every serializer;
autobahn's ``message`` event fired only for listeners
(:mod:`broker.router.crossbar.protocol`); and the ``fast_path`` setting,
parsed and applied live on reload; and the fast dispatch's chunk sender
(:mod:`broker.router.crossbar.fastpublish`) with receivers that vanish or
refuse an event's size; and EVENTs built as autobahn's constructor builds them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
import txaio

txaio.use_twisted()  # autobahn's serializers keep statistics with txaio's clock

from autobahn.exception import PayloadExceededError  # noqa: E402
from autobahn.wamp import message  # noqa: E402
from autobahn.wamp import serializer as serializers  # noqa: E402
from crossbar.router import broker as crossbar_broker  # noqa: E402

from broker.config.settings import parse_settings  # noqa: E402
from broker.errors import ConfigError  # noqa: E402
from broker.router.crossbar import fastpublish  # noqa: E402


def test_fast_path_setting() -> None:
    assert parse_settings({}).fast_path is True
    assert parse_settings({"fast_path": False}).fast_path is False
    with pytest.raises(ConfigError, match=r"^\$\.fast_path: must be true or false, not 'no'$"):
        parse_settings({"fast_path": "no"})


@pytest.mark.parametrize("length", [0, 1, 3, 4, 5, 150, 4096])
def test_small_frames_unmask_as_autobahn_does(length: int) -> None:
    """Whole and in pieces (a frame can arrive over several reads), the same bytes and pointer."""
    from autobahn.websocket import xormasker

    from broker.router.crossbar.unmask import SmallMasker

    data, mask = os.urandom(length), os.urandom(4)
    for pieces in ([data], [data[:1], data[1:7], data[7:]]):
        theirs, ours = xormasker.create_xor_masker(mask, length), SmallMasker(mask)
        assert [ours.process(p) for p in pieces] == [theirs.process(p) for p in pieces]
        assert ours.pointer() == theirs.pointer() == length


ODD_VALUES: list[Any] = [
    None,
    True,
    0,
    -24,
    2**64,
    -(2**70),
    1.5,
    1e300,
    float("nan"),
    "",
    "é",
    "\x00\x01\x1f",
    '"\\',
    [],
    {},
    [[[]]],
    {"a": None},
    {1: 2},
    {True: None},
    b"",
    b"\x00",
    ["x" * 300, [0] * 1000, {str(i): i for i in range(300)}],
]


@pytest.mark.parametrize("value", ODD_VALUES, ids=lambda v: repr(v)[:20])
def test_the_size_shortcut_bounds_every_serializer(value: Any) -> None:
    """``check_deliverable`` skips measuring an event when 18 times the size of a message holding
    it fits: that must bound :func:`wire_size` for every serializer the message may have used."""
    import cbor2
    import msgpack

    from broker.history.recovery import _JSON_FACTOR
    from broker.history.wiresize import wire_size

    encoders: list[Callable[[Any], bytes]] = [cbor2.dumps, lambda v: json.dumps(v).encode()]
    if not isinstance(value, int) or abs(value) < 2**63:  # MessagePack has no bigger integers
        encoders.append(lambda v: msgpack.packb(v, use_bin_type=True))
    if isinstance(value, bytes):
        encoders.pop(1)  # JSON has no bytes (autobahn writes them base64, longer)
    for encode in encoders:
        assert wire_size(value) <= _JSON_FACTOR * len(encode(value))


def test_fast_path_applies_live_on_reload() -> None:
    """Turning ``fast_path`` off is a live change (the reloader calls ``enable_fast_path``)."""
    from broker.config.reload import plan_reload
    from tests.test_reload import ENV, EXTRA, extra, running

    new = running()
    extra(new)["fast_path"] = False
    plan = plan_reload(running(), new, ENV)
    assert plan.live == (f"{EXTRA}.fast_path",) and plan.restart == ()
    assert plan.settings.fast_path is False


class _Channel:
    """What autobahn's ``onMessageEnd`` reads of a WebSocket protocol."""

    def __init__(self, listeners: dict[str, list[Any]] | None) -> None:
        self._listeners = listeners
        self.failedByMe = False
        self.trackedTimings = None
        self.message_data: list[bytes] | None = [b"[16,", b"1]"]
        self.message_is_binary = False
        self.got: list[tuple[bytes, bool]] = []
        self.fired: list[Any] = []

    def _onMessage(self, payload: bytes, is_binary: bool) -> None:
        self.got.append((payload, is_binary))


@pytest.mark.parametrize("listeners", [None, {"message": [print]}])
def test_message_end_fires_only_for_listeners(listeners: dict[str, list[Any]] | None) -> None:
    """With no listener the message is handed on and nothing is fired; with one, autobahn's own
    ``onMessageEnd`` runs (which fires the ``message`` event)."""
    from broker.router.crossbar.protocol import _make_on_message_end

    channel = _Channel(listeners)
    on_message_end = _make_on_message_end(lambda self: self.fired.append("autobahn's"))
    on_message_end(channel)
    if listeners is None:
        assert channel.got == [(b"[16,1]", False)] and channel.fired == []
        assert channel.message_data is None
    else:
        assert channel.got == [] and channel.fired == ["autobahn's"]


class _Transport:
    def __init__(self, sent: list[Any], name: str, too_large: bool = False) -> None:
        self.sent, self.name, self.too_large = sent, name, too_large

    def send(self, msg: Any) -> None:
        if self.too_large:
            raise PayloadExceededError("too large for this receiver")
        self.sent.append((self.name, msg))


class _Receiver:
    def __init__(self, sent: list[Any], name: str, too_large: bool = False) -> None:
        self._session_id: int | None = len(sent) + 1
        self._transport: _Transport | None = _Transport(sent, name, too_large)


class _Router:
    """``Router.send`` as far as the chunk sender relies on it: to the transport, counted."""

    def __init__(self) -> None:
        self._message_stats: dict[str, dict[str, int]] = {"sent": {}}

    def send(self, receiver: _Receiver, msg: Any) -> None:
        assert receiver._transport is not None
        receiver._transport.send(msg)
        sent = self._message_stats["sent"]
        sent["event"] = sent.get("event", 0) + 1


class _Later:
    """Stands in for the ``txaio`` crossbar's broker sees: keeps the calls for the test to run."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, Any, tuple[Any, ...]]] = []

    def call_later(self, delay: float, fn: Any, *args: Any) -> None:
        self.calls.append((delay, fn, args))


def test_chunks_skip_vanished_and_too_large_receivers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of 2 in later turns; a receiver gone by its turn and one whose transport refuses
    the size get nothing and stop nobody; the router counts the EVENTs actually handed over."""
    later = _Later()
    monkeypatch.setattr(crossbar_broker, "txaio", later)
    sent: list[Any] = []
    receivers = []
    for name in "abcdef":
        receivers.append(_Receiver(sent, name, too_large=name == "b"))
    router, msg = _Router(), SimpleNamespace(publication=9)
    fastpublish._send_chunk(router, msg, receivers, 2, 7)
    assert sent == [("a", msg)]
    receivers[2]._transport = None  # c leaves before its chunk's turn
    receivers[4]._session_id = None  # so does e
    while later.calls:
        delay, fn, args = later.calls.pop(0)
        assert delay == 0
        fn(*args)
    assert sent == [("a", msg), ("d", msg), ("f", msg)]
    assert router._message_stats["sent"] == {"event": 3}


EVENT_FIELDS: list[tuple[Any, ...]] = [
    (5, 6, [{"n": 1}], {"position": {"seq": 1}}, None, None, None, None, None, None),
    (
        5,
        6,
        None,
        None,
        7,
        "alice",
        "backend",
        "public.x",
        "h",
        [{"session": 1, "authid": None, "authrole": "r"}],
    ),
    (5, 6, (1, 2), {}, None, None, None, "public.y", None, None),
]


@pytest.mark.parametrize("fields", EVENT_FIELDS)
def test_events_are_built_as_autobahn_s_constructor_builds_them(fields: tuple[Any, ...]) -> None:
    """Every slot of the EVENT the dispatch builds is what ``message.Event(...)`` sets, and the
    installed autobahn has exactly the slots it sets (else it would use the constructor)."""
    names = ("args", "kwargs", "publisher", "publisher_authid", "publisher_authrole", "topic")
    names += ("transaction_hash", "forward_for")
    built = fastpublish.new_event(*fields)
    made = message.Event(fields[0], fields[1], **dict(zip(names, fields[2:], strict=True)))
    assert fastpublish._SLOTS_KNOWN
    for slot in fastpublish.EVENT_SLOTS:
        assert getattr(built, slot) == getattr(made, slot), slot
    assert built == made and built.marshal() == made.marshal()
    assert built._serialized is not made._serialized


@pytest.mark.parametrize("fields", EVENT_FIELDS)
@pytest.mark.parametrize("kind", ["json", "msgpack", "cbor"])
def test_the_constructor_fallback_builds_the_same_event(
    fields: tuple[Any, ...], kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With an autobahn whose ``message.Event`` has other slots (``_SLOTS_KNOWN`` false),
    :func:`fastpublish.new_event` builds it with the constructor: every field, and the bytes
    each serializer writes for it, as the fast route's."""
    serializer = {
        "json": serializers.JsonObjectSerializer,
        "msgpack": serializers.MsgPackObjectSerializer,
        "cbor": serializers.CBORObjectSerializer,
    }[kind]()
    fast = fastpublish.new_event(*fields)
    monkeypatch.setattr(fastpublish, "_SLOTS_KNOWN", False)
    made: list[Any] = []
    event_class = message.Event

    class Counted(event_class):  # type: ignore[misc,valid-type]
        __slots__ = ()

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            made.append((args, kwargs))
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(message, "Event", Counted)
    fallback = fastpublish.new_event(*fields)
    assert type(fallback) is Counted and len(made) == 1  # the constructor built it
    for slot in fastpublish.EVENT_SLOTS - {"_serialized"}:
        assert getattr(fallback, slot) == getattr(fast, slot), slot
    assert fallback.marshal() == fast.marshal()
    assert fallback.serialize(serializer) == fast.serialize(serializer)
