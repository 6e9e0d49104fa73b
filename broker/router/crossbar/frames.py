"""Frame once, deliver many: an EVENT is serialized and framed once per serializer, then written.

What crossbar 26.10 does (item 17 of the index in :mod:`broker.router.crossbar`):
it builds one ``message.Event`` per subscription and hands the same object to
each receiver's transport (``Router.send``, then Broker's slow-subscriber
wrapper, then autobahn's ``send``), where autobahn serializes it
again (``Message.serialize`` caches per object-serializer *instance*, and
every connection has its own) and frames it again (``sendMessage`` ->
``sendFrame`` -> ``sendData``): per delivered event that was more than half
of the router's time (``bench/router_profile.py``). ``Router.send`` itself
looks up the trace settings and the message's type name on every call.

What Broker does instead: a crossbar ``WampWebSocketServerProtocol`` whose
bytes are provably those of the normal path gets a :class:`FrameKey` when it
opens (state OPEN, no permessage-deflate, ``autoFragmentSize`` 0, server
frames unmasked, ``logFrames``/``logOctets`` and timing tracking off, no
``debug_traffic``, and an object serializer of a class it knows: JSON,
MessagePack, CBOR, UBJSON, batched or not; the key is the class and the
options its ``serialize`` reads). ``Router.send`` (:func:`make_router_send`)
writes an EVENT to such a connection itself: serialized by the connection's
own object serializer once per key, framed once
(:func:`broker.core.wsframe.frame`), kept on the message (in its
``_serialized`` dict, under the key, as crossbar's MQTT bridge keeps its own
forms there) and written with ``transport.write``, as ``sendData`` does when
nothing is queued; one Python call per delivery instead of four. An EVENT
of a publish with history (HTTP or WAMP) comes with its arguments' JSON
already written (the text its store was given, :mod:`broker.history.eventtext`), kept under
:data:`TAIL`: for autobahn's JSON serializer its frame is then the type, ids
and details written here and that tail (:func:`_spliced`), the same bytes. Everything
else goes to the transport's ``send`` as before (autobahn's path, with
:mod:`.backpressure`'s wrapper): other message types and transports, a peer
let go or closing, a connection with a queued write (``send_queue``), a
serializer whose statistics trigger callbacks (``set_stats_autoreset``),
``fast_path`` false (:func:`configure`, live). Kept as the normal path keeps
them: the serializer's statistics (crossbar publishes them as
``wamp.session.on_stats``), ``maxMessagePayloadSize``
(``PayloadExceededError``, which crossbar's dispatch loop catches), a
serialization error's ``SerializationError``, the slow-subscriber bound
after the write (:mod:`.backpressure`'s check and its ``_let_go``), and
``Router._message_stats["sent"]`` (delivery metrics count it). Not kept:
autobahn's ``trafficStats`` octet and message counters, which crossbar reads
only for ``debug_traffic`` (such connections take the normal path). Each
fast write is counted (:func:`frames_written`: ``broker_fast_frames_total``).
A traced router, or a session without a transport, goes to crossbar's own
``Router.send``; otherwise the type name is looked up once per class.

Wraps ``autobahn/wamp/websocket.py: WampWebSocketProtocol.onOpen`` on
``crossbar/router/protocol.py: WampWebSocketServerProtocol``; replaces
``crossbar/router/router.py: Router.send``. Tests: ``tests/test_fast_frames.py``.
"""

from __future__ import annotations

from json import encoder as json_encoder
from typing import TYPE_CHECKING, Any, Final

from autobahn.exception import PayloadExceededError
from autobahn.wamp import message
from autobahn.wamp import serializer as wamp_serializer
from autobahn.wamp.exception import SerializationError
from autobahn.websocket.protocol import WebSocketProtocol
from crossbar.router.protocol import WampWebSocketServerProtocol
from crossbar.router.router import Router

from broker.core import jsonwriter
from broker.core.wsframe import HEADER_LENGTH, frame
from broker.router.crossbar import backpressure
from broker.router.crossbar.context import Door
from broker.router.crossbar.protocol import _log

