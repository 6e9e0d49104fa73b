"""Epoch proposals (:func:`broker.engines.redis_wire.propose`), drawn from the OS in bulk: each
one 8 random bytes in hex, never handed out twice, and a forked child never repeats its parent's."""

from __future__ import annotations

import os

from broker.engines import redis_wire


def test_proposals_are_16_hex_digits_and_never_repeat_across_refills() -> None:
    proposals = [redis_wire.propose() for _ in range(3 * 512 + 7)]  # several draws of the pool
    assert len(set(proposals)) == len(proposals)
    assert all(len(p) == 16 and int(p, 16) >= 0 for p in proposals)


def test_a_forked_child_does_not_hand_out_its_parents_next_proposals() -> None:
    redis_wire.propose()  # the pool holds proposals the parent has not handed out yet
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the child: its next proposals, to the parent
        try:
            os.write(write, " ".join(redis_wire.propose() for _ in range(8)).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        in_child = set(pipe.read().split())
    os.waitpid(child, 0)
    in_parent = {redis_wire.propose() for _ in range(8)}
    assert len(in_child) == 8 and not in_child & in_parent
