"""Replay protection: each nonce once, bounded memory that never opens a hole."""

import pytest

from broker.core.replay import NonceCache
from broker.errors import Replayed, Unauthenticated


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_second_use_of_a_nonce_is_refused() -> None:
    cache = NonceCache(window=60, capacity=10, clock=Clock())
    cache.remember("dev", "n1", 1000)
    with pytest.raises(Replayed, match="nonce 'n1' was already used"):
        cache.remember("dev", "n1", 1000)
    cache.remember("other", "n1", 1000)  # nonces are per key


@pytest.mark.parametrize("timestamp", [939, 1061])
def test_timestamps_outside_the_window_are_refused(timestamp: float) -> None:
    cache = NonceCache(window=60, capacity=10, clock=Clock())
    with pytest.raises(Unauthenticated, match="outside the allowed window of 60 s"):
        cache.check_timestamp(timestamp)
    cache.check_timestamp(940)
    cache.check_timestamp(1060)


def test_expired_nonces_are_forgotten() -> None:
    clock = Clock()
    cache = NonceCache(window=60, capacity=10, clock=clock)
    cache.remember("dev", "n1", 1000)
    clock.now = 1061
    cache.remember("dev", "n2", 1061)
    assert len(cache) == 1  # n1 is gone; its timestamp would be refused anyway
    with pytest.raises(Unauthenticated):
        cache.check_timestamp(1000)


def test_full_memory_raises_the_floor_instead_of_opening_a_hole() -> None:
    cache = NonceCache(window=60, capacity=2, clock=Clock())
    cache.remember("dev", "a", 990)
    cache.remember("dev", "b", 995)
    cache.remember("dev", "c", 999)  # forgets "a", so timestamps <= 990 are refused from now on
    assert len(cache) == 2
    with pytest.raises(Unauthenticated, match="replay memory is full"):
        cache.check_timestamp(990)
    cache.check_timestamp(991)


def test_timestamps_before_a_memory_that_starts_empty_are_refused() -> None:
    """Without a journal the cache cannot know what came before it: signed earlier is refused."""
    cache = NonceCache(window=60, capacity=10, clock=Clock(), not_before=1000)
    with pytest.raises(
        Unauthenticated,
        match=r"^timestamp 999 is before the node's replay memory begins \(1000, when it started without "
        r"memory of earlier requests\): sign the request again with a fresh timestamp$",
    ):
        cache.check_timestamp(999)
    cache.check_timestamp(1000)
