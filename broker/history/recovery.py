"""Recovery: what a subscriber missed since its last position, or a clear "unrecoverable".

Pure logic over a :class:`~broker.history.HistoryStore`; the WAMP procedure
``broker.recover`` (in :mod:`broker.router.component`) is a thin adapter.
"""

from __future__ import annotations

from typing import Any, Final

from broker.errors import ClientError
from broker.history import HistoryStore
from broker.uris import check_uri, topic_matches

#: Most events one recovery answer returns; ``more`` says when to ask again.
MAX_EVENTS: Final = 1000


def recover(
    store: HistoryStore, topic: str, match: str, epoch: object, after: object, limit: int = MAX_EVENTS
) -> dict[str, Any]:
    """Events on ``(topic, match)`` with a cursor above ``after``, in order.

    ``epoch`` and ``after`` are what the subscriber last saw. A different
    epoch, a cursor ahead of the store, or events already trimmed make the
    answer ``{"unrecoverable": true, ...}`` with the current epoch and cursor,
    so the client reloads its state and resumes from there.
    """
    check_uri(topic, match)
    if isinstance(after, bool) or not isinstance(after, int) or after < 0:
        raise ClientError(f"after must be a cursor (an integer >= 0), not {after!r}")
    if not isinstance(epoch, str):
        raise ClientError(f"epoch must be the string from an event's position, not {epoch!r}")
    cursor = store.cursor()
    current = {"epoch": store.epoch, "cursor": cursor}
    if epoch != store.epoch:
        return {"unrecoverable": True, "reason": "epoch changed: the history was reset", **current}
    if after > cursor:
        return {"unrecoverable": True, "reason": "cursor is ahead of this history", **current}
    events = store.after(lambda t: topic_matches(t, topic, match), after, limit + 1)
    if events is None:
        return {"unrecoverable": True, "reason": "some missed events are no longer in history", **current}
    return {
        "unrecoverable": False,
        "events": [
            {"topic": e.topic, "args": e.args, "kwargs": e.kwargs, "position": e.position(store.epoch)}
            for e in events[:limit]
        ],
        "more": len(events) > limit,
        **current,
    }
