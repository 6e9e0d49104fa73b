"""WAMP messages checked before crossbar sees them: invalid URIs, protocol violations, deep nesting.

What crossbar 26.10 does, and what Broker does instead (items 1, 2 and 4 of
the index in :mod:`broker.router.crossbar`):

1. **Invalid URIs close the connection** (1011 "WAMP Internal Error" plus a
   traceback): autobahn's message parser raises ``InvalidUriError``, which is
   not a ``ProtocolError``. Broker answers ``ERROR wamp.error.invalid_uri`` for
   the one request and keeps the session (:func:`broker.core.protocol.check_request_uri`).
2. **Protocol violations are ignored or closed without ABORT**: a second HELLO
   after WELCOME is logged and ignored, a PUBLISH before HELLO is silently
   dropped, an unknown message type closes with 1002 and no ABORT. Broker
   sends ``ABORT wamp.error.protocol_violation`` and closes with 1002
   (:func:`broker.core.protocol.check_allowed`), logging one line, not a traceback.
4. **One deeply nested message stalls the router**: py_ecc (imported by
   crossbar) raises Python's recursion limit to 100000, so a JSON array nested
   60,000 deep is parsed, then walked and logged for 23 s. Broker refuses JSON
   nested deeper than :data:`broker.core.protocol.MAX_JSON_NESTING` before decoding
   it, and restores the interpreter's default recursion limit so the binary
   decoders (msgpack, cbor) fail fast too; either refusal is a protocol
   violation with one log line.

Replaces ``autobahn/wamp/websocket.py: WampWebSocketProtocol.onMessage`` (on
``crossbar/router/protocol.py: WampWebSocketServerProtocol``) with
:func:`dispatch`, which long-poll shares (:mod:`.longpoll`) and which decodes
plain JSON with Python's C decoder (:func:`_unserialize`);
``autobahn/websocket/protocol.py: WebSocketProtocol.onMessageEnd`` with one
that fires autobahn's ``message`` event only when something listens
(``ObservableMixin.fire`` makes and resolves a Deferred per message even for
no listener); and undoes the
``sys.setrecursionlimit`` of ``py_ecc``. Tests: ``tests/test_hardening.py``,
``tests/test_protocol.py``.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any, Final

from autobahn.wamp import message
from autobahn.wamp.serializer import JsonObjectSerializer
from autobahn.websocket.protocol import WebSocketProtocol
from crossbar.router.protocol import WampWebSocketServerProtocol
from twisted.logger import Logger

from broker.core.protocol import (
    MAX_JSON_NESTING,
    check_allowed,
    check_publish_payload,
    check_request_uri,
    json_nesting_exceeds,
    lone_surrogate,
    name,
)
from broker.errors import ClientError, ProtocolViolation
from broker.router.crossbar.context import Door

if TYPE_CHECKING:
    from broker.router.state import NodeState

#: The interpreter's own default, which py_ecc raises to 100000 at import.
RECURSION_LIMIT: Final = 1000

#: WebSocket close codes (RFC 6455 §7.4.1).
CLOSE_PROTOCOL_ERROR: Final = WebSocketProtocol.CLOSE_STATUS_CODE_PROTOCOL_ERROR  # 1002
CLOSE_POLICY_VIOLATION: Final = WebSocketProtocol.CLOSE_STATUS_CODE_POLICY_VIOLATION  # 1008

_log = Logger(namespace="broker.hardening")

#: While :func:`dispatch` hands a message to its session: that session and the size of the
#: WebSocket (or long-poll) message it came in, in whatever serializer: a bound on what the
#: message's parts take re-encoded (:func:`inbound_size`).
INBOUND: dict[str, Any] = {"session": None, "size": None}


def inbound_size(session: Any) -> int | None:
    """The size of the message ``session`` sent that is being handled now (None: not one of its,
    e.g. a publish of an in-router component made while it is handled)."""
    return INBOUND["size"] if INBOUND["session"] is session else None


def _state(session: Any) -> str:
    """The WAMP session state of crossbar's ``RouterSession`` as :data:`CLIENT_MAY_SEND` keys."""
    if session is None:
        return "opening"
    if getattr(session, "_session_id", None) is not None:
        return "joined"
    if getattr(session, "_pending_session_id", None):
        return "authenticating"
    return "opening"


def _unserialize(decoder: Any, payload: bytes) -> list[Any]:
    """autobahn's ``unserialize``; for a JSON message without binary values, Python's C decoder.

    autobahn decodes JSON with a scanner of its own in pure Python (``_WAMPJsonDecoder``, made
    per message) only to turn strings that start with NUL into ``bytes``: about a fifth of the
    router's time per publish. A string can start with NUL in JSON only as ``\\u0000``, so a
    message without that sequence decodes to the same values with ``json.loads``; autobahn's
    other options (batched, hex or decimal encodings) keep its own decoder.
    """
    if (
        type(decoder) is JsonObjectSerializer
        and isinstance(payload, bytes)
        and b"\\u0000" not in payload
        and not (
            decoder._batched
            or decoder._use_binary_hex_encoding
            or decoder._use_decimal_from_str
            or decoder._use_decimal_from_float
        )
    ):
        return [json.loads(payload.decode("utf8"))]
    return decoder.unserialize(payload)  # type: ignore[no-any-return]


