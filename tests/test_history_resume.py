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
