"""Token buckets with an injected clock."""

from broker.core.ratelimit import TokenBucket
from tests.test_replay import Clock


def test_burst_then_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=10, burst=5, clock=clock)
    assert [bucket.take() for _ in range(5)] == [0.0] * 5
    assert bucket.take() == 0.1
    clock.now += 0.1
    assert bucket.take() == 0.0


def test_batch_takes_one_token_per_event() -> None:
    bucket = TokenBucket(rate=10, burst=5, clock=Clock())
    assert bucket.take(5) == 0.0
    assert bucket.take(2) == 0.2
    assert bucket.take(6) == float("inf")  # larger than any burst: never
