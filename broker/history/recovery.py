"""Recovery: what a subscriber missed since its last position, or a clear "unrecoverable".

Pure logic over a :class:`~broker.history.HistoryStore`; the WAMP procedure
``broker.recover`` (in :mod:`broker.router.component`) is a thin adapter.

Why pages are bounded by bytes: the router cannot send a message over the
caller's transport limit (``max_message_size``; crossbar then answers the
call with ``wamp.error.invalid_argument``, the same on every retry), so a
page bounded only by its count of events fails for good once its events are
large or many. A page holds events while its answer, measured with
:func:`~broker.history.wiresize.wire_size` (an upper bound for JSON,
MessagePack and CBOR) plus :data:`ENVELOPE_RESERVE` for the RESULT around
it, fits ``max_bytes``; ``more`` says when to ask again, and a page holds at
least one event whenever one is pending.

The same rule decides, at publish time, whether an event may be accepted at
all (:func:`check_deliverable`): its EVENT frame, with the position the hook
adds, and a recovery page holding it alone must both fit. An accepted event
therefore always reaches every subscriber and can always be recovered.

An event a history kept from before the node refused, at publish time, what
some serializer cannot carry (an integer beyond 64 bits, a lone surrogate:
:func:`broker.core.protocol.unsendable`, :func:`~broker.core.protocol.lone_surrogate`)
would make the answer holding it unsendable to that caller, whose connection
is then dropped, on every retry: a page ends before such an event, and one
that would start with it is ``unrecoverable`` instead (:func:`answer`).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from typing import Any, Final

from broker.core import jsonwriter
from broker.core.protocol import must_walk, unsendable
from broker.core.uris import check_uri, topic_matches
from broker.errors import ClientError, PayloadTooLarge
from broker.history import POSITION_KEY, HistoryStore, Snapshot, StoredEvent
from broker.history.wiresize import wire_size

#: The epoch of a subscriber that has seen no event yet ("where is the stream now?"): its
#: answer is the current position with nothing missed, never ``unrecoverable``.
NO_POSITION: Final = ""

#: Most events one recovery answer returns, however small; ``more`` says when to ask again.
MAX_EVENTS: Final = 1000

#: Bytes of the message limit kept back from every recovery answer and every event for the
#: WAMP message around it: the message type, request, subscription and publication ids, and
#: the details crossbar may add (callee or publisher disclosure, ``retained``).
ENVELOPE_RESERVE: Final = 512

#: The largest id WAMP uses (request, subscription and publication ids are at most 2**53).
_MAX_WAMP_ID: Final = 2**53
#: The largest ``seq`` or ``cursor`` a store can issue (a signed 64-bit integer, as SQLite keeps it).
_MAX_POSITION: Final = 2**63 - 1
#: WAMP message types of the frames measured here.
_EVENT, _RESULT = 36, 50


@functools.lru_cache(maxsize=8)
def _answer_size(epoch: str, cursor: int) -> int:
    """The recovery answer around its events: its fields, the RESULT and the reserve."""
    answer = {"unrecoverable": False, "events": [], "more": True, "epoch": epoch, "cursor": cursor}
    return ENVELOPE_RESERVE + wire_size([_RESULT, _MAX_WAMP_ID, {}, [answer]])


def _entry(topic: str, args: Sequence[Any], kwargs: Mapping[str, Any], position: Mapping[str, Any]) -> Any:
    return {"topic": topic, "args": args, "kwargs": kwargs, "position": position}


def _entry_size(entry: Any) -> int:
    return wire_size(entry) + 1  # the comma between two events (JSON)


def _worst_position(epoch: str) -> dict[str, Any]:
    return {"epoch": epoch, "seq": _MAX_POSITION, "cursor": _MAX_POSITION}


@functools.lru_cache(maxsize=8)
def _fixed_sizes(epoch: str | None) -> tuple[int, int | None]:
    """What an event's two frames take besides its topic, payload and details: ``(live, alone)``.

    Measured once per epoch with an empty topic and payload (``alone`` None:
    no history, no recovery answer); :func:`check_deliverable` adds the rest.
    Replacing a value inside a container changes :func:`wire_size` by exactly
    the difference of the two values, so only the kwargs need a margin: the
    position joins the publisher's kwargs, at most one separator more than
    ``{POSITION_KEY: position}`` takes on its own.
    """
    empty_parts = wire_size("") + wire_size([]) + wire_size({})
    if epoch is None:
        frame = [_EVENT, _MAX_WAMP_ID, _MAX_WAMP_ID, {"topic": ""}, [], {}]
        return ENVELOPE_RESERVE + wire_size(frame) - empty_parts, None
    position = _worst_position(epoch)
    frame = [_EVENT, _MAX_WAMP_ID, _MAX_WAMP_ID, {"topic": ""}, [], {POSITION_KEY: position}]
    live = ENVELOPE_RESERVE + wire_size(frame) - wire_size("") - wire_size([])
    alone = _answer_size(epoch, _MAX_POSITION) + _entry_size(_entry("", [], {}, position)) - empty_parts
    return live, alone


#: :func:`wire_size` of a value is at most this many times the length of its ``json.dumps``
#: or of any WAMP serializer's encoding of it: every node of the value takes at least one byte
#: there, and at most 9 bytes more, or 6 times as many for a string JSON escapes, in any
#: serializer's encoding (a dict's non-string key is counted twice by :func:`wire_size`).
_JSON_FACTOR: Final = 18


def _surely_fits(
    topic: str,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    details: Mapping[str, Any] | None,
    fixed: int,
    max_bytes: int,
) -> bool:
    """Whether the event fits even by a bound far above :func:`wire_size`'s, from Python's C JSON
    encoder: a few µs less per publish for the events of ordinary size. False: measure it."""
    try:
        length = len(json.dumps([topic, args, kwargs, details]))
    except (TypeError, ValueError, RecursionError):  # bytes, or a type JSON has no form for
        return False
    return fixed + _JSON_FACTOR * length <= max_bytes


def check_deliverable(
    topic: str,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    epoch: str | None,
    max_bytes: int | None,
    details: Mapping[str, Any] | None = None,
    encoded: int | None = None,
) -> None:
    """Refuse an event that could not reach a subscriber, or be recovered, within ``max_bytes``.

    ``encoded``: the size of a message that held the topic, payload and details in some WAMP
    serializer (the PUBLISH it came in); each of its values takes at least one byte there and
    at most 9 more, 6 times as many for a string JSON escapes, in any serializer, so when
    :data:`_JSON_FACTOR` times it fits, the event fits without being measured.

    Two sizes must fit: the EVENT a subscriber gets, with the position in its
    kwargs and the topic and the publisher's ``details`` (crossbar copies
    ``transaction_hash``) in its details, plus :data:`ENVELOPE_RESERVE`; and a
    recovery answer holding the event alone, measured as :func:`page` measures
    it. Checked before the event is stored, so its position is not known yet:
    the largest ``seq`` and ``cursor`` a store can issue stand in for it.
    ``epoch`` None: the topic keeps no history, so the event gets no position
    and has no recovery answer. ``max_bytes`` None means no limit. The
    payload is walked once, as it is on the path of every publish. Raises
    :class:`PayloadTooLarge`.
    """
    if max_bytes is None:
        return
    live, alone = _fixed_sizes(epoch)
    fixed = max(live, alone or 0)
    if encoded is not None and fixed + _JSON_FACTOR * encoded <= max_bytes:
        return
    if _surely_fits(topic, args, kwargs, details, fixed, max_bytes):
        return
    shared = wire_size(topic) + wire_size(args) + wire_size(kwargs)
    size = live + shared + (wire_size(details) if details else 0)  # details join {"topic": ...}
    if alone is not None:
        size = max(size, alone + shared)
    if size > max_bytes:
        raise PayloadTooLarge(
            f"the event on {topic!r} would take up to {size} bytes on the wire with its position "
            f"({ENVELOPE_RESERVE} of them kept for the WAMP envelope), over this node's message "
            f"limit of {max_bytes} bytes (max_message_size): make it smaller"
        )


def page(
    events: Sequence[StoredEvent], epoch: str, cursor: int, limit: int, max_bytes: int | None
) -> tuple[list[dict[str, Any]], bool]:
    """The events of one answer, from the start of ``events``, and whether more remain.

    At most ``limit`` of them, and only as many as fit ``max_bytes`` (None:
    no size bound) with the answer around them; always the first one.
    """
    budget = None if max_bytes is None else max_bytes - _answer_size(epoch, cursor)
    taken: list[dict[str, Any]] = []
    used = 0
    for event in events[:limit]:
        entry = _entry(event.topic, event.args, event.kwargs, event.position(epoch))
        if budget is not None:
            size = _entry_size(entry)
            if taken and used + size > budget:
                break
            used += size
        taken.append(entry)
    return taken, len(events) > len(taken)


async def recover(
    store: HistoryStore,
    topic: str,
    match: str,
    epoch: object,
    after: object,
    limit: int = MAX_EVENTS,
    max_bytes: int | None = None,
) -> dict[str, Any]:
    """Events on ``(topic, match)`` with a cursor above ``after``, in order.

    ``epoch`` and ``after`` are what the subscriber last saw. A different
    epoch, a cursor ahead of the store, or events already trimmed make the
    answer ``{"unrecoverable": true, ...}`` with the current epoch and cursor,
    so the client reloads its state and resumes from there. ``epoch``
    :data:`NO_POSITION` (``""``) asks only for the current position: the
    answer holds no event and is not unrecoverable (a subscriber that saw
    nothing has missed nothing). ``max_bytes`` is the caller's message limit:
    the answer fits it (see :func:`page`). Epoch, cursor and events come from
    one :meth:`~broker.history.HistoryStore.read`, so they always agree.
    """
    check_uri(topic, match)
    if isinstance(after, bool) or not isinstance(after, int) or after < 0:
        raise ClientError(f"after must be a cursor (an integer >= 0), not {after!r}")
    if not isinstance(epoch, str):
        raise ClientError(f"epoch must be the string from an event's position, not {epoch!r}")
    wanted = 0 if epoch == NO_POSITION else limit + 1
    snapshot = await store.read(lambda t: topic_matches(t, topic, match), after, wanted)
    return answer(snapshot, epoch, after, limit, max_bytes)


def answer(
    snapshot: Snapshot, epoch: str, after: int, limit: int = MAX_EVENTS, max_bytes: int | None = None
) -> dict[str, Any]:
    """The recovery answer for a subscriber at ``(epoch, after)`` from one ``snapshot``."""
    current = {"epoch": snapshot.epoch, "cursor": snapshot.cursor}
    if epoch == NO_POSITION:
        return {"unrecoverable": False, "events": [], "more": False, **current}
    if epoch != snapshot.epoch:
        return {"unrecoverable": True, "reason": "epoch changed: the history was reset", **current}
    if after > snapshot.cursor:
        return {"unrecoverable": True, "reason": "cursor is ahead of this history", **current}
    if snapshot.events is None:
        return {"unrecoverable": True, "reason": "some missed events are no longer in history", **current}
    taken, more = page(snapshot.events, snapshot.epoch, snapshot.cursor, limit, max_bytes)
    for i, entry in enumerate(taken):
        problem = _unsendable_stored(entry["args"], entry["kwargs"])
        if problem is None:
            continue
        if i == 0:
            reason = (
                f"a missed event cannot be sent to every subscriber ({problem}): "
                "it was stored before the node refused such events"
            )
            return {"unrecoverable": True, "reason": reason, **current}
        taken, more = taken[:i], True  # up to it; the next page starts with it
        break
    return {"unrecoverable": False, "events": taken, "more": more, **current}


def _unsendable_stored(args: Sequence[Any], kwargs: Mapping[str, Any]) -> str | None:
    """Why a stored event's payload could not be sent in every serializer, else None: a string
    that is not Unicode text, or what :func:`~broker.core.protocol.unsendable` finds.

    At C speed for an ordinary event: its JSON text, every string written as it is, is
    refused by UTF-8 only for a lone surrogate, and only a text with a long number
    (:func:`~broker.core.protocol.must_walk`) can hold an integer beyond 64 bits, so only
    such a payload is walked. (An event stored since the publish checks came in passed them;
    the walk finds nothing in it.)
    """
    payload = [args, kwargs]
    text = _AS_WRITTEN(payload)
    try:
        encoded = text.encode("utf-8")
    except UnicodeEncodeError:
        return "a string holds a lone surrogate, not Unicode text"
    return unsendable(payload) if must_walk(encoded, "json") else None


def _nothing(_value: Any) -> None:
    return None


#: JSON with every string as it is (a lone surrogate stays one), its C encoder made once
#: (:func:`broker.core.jsonwriter.writer`).
_AS_WRITTEN: Final = jsonwriter.writer(json.JSONEncoder(ensure_ascii=False, skipkeys=True, default=_nothing))


def recovery_outcome(epoch: object, answer: Mapping[str, Any]) -> str:
    """How ``broker_recoveries_total`` counts an answer: ``position`` for a subscriber
    that had no position yet (:data:`NO_POSITION`), else ``unrecoverable`` or ``recovered``."""
    if epoch == NO_POSITION:
        return "position"
    return "unrecoverable" if answer.get("unrecoverable") else "recovered"
