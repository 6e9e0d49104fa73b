"""broker.history.stored_event and new_event: the dataclasses made per event, in one step."""

from __future__ import annotations

import dataclasses

import pytest

from broker.history import NewEvent, Retention, StoredEvent, new_event, stored_event


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


def test_a_new_event_made_in_one_step_is_the_dataclass_it_stands_for() -> None:
    keep = Retention(10, 60.0)
    fast = new_event("public.a", [1], {}, keep, "[1]")
    slow = NewEvent("public.a", [1], {}, keep, "[1]")
    assert type(fast) is NewEvent
    assert fast == slow and repr(fast) == repr(slow)
    assert vars(fast) == vars(slow)
    assert list(vars(fast)) == [f.name for f in dataclasses.fields(NewEvent)]  # no field missed
    assert vars(new_event("public.a", [1], {}, keep)) == vars(NewEvent("public.a", [1], {}, keep))
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.topic = "x"  # type: ignore[misc]