if TYPE_CHECKING:
    from broker.router.state import NodeState

#: Object serializer class name -> the attributes its ``serialize`` reads (the bytes depend on
#: nothing else). A class missing from autobahn's build (``bjdata`` not installed) is skipped.
KNOWN_SERIALIZERS: Final = {
    "JsonObjectSerializer": ("_batched", "_use_binary_hex_encoding"),
    "MsgPackObjectSerializer": ("_batched",),
    "CBORObjectSerializer": ("_batched",),
    "UBJSONObjectSerializer": ("_batched",),
}
_OPTIONS: Final = {
    cls: options
    for name, options in KNOWN_SERIALIZERS.items()
    if (cls := getattr(wamp_serializer, name, None)) is not None
}
_EVENT: Final = message.Event
_EVENT_TYPE: Final = message.Event.MESSAGE_TYPE
_OPEN: Final = WebSocketProtocol.STATE_OPEN
_HEADER: Final = HEADER_LENGTH


class FrameKey:
    """What determines an EVENT's frame on a connection: its object serializer's class and options.

    One instance per distinct (class, options) (:func:`frame_key`), so a lookup
    hashes by identity. ``NAME`` is what crossbar's tracing reads from the keys
    of a message's ``_serialized`` (``crossbar/edge/worker/tracing.py``).
    """

    __slots__ = ("NAME", "binary", "options")

    def __init__(self, name: str, binary: bool, options: tuple[Any, ...]) -> None:
        self.NAME = f"{name}.frame"
        self.binary = binary
        self.options = options

    def __repr__(self) -> str:
        return f"FrameKey({self.NAME!r}, {self.options!r})"


_keys: dict[tuple[Any, ...], FrameKey] = {}
#: Frames written by the fast path since the process started (``broker_fast_frames_total``).
_written = 0
#: ``fast_path``: false sends every message through autobahn's path (:func:`configure`).
_enabled = True


def configure(fast_path: bool) -> None:
    """Turn the fast path on or off for every connection, from its next send (a live reload)."""
    global _enabled
    _enabled = fast_path


def frames_written() -> int:
    """How many EVENT frames the fast path has written in this process."""
    return _written


def frame_key(object_serializer: Any) -> FrameKey | None:
    """The key of ``object_serializer``'s frames, or None for a class not known to frame alike."""
    cls = type(object_serializer)
    options = _OPTIONS.get(cls)
    if options is None:
        return None
    values = tuple(getattr(object_serializer, name) for name in options)
    key = _keys.get((cls, values))
    if key is None:
        key = _keys[(cls, values)] = FrameKey(cls.NAME, bool(cls.BINARY), values)
    return key


def eligible(protocol: Any) -> FrameKey | None:
    """The :class:`FrameKey` of an opened WebSocket whose EVENT bytes the fast path reproduces
    exactly (see the module docstring), or None: it keeps autobahn's path for every message."""
    if protocol.state != _OPEN or protocol._perMessageCompress is not None:
        return None
    if protocol.autoFragmentSize or protocol.maskServerFrames or not protocol.factory.isServer:
        return None
    if protocol.logFrames or protocol.logOctets or protocol.trackedTimings:
        return None
    if getattr(protocol.factory, "debug_traffic", False):
        return None  # crossbar logs trafficStats every second, which the fast path does not count
    ser = getattr(protocol, "_serializer", None)
    if ser is None or type(ser).serialize is not wamp_serializer.Serializer.serialize:
        return None  # the statistics kept below are those of autobahn's Serializer.serialize
    return frame_key(ser._serializer)


