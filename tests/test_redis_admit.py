"""The HTTP API's admits on the Redis engine share calls, each decided as if alone.

A node keeps one ``ADMIT`` call in flight; the requests that arrive meanwhile
share the next (:mod:`broker.engines.redis_admit`). Against a real
redis-server, the coroutines driven by hand over
:class:`tests.redisserver.SocketLink` (``hold_scripts``: a call sent and not yet
answered), counting the script calls Redis received.
"""

from __future__ import annotations

import secrets
from collections.abc import Coroutine, Iterator
from typing import Any

import pytest

from broker.core.ratelimit import Quota
from broker.engines.redis import RedisStore
from tests.redisserver import RedisServer
from tests.test_redis_batching import CountingLink


def step(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Resume ``coroutine`` once: its result (its exception raised) if it finished, else the
    coroutine itself, still waiting."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    return coroutine


@pytest.fixture
def node(redis_server: RedisServer) -> Iterator[tuple[RedisStore, CountingLink]]:
    link = CountingLink(redis_server)
    store = RedisStore(link, prefix=f"a{secrets.token_hex(6)}", timeout=2.0, clock=lambda: 1000.0)
    yield store, link
    store.close()


def test_admits_waiting_for_a_call_share_the_next_each_decided_as_alone(
    node: tuple[RedisStore, CountingLink],
) -> None:
    store, link = node
    quota = Quota(per_second=1.0, burst=2, count=1)
    link.hold_scripts = True
    first = store.admit("dev", "n1", 60.0, quota)
    assert step(first) is first  # sent, its answer not read
    waiting = [
        store.admit("dev", "n2", 60.0, quota),  # the bucket's second token
        store.admit("dev", "n1", 60.0, quota),  # n1 again: claimed by the call in flight
        store.admit("dev", "n3", 60.0, quota),  # the bucket is empty by then: wait 1 s
        store.admit("other", "n1", 60.0, None),  # another key's n1, no rate limit
    ]
    for coroutine in waiting:
        assert step(coroutine) is coroutine  # queued, nothing sent
    assert link.calls == 1
    assert step(first) == 0.0  # answered; the first waiting request now sends the others' call
    leader = waiting[0]
    assert step(leader) is leader  # it sent the next call, with all four
    assert link.calls == 2
    assert step(leader) == 0.0
    assert [step(coroutine) for coroutine in waiting[1:]] == [None, 1.0, 0.0]
    link.hold_scripts = False
    assert step(store.admit("dev", "n4", 60.0, None)) == 0.0  # nothing in flight: sent at once
    assert link.calls == 3


def test_a_failed_call_fails_every_admit_it_carried_and_the_next_goes_on(
    node: tuple[RedisStore, CountingLink],
) -> None:
    store, link = node
    link.hold_scripts = True
    first = store.admit("dev", "m1", 60.0, None)
    assert step(first) is first
    carried = [store.admit("dev", "m2", 60.0, None), store.admit("dev", "m3", 60.0, None)]
    for coroutine in carried:
        assert step(coroutine) is coroutine
    assert step(first) == 0.0
    assert step(carried[0]) is carried[0]  # the shared call, in flight
    link.fail = ConnectionError("connection lost")
    for coroutine in carried:
        with pytest.raises(ConnectionError, match="connection lost"):
            step(coroutine)
    link.fail, link.hold_scripts = None, False
    # Redis ran the call whose answer was lost: its nonces stay claimed, and the next admit goes alone
    assert step(store.admit("dev", "m2", 60.0, None)) is None
    assert step(store.admit("dev", "m4", 60.0, None)) == 0.0
    assert link.calls == 4
