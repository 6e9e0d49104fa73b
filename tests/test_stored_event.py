"""broker.history.stored_event: the StoredEvent the memory and Redis engines make per event."""

from __future__ import annotations

import dataclasses

import pytest

from broker.history import StoredEvent, stored_event


def test_a_stored_event_made_in_one_step_is_the_dataclass_it_stands_for() -> None:
    fast = stored_event("public.a", 3, 17, 1.5, [1], {"k": "v"})
    slow = StoredEvent("public.a", 3, 17, 1.5, [1], {"k": "v"})
    assert type(fast) is StoredEvent
    assert fast == slow and repr(fast) == repr(slow)
    assert vars(fast) == vars(slow)
    assert list(vars(fast)) == [f.name for f in dataclasses.fields(StoredEvent)]  # no field missed
    assert fast.position("e1") == {"epoch": "e1", "seq": 3, "cursor": 17}
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.seq = 4  # type: ignore[misc]