def _json_writer(hex_: bool) -> Any:
    """What ``JsonObjectSerializer.serialize`` (``use_binary_hex_encoding=hex_``) computes before
    its UTF-8 encoding, as one callable made once: ``json.dumps(obj, cls=_WAMPJsonEncoder,
    **options)`` is ``_WAMPJsonEncoder(**options).encode(obj)``, whose C encoder
    :func:`broker.core.jsonwriter.writer` makes once. None without the C encoder or with ujson."""
    if getattr(wamp_serializer, "_USE_UJSON", True) or getattr(json_encoder, "c_make_encoder", None) is None:
        return None
    options = {"separators": (",", ":"), "ensure_ascii": False, "sort_keys": False}
    return jsonwriter.writer(wamp_serializer._WAMPJsonEncoder(**options, use_binary_hex_encoding=hex_))


#: ``use_binary_hex_encoding`` -> :func:`_json_writer` (None: autobahn's serialize for JSON too).
_JSON_WRITERS: Final = {hex_: _json_writer(hex_) for hex_ in (False, True)}


def _serialize(serializer: Any, obj: list[Any]) -> bytes:
    """``serializer.serialize(obj)`` for a marshalled WAMP message (a list); for autobahn's JSON
    serializer the same bytes from :func:`_json_writer` (making an encoder per call was 40% of
    serializing an EVENT, the Python layers around the C encoder another 30%)."""
    if type(serializer) is not wamp_serializer.JsonObjectSerializer:
        return serializer.serialize(obj)  # type: ignore[no-any-return]
    write = _JSON_WRITERS[serializer._use_binary_hex_encoding]
    if write is None:
        return serializer.serialize(obj)  # type: ignore[no-any-return]
    text: bytes = write(obj).encode("utf8")
    return text + b"\30" if serializer._batched else text


class _Tail:
    """The key an EVENT's written tail is kept under in its ``_serialized`` (:data:`TAIL`)."""

    __slots__ = ()
    #: what crossbar's tracing reads of a key (a traced router never takes the fast path)
    NAME = "json.tail"


#: ``msg._serialized[TAIL]``: what follows the details in the JSON frame of an EVENT made by
#: :func:`broker.router.crossbar.fastpublish.new_event` (its ``args``, then its ``kwargs`` if
#: any: :func:`broker.history.eventtext.wire_tail`), so :func:`_spliced` writes only the rest.
TAIL: Final = _Tail()


def _spliced(serializer: Any, msg: Any, tail: str) -> bytes | None:
    """``_serialize(serializer, msg.marshal())`` for an EVENT whose ``tail`` was written: its
    type, ids and details, then ``tail``; None if ``serializer`` is not autobahn's JSON one (or
    :func:`_json_writer` is None), or for an id that is no ``int`` or an encrypted payload."""
    if type(serializer) is not wamp_serializer.JsonObjectSerializer:
        return None
    write = _JSON_WRITERS[serializer._use_binary_hex_encoding]
    sub, pub = msg._subscription, msg._publication
    if write is None or type(sub) is not int or type(pub) is not int or msg._payload is not None:
        return None
    if (
        msg._publisher is None
        and msg._publisher_authid is None
        and msg._publisher_authrole is None
        and msg._topic is None
        and msg._retained is None
        and msg._transaction_hash is None
        and msg._x_acknowledged_delivery is None
        and msg._forward_for is None
    ):
        details = "{}"  # what Event.marshal's details are then
    else:
        details = write(msg.marshal()[3])
    head = f"[{_EVENT_TYPE},{sub},{pub},{details}"
    data = (f"{head},{tail}]" if tail else f"{head}]").encode("utf8")
    return data + b"\30" if serializer._batched else data


def _build(protocol: Any, msg: Any, key: FrameKey) -> bytes:
    """Serialize ``msg`` with the connection's object serializer and frame it (a cache miss)."""
    serializer = protocol._serializer._serializer
    try:
        tail = msg._serialized.get(TAIL)
        payload = tail is not None and _spliced(serializer, msg, tail)
        if not payload:
            payload = _serialize(serializer, msg.marshal())
    except Exception as e:  # as autobahn's WampWebSocketProtocol.send words and raises it
        protocol.log.error(f"WAMP message serialization error: {e}")
        raise SerializationError(f"WAMP message serialization error: {e}") from e
    built = msg._serialized[key] = frame(payload, key.binary)
    return built


