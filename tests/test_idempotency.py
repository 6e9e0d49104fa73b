"""Idempotency: first answer kept, repeats wait or get it, different bodies refused."""

import pytest

from broker.core.idempotency import IdempotencyCache
from broker.errors import IdempotencyMismatch
from tests.test_replay import Clock


def test_repeat_gets_the_first_answer() -> None:
    cache = IdempotencyCache(window=60, capacity=10, clock=Clock())
    assert cache.begin(("dev", "k"), "fp") is None
    cache.finish(("dev", "k"), (200, {"ids": [1]}), keep=True)
    entry = cache.begin(("dev", "k"), "fp")
    assert entry is not None and entry.answer == (200, {"ids": [1]})


def test_repeat_while_pending_waits_for_the_answer() -> None:
    cache = IdempotencyCache(window=60, capacity=10, clock=Clock())
    cache.begin(("dev", "k"), "fp")
    entry = cache.begin(("dev", "k"), "fp")
    assert entry is not None and entry.answer is None
    got: list[object] = []
    entry.waiters.append(got.append)
    cache.finish(("dev", "k"), (200, {"ids": [1]}), keep=True)
    assert got == [(200, {"ids": [1]})]


def test_failed_answers_are_not_kept() -> None:
    cache = IdempotencyCache(window=60, capacity=10, clock=Clock())
    cache.begin(("dev", "k"), "fp")
    cache.finish(("dev", "k"), (503, {}), keep=False)
    assert cache.begin(("dev", "k"), "fp") is None  # a retry may publish


def test_reused_key_with_other_body_is_refused() -> None:
    cache = IdempotencyCache(window=60, capacity=10, clock=Clock())
    cache.begin(("dev", "k"), "fp1")
    with pytest.raises(IdempotencyMismatch, match="'k' was already used for a different request"):
        cache.begin(("dev", "k"), "fp2")
    assert cache.begin(("other", "k"), "fp2") is None  # keys are scoped per publisher key


def test_window_and_capacity_bound_the_memory() -> None:
    clock = Clock()
    cache = IdempotencyCache(window=60, capacity=2, clock=clock)
    for key in "abc":
        cache.begin(("dev", key), "fp")
        cache.finish(("dev", key), (200, {}), keep=True)
    assert len(cache) == 2
    clock.now += 61
    cache.begin(("dev", "d"), "fp")
    assert len(cache) == 1
