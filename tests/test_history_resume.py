"""Subscribe-then-recover merging: every event once, in order."""

from broker.history.resume import ResumeBuffer


def test_live_events_during_recovery_are_held_and_deduplicated() -> None:
    buffer: ResumeBuffer[str] = ResumeBuffer(after=10)
    assert buffer.live(13, "live13") == []  # arrived while recovering
    assert buffer.live(14, "live14") == []
    assert buffer.recovered([(11, "r11"), (12, "r12"), (13, "r13")]) == ["r11", "r12", "r13"]
    assert buffer.finish() == ["live14"]  # 13 was already delivered by recovery
    assert buffer.live(14, "again") == []
    assert buffer.live(15, "live15") == ["live15"]


def test_events_at_or_before_the_start_are_dropped() -> None:
    buffer: ResumeBuffer[int] = ResumeBuffer(after=5)
    assert buffer.recovered([(4, 4), (5, 5), (6, 6)]) == [6]
    assert buffer.finish() == []


def test_events_without_position_pass_through() -> None:
    buffer: ResumeBuffer[str] = ResumeBuffer(after=0)
    buffer.live(None, "meta")
    assert buffer.finish() == ["meta"]
    assert buffer.live(None, "meta2") == ["meta2"]


def test_a_live_event_of_a_new_epoch_starts_the_comparison_again() -> None:
    """Redis came back empty while connected: the new history's cursors start again at 1; its
    events are delivered, not dropped as duplicates of the old history's higher cursors."""
    buffer: ResumeBuffer[str] = ResumeBuffer(after=500, epoch="old")
    assert buffer.finish() == []
    assert buffer.live(501, "old501", "old") == ["old501"]
    assert buffer.live(1, "new1", "new") == ["new1"]
    assert buffer.live(1, "new1 again", "new") == []  # duplicates of the new history still dropped
    assert buffer.live(2, "new2") == ["new2"]  # no epoch given: the buffer's own (now "new")
    assert buffer.epoch == "new"


def test_a_new_epoch_held_during_recovery_is_released_after_the_recovered_events() -> None:
    buffer: ResumeBuffer[str] = ResumeBuffer(after=10, epoch="old")
    assert buffer.live(1, "new1", "new") == []
    assert buffer.recovered([(11, "r11")]) == ["r11"]
    assert buffer.finish() == ["new1"]


def test_the_first_epoch_seen_is_taken_when_none_was_known() -> None:
    buffer: ResumeBuffer[str] = ResumeBuffer(after=3)
    assert buffer.finish() == []
    assert buffer.live(3, "dup", "e1") == []  # the same history as the start: still a duplicate
    assert buffer.live(4, "four", "e1") == ["four"]