def _refuse_oversize(protocol: Any, n: int) -> None:
    """What ``WebSocketProtocol.sendMessage`` does with a payload over ``maxMessagePayloadSize``."""
    protocol.wasMaxMessagePayloadSizeExceeded = True
    emsg = (
        f"tried to send WebSocket message with size {n} exceeding payload limit of "
        f"{protocol.maxMessagePayloadSize} octets"
    )
    protocol.log.warn(emsg)
    raise PayloadExceededError(emsg)


def _make_on_open(original: Any) -> Any:
    def on_open(self: Any) -> None:
        original(self)
        self._broker_frame_key = eligible(self)

    return on_open


def _unsendable(state: NodeState, transport: Any, error: SerializationError) -> None:
    """An event this connection's serializer cannot encode (a publish is checked for that,
    :func:`broker.core.protocol.unsendable`, so none should get here): the others still get
    it; this one is counted (``UnsendableEvent``), logged and dropped, so its client reconnects
    and learns of the gap instead of missing the event silently. Crossbar's loop would have
    ended at it, for every subscriber after it."""
    state.count_rejection("UnsendableEvent")
    _log.warn("closing {peer}: {error}", peer=getattr(transport, "peer", "?"), error=str(error)[:200])
    transport.abort()


def make_router_send(
    state: NodeState, max_buffer_bytes: int, original: Any, websocket: Any = WampWebSocketServerProtocol
) -> Any:
    """``Router.send`` with the fast path: an EVENT to a ``websocket`` connection that qualifies
    is written here; anything else goes to the transport's ``send``, counted the same; a traced
    router (or a session without a transport) to ``original``, crossbar's own."""
    names: dict[type, str] = {}

    def send(self: Any, session: Any, msg: Any) -> None:
        transport = session._transport
        if self._trace_traffic or self._is_traced or not transport:
            original(self, session, msg)
            return
        cls = msg.__class__
        try:
            if (
                cls is _EVENT
                and _enabled
                and transport.__class__ is websocket
                and (key := transport._broker_frame_key) is not None
                and not transport._broker_slow  # else: .backpressure's send discards it
                and transport.state == _OPEN
                and not transport.send_queue  # else: autobahn's sendData queues it
                and transport._session is not None  # else: autobahn raises TransportLost
                and (ser := transport._serializer)._autoreset_callback is None  # crossbar's session stats
            ):
                data = msg._serialized.get(key) or _build(transport, msg, key)
                n = len(data) - _HEADER[data[1]]
                # Serializer.serialize's statistics (crossbar publishes them as wamp.session.on_stats)
                ser._serialized_bytes += n
                ser._serialized_messages += 1
                ser._serialized_rated_messages += -(-n // ser.RATED_MESSAGE_SIZE)  # ceil, in integers
                if 0 < transport.maxMessagePayloadSize < n:
                    _refuse_oversize(transport, n)
                transport.transport.write(data)  # as sendData; trafficStats not counted (module docstring)
                global _written
                _written += 1
                sock = transport._broker_socket
                if sock is not None:  # .backpressure's bound, as its send applies it after autobahn's
                    backpressure.bound(state, transport, sock, max_buffer_bytes)
            else:
                transport.send(msg)
        except SerializationError as error:
            _unsendable(state, transport, error)
            return  # not sent: not counted
        name = names.get(cls)
        if name is None:
            name = names[cls] = cls.__name__.lower()
        sent = self._message_stats["sent"]
        sent[name] = sent.get(name, 0) + 1

    return send


def install(door: Door) -> None:
    """Decide which WebSockets take the fast path as they open; ``Router.send`` takes it."""
    configure(door.fast_path)
    ws = WampWebSocketServerProtocol
    ws._broker_frame_key = None  # type: ignore[attr-defined]  # class default: until opened
    ws.onOpen = _make_on_open(ws.onOpen)  # type: ignore[method-assign]
    Router.send = make_router_send(door.state, door.max_buffer_bytes, Router.send)  # type: ignore[method-assign]
