"""When a subscriber has left too much unsent: the decision, without Twisted.

A peer that stops reading its socket makes the router keep every message
routed to it in memory (crossbar 26.10 has no limit, issue #874): 3000 events
of 64 KB grew the router by 208 MB in 2.5 s. :mod:`broker.router.crossbar.backpressure`
measures what is waiting to be sent to each peer after every message and asks
:func:`slow_subscriber` whether to let that peer go; the answer is the close
reason the peer (and the log) sees.
"""

from __future__ import annotations

import math
from typing import Final

#: Binary units, largest first: (size in bytes, name).
_UNITS: Final = ((1024 * 1024, "MiB"), (1024, "KiB"))


def format_size(size: int, round_up: bool = False) -> str:
    """``size`` bytes for people: ``"300 B"``, ``"64 KiB"``, ``"1.2 MiB"`` (one decimal at most).

    Rounded down by default and up with ``round_up``, so an amount over a limit
    never prints as equal to it ("1 MiB waiting (limit 1 MiB)").
    """
    for unit, name in _UNITS:
        if size >= unit:
            tenths = size * 10 / unit
            value = (math.ceil(tenths) if round_up else math.floor(tenths)) / 10
            return f"{value:g} {name}"
    return f"{size} B"


def slow_subscriber(waiting: int, limit: int) -> str | None:
    """The close reason when ``waiting`` bytes not yet sent to a peer exceed ``limit``; else None."""
    if waiting <= limit:
        return None
    return (
        f"slow subscriber: {format_size(waiting, round_up=True)} waiting to be sent "
        f"(limit {format_size(limit)})"
    )
