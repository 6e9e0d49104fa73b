"""Group commit for the HTTP API's admits on the Redis engine that go alone: the requests
whose nonce and tokens are claimed while one ``ADMIT`` call is in flight share the next.

Why: a request's nonce (and its key's tokens) are claimed on the whole cluster
before anything is appended. Most requests have them taken by their append's
own script (:class:`broker.history.Claim`, :data:`broker.engines.redis_scripts.APPEND`);
those refused on the node before anything would be appended (and engines
asked through :meth:`~broker.engines.redis.RedisStore.admit`) claim them
alone, one ``EVALSHA`` each: a round trip and the link's per-call work per
request. So a node keeps one ``ADMIT`` call in flight; the requests that
arrive meanwhile wait here and the next call carries all of them (up to
:data:`GROUP_ADMITS`), each decided by the script exactly as alone, in
arrival order (:data:`broker.engines.redis_scripts.ADMIT`). A call that fails
fails each request it carried (none of them is published: the API answers
503). A request waits for at most the call in flight and its own, each
bounded by the link's timeout. No Twisted here: it runs on the engine's link.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from broker.engines import redis_scripts as scripts
from broker.engines.redis_wire import Future, RedisLink

#: Requests one ``ADMIT`` call carries at most (the rest wait for the next).
GROUP_ADMITS: Final = 256

#: Runs one script: ``(source, args, keys)`` to its reply (the engine's ``_call``).
Call = Callable[[str, Sequence[str], Sequence[str]], Awaitable[Any]]


#: What a waiting request is resumed with when it is its turn to send the next call.
_LEAD: Final = object()


@dataclass(eq=False)
class _Waiting:
    keys: Sequence[str]
    args: Sequence[str]
    waiter: Future | None


class AdmitGroups:
    """Sends ``ADMIT`` calls one at a time over ``link``, each with every request waiting."""

    def __init__(self, link: RedisLink, call: Call) -> None:
        self._link, self._call = link, call
        self._queue: deque[_Waiting] = deque()
        self._busy = False

    async def admit(self, keys: Sequence[str], args: Sequence[str]) -> Any:
        """``ADMIT``'s ``{claimed, wait}`` for one request (its two keys and five arguments,
        :func:`broker.engines.redis_limits.admit_call`); raises what its call raised."""
        me = _Waiting(keys, args, None)
        if self._busy:
            me.waiter = self._link.future()
            self._queue.append(me)
            turn = await me.waiter  # its reply (sent by another), or its turn to send the next call
            if turn is not _LEAD:
                return turn
        self._busy = True
        group = [me]
        while self._queue and len(group) < GROUP_ADMITS:
            group.append(self._queue.popleft())
        try:
            replies = await self._call(
                scripts.ADMIT, [a for w in group for a in w.args], [k for w in group for k in w.keys]
            )
        except BaseException as error:  # each request learns it, as if it had called alone
            self._hand_on()
            for waiting in group[1:]:
                waiting.waiter.fail(error)  # type: ignore[union-attr]
            raise
        self._hand_on()
        for waiting, reply in zip(group[1:], replies[1:], strict=True):
            waiting.waiter.resolve(reply)  # type: ignore[union-attr]
        return replies[0]

    def _hand_on(self) -> None:
        """The next call is the first waiting request's to send (else the next request's, at once)."""
        if self._queue:
            self._queue.popleft().waiter.resolve(_LEAD)  # type: ignore[union-attr]
        else:
            self._busy = False