def dispatch(state: NodeState, transport: Any, payload: bytes, is_binary: bool | None) -> None:
    """Decode ``payload``, apply Broker's rules, hand valid messages to the session (``state``
    counts what it refuses).

    Raises :class:`ClientError` for anything the peer got wrong; the caller
    turns it into ABORT and a close.
    """
    serializer = transport._serializer
    if is_binary is not None and is_binary != serializer._serializer.BINARY:
        kind = "binary" if is_binary else "text"
        raise ProtocolViolation(f"{kind} message on a {serializer.SERIALIZER_ID} transport")
    if not serializer._serializer.BINARY and json_nesting_exceeds(payload):
        raise ProtocolViolation(f"message nested deeper than {MAX_JSON_NESTING} levels")
    try:
        raws = _unserialize(serializer._serializer, payload)
    except RecursionError:
        raise ProtocolViolation("message nested too deeply") from None
    except Exception as exc:  # decoders raise many types; all mean "not valid for this serializer"
        raise ProtocolViolation(
            f"invalid {serializer.SERIALIZER_ID} message ({type(exc).__name__})"
        ) from None
    binary = serializer._serializer.BINARY
    kind = serializer._serializer.NAME
    if not binary and isinstance(payload, bytes) and (problem := lone_surrogate(payload, raws)):
        raise ProtocolViolation(problem)  # no serializer could send it on: refused, not lost later
    for raw in raws:
        if not isinstance(raw, list) or not raw:
            raise ProtocolViolation("a WAMP message must be a non-empty array")
        check_allowed(raw[0], _state(transport._session))
        rejection = check_request_uri(raw) or check_publish_payload(raw, payload, kind)
        if rejection is not None:
            state.count_rejection(rejection.reason)
            if rejection.reply:
                transport.send(
                    message.Error(
                        rejection.request_type,
                        rejection.request_id,
                        rejection.error.wamp_uri,
                        args=[str(rejection.error)],
                    )
                )
            continue
        try:
            msg = serializer.MESSAGE_TYPE_MAP[raw[0]].parse(raw)
        except Exception as exc:  # autobahn's parsers raise ProtocolError, Error and ValueError alike
            raise ProtocolViolation(f"invalid {name(raw[0])}: {str(exc)[:160]}") from None
        INBOUND["session"], INBOUND["size"] = transport._session, len(payload)
        try:
            transport._session.onMessage(msg)
        finally:
            INBOUND["session"] = INBOUND["size"] = None


def _truncate(reason: str, limit: int = 120) -> str:
    """A close reason must fit a control frame (123 bytes of UTF-8)."""
    return reason.encode("utf-8")[:limit].decode("utf-8", "ignore")


def _refuse(state: NodeState, transport: Any, error: ClientError) -> None:
    """Tell the peer why in an ABORT (best effort), count it, log one line."""
    reason = type(error).__name__
    state.count_rejection(reason)
    _log.warn(
        "closing {peer}: {uri}: {reason}",
        peer=getattr(transport, "peer", "?"),
        uri=error.wamp_uri,
        reason=_truncate(str(error), 200),
    )
    try:
        transport.send(message.Abort(error.wamp_uri, message=_truncate(str(error), 200)))
    except Exception:  # noqa: S110 - the transport may already be gone; closing is what matters
        pass


def _make_websocket_on_message(state: NodeState) -> Any:
    def on_message(self: Any, payload: bytes, isBinary: bool) -> None:
        try:
            dispatch(state, self, payload, isBinary)
        except ClientError as error:
            _refuse(state, self, error)
            self._bailout(CLOSE_PROTOCOL_ERROR, reason=_truncate(str(error)))

    return on_message


def _make_on_message_end(original: Any) -> Any:
    def on_message_end(self: Any) -> None:
        if self._listeners is not None:  # someone listens to "message": autobahn's own
            original(self)
            return
        # autobahn's onMessageEnd, less firing "message" to no listener (a resolved Deferred,
        # and a callback added to it, per message)
        if not self.failedByMe:
            payload = b"".join(self.message_data)
            if self.trackedTimings:
                self.trackedTimings.track("onMessage")
            self._onMessage(payload, self.message_is_binary)
        self.message_data = None

    return on_message_end


def install(door: Door) -> None:
    """Restore the recursion limit; every WebSocket message through :func:`dispatch`, with no
    ``message`` event fired when nothing listens to it."""
    sys.setrecursionlimit(RECURSION_LIMIT)
    ws = WampWebSocketServerProtocol
    ws.onMessageEnd = _make_on_message_end(ws.onMessageEnd)  # type: ignore[method-assign]
    WampWebSocketServerProtocol.onMessage = _make_websocket_on_message(door.state)  # type: ignore[method-assign]
