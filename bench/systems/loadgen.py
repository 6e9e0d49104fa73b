"""The load generator: subscribers spread over several processes, and one publisher process.

Why processes: a Python client process handles a few tens of thousands of
frames per second, less than the routers deliver, so N subscribers are
spread over several ``spawn``-ed worker processes (plus one for the
publisher) and the router stays the bottleneck. Why long-lived workers: N
grows case by case (1 → 5000) and connecting thousands of token-authenticated
subscribers takes seconds, so each worker keeps its subscribers and only adds
the missing ones for the next N.

Each subscriber connection hands its frames to one callback for its whole
life (:class:`bench.systems.Connection`, no task per message). A *phase*
tells every worker how many events each subscriber should get; the callback
counts event frames into it (and, in a latency phase, decodes each event's
publish timestamp), and the worker reports when all arrived or when
told to stop — so a lost event costs a bounded wait, never a hang. The
publisher sends a fixed number of events with a window of unacknowledged
publishes (saturation) or on a fixed schedule (latency). Every command the
parent sends has a deadline; replies carry the command's sequence number,
so a late reply to a timed-out command is never mistaken for a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from bench.systems import HANDSHAKE_TIMEOUT, Client, Connection, Data

#: Handshakes one worker runs at once (routers time out connections that wait too long for HELLO).
CONNECT_CONCURRENCY = 50
#: Pads the event payload to about 100 bytes of JSON.
FILLER = {"symbol": "ACME", "price": 123.45, "note": "n" * 24}


class LoadError(RuntimeError):
    """A load-generator step failed or missed its deadline; the message says which."""


@dataclass
class Delivery:
    """What the subscribers received in one phase, summed over workers."""

    expected: int
    delivered: int
    #: time.time() of the last event received (0 if none)
    last: float
    #: publish-to-delivery seconds, one per event (latency phases only)
    latencies: list[float]
    #: subscriber connections that the server closed so far
    dropped: int


@dataclass
class Published:
    events: int
    acked: int
    refused: int
    #: time.time() before the first publish and after the last acknowledgement (or the deadline)
    first: float
    last: float


# -- inside a worker process ----------------------------------------------------


@dataclass
class _Phase:
    expected: int
    latency: bool
    count: int = 0
    last: float = 0.0
    latencies: list[float] = field(default_factory=list)
    ended: asyncio.Event = field(default_factory=asyncio.Event)

    def record(self, client: Client, frame: Data) -> None:
        self.count += 1
        self.last = now = time.time()
        if self.latency:
            self.latencies.append(now - client.sent_at(frame))
        if self.count == self.expected:
            self.ended.set()


class _Worker:
    def __init__(self, index: int, results: Any) -> None:
        self.index = index
        self.results = results
        self.connections: list[Connection] = []
        self.phase: _Phase | None = None
        self.dropped = 0
        #: time.monotonic() of the last event frame, in a phase or not
        self.last_event = 0.0

    def reply(self, seq: int, payload: Any) -> None:
        self.results.put((self.index, seq, payload))

    async def connect(self, client: Client, count: int) -> tuple[int, str | None]:
        gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

        async def one() -> None:
            async with gate:
                connection = await asyncio.wait_for(client.subscribe(), HANDSHAKE_TIMEOUT)
            self.connections.append(connection)
            self.listen(client, connection)

        outcomes = await asyncio.gather(*(one() for _ in range(count)), return_exceptions=True)
        errors = [o for o in outcomes if isinstance(o, BaseException)]
        return len(self.connections), (f"{len(errors)} failed, first: {errors[0]!r}" if errors else None)

    def listen(self, client: Client, connection: Connection) -> None:
        """Count every event frame into the current phase, straight from the socket callback."""

        def on_frame(frame: Data) -> None:
            if client.is_event(frame):
                self.last_event = time.monotonic()
                if self.phase is not None:
                    self.phase.record(client, frame)
            elif (answer := client.answer(frame)) is not None:
                connection.send(answer)

        def on_lost() -> None:
            self.dropped += 1

        connection.listen(on_frame, on_lost)

    def disconnect(self) -> None:
        for connection in self.connections:
            connection.close()
        self.connections, self.dropped = [], 0

    async def report_phase(self, seq: int, phase: _Phase) -> None:
        await phase.ended.wait()
        if self.phase is phase:
            self.phase = None
        delivery = Delivery(phase.expected, phase.count, phase.last, phase.latencies, self.dropped)
        self.reply(seq, delivery)

    async def settle(self, quiet: float, timeout: float) -> bool:
        """Wait until no event came for ``quiet`` s (late ones of a cut-short phase); False at timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() - self.last_event < quiet:
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.1)
        return True

    async def serve(self, inbox: asyncio.Queue[tuple[Any, ...]]) -> None:
        tasks: set[asyncio.Task[None]] = set()
        while True:
            seq, command, *args = await inbox.get()
            if command == "exit":
                self.disconnect()
                return
            if command == "connect":
                self.reply(seq, await self.connect(*args))
            elif command == "disconnect":
                self.disconnect()
                self.reply(seq, None)
            elif command == "phase":  # armed at once; the deliveries are reported under report_seq
                events, latency, report_seq = args
                self.phase = phase = _Phase(events * len(self.connections), latency)
                if phase.expected == 0:
                    phase.ended.set()
                task = asyncio.create_task(self.report_phase(report_seq, phase))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                self.reply(seq, None)
            elif command == "settle":
                self.reply(seq, await self.settle(*args))
            elif command == "stop" and self.phase is not None:
                self.phase.ended.set()
            elif command == "publish":
                self.reply(seq, await publish(*args))


async def publish(client: Client, events: int, rate: float | None, window: int, timeout: float) -> Published:
    """Send ``events`` publishes, at most ``window`` unacknowledged, at ``rate``/s if given."""
    connection = await asyncio.wait_for(client.publisher(), HANDSHAKE_TIMEOUT)
    credit = asyncio.Semaphore(window)
    answered = asyncio.Event()
    counts = {"acked": 0, "refused": 0}

    def on_frame(frame: Data) -> None:
        verdict = client.acked(frame)
        if verdict is None:
            if (answer := client.answer(frame)) is not None:
                connection.send(answer)
            return
        counts["acked" if verdict else "refused"] += 1
        credit.release()
        if counts["acked"] + counts["refused"] == events:
            answered.set()

    async def send_all() -> None:
        start = time.monotonic()
        for i in range(events):
            if rate is not None and (delay := start + i / rate - time.monotonic()) > 0:
                await asyncio.sleep(delay)
            await credit.acquire()
            connection.send(client.publish({"ts": time.time(), "seq": i, **FILLER}, i + 1))
        await answered.wait()

    connection.listen(on_frame, answered.set)
    first = time.time()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(send_all(), timeout)
    last = time.time()
    connection.close()
    return Published(events, counts["acked"], counts["refused"], first, last)


def _worker_main(index: int, commands: Any, results: Any) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        inbox: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()

        def pump() -> None:  # blocking reads of the command queue, handed to the loop
            while True:
                command = commands.get()
                loop.call_soon_threadsafe(inbox.put_nowait, command)
                if command[1] == "exit":
                    return

        threading.Thread(target=pump, daemon=True).start()
        await _Worker(index, results).serve(inbox)

    asyncio.run(main())


# -- in the parent ----------------------------------------------------------------


class LoadGenerator:
    """``processes`` subscriber workers and one publisher worker, alive until :meth:`close`."""

    def __init__(self, processes: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.results = ctx.Queue()
        self.inboxes = [ctx.Queue() for _ in range(processes + 1)]
        self.procs = [
            ctx.Process(target=_worker_main, args=(i, inbox, self.results), daemon=True)
            for i, inbox in enumerate(self.inboxes)
        ]
        for proc in self.procs:
            proc.start()
        #: subscribers connected per subscriber worker (index 0 is the publisher)
        self.counts = [0] * len(self.procs)
        self.seq = 0
        #: replies that arrived while another command's were awaited, by sequence number
        self.early: dict[int, dict[int, Any]] = {}

    @property
    def subscriber_workers(self) -> range:
        return range(1, len(self.procs))

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p.pid is not None]

    def _ask(self, commands: dict[int, tuple[Any, ...]]) -> int:
        """Send each worker its command, all under one new sequence number."""
        self.seq += 1
        for i, command in commands.items():
            self.inboxes[i].put((self.seq, *command))
        return self.seq

    def _collect(self, seq: int, workers: list[int], timeout: float, replies: dict[int, Any]) -> None:
        """Gather the replies to command ``seq`` into ``replies``; LoadError naming the silent workers.

        Replies to another command still outstanding (a phase's deliveries arrive
        while the publisher's answer is awaited) are kept for their own turn.
        """
        replies.update(self.early.pop(seq, {}))
        deadline = time.monotonic() + timeout
        while len(replies) < len(workers):
            try:
                index, reply_seq, payload = self.results.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                missing = sorted(set(workers) - set(replies))
                raise LoadError(f"no answer from workers {missing} within {timeout:.0f} s") from None
            if reply_seq == seq:
                replies[index] = payload
            else:
                self.early.setdefault(reply_seq, {})[index] = payload

    def _request(self, commands: dict[int, tuple[Any, ...]], timeout: float) -> dict[int, Any]:
        replies: dict[int, Any] = {}
        self._collect(self._ask(commands), list(commands), timeout, replies)
        return replies

    def connect(self, client: Client, total: int, timeout: float) -> None:
        """Grow to ``total`` connected subscribers, spread evenly; LoadError if some fail."""
        workers = list(self.subscriber_workers)
        share, extra = divmod(total, len(workers))
        adding = {i: share + (k < extra) - self.counts[i] for k, i in enumerate(workers)}
        commands = {i: ("connect", client, n) for i, n in adding.items() if n > 0}
        errors = []
        for i, (connected, error) in self._request(commands, timeout).items():
            self.counts[i] = connected
            if error:
                errors.append(error)
        if errors or sum(self.counts) != total:
            raise LoadError(f"{sum(self.counts)}/{total} subscribers connected: {'; '.join(errors)}")

    def disconnect(self, timeout: float = 60) -> None:
        self._request({i: ("disconnect",) for i in self.subscriber_workers if self.counts[i]}, timeout)
        self.counts = [0] * len(self.procs)

    def run(
        self, client: Client, events: int, rate: float | None, window: int, timeout: float, latency: bool
    ) -> tuple[Published, Delivery]:
        """Publish ``events`` to every subscriber; wait at most ``timeout`` s, then a bounded grace."""
        workers = [i for i in self.subscriber_workers if self.counts[i]]
        self.seq += 1
        phase = self.seq  # the deliveries' replies; every worker is armed before the first publish
        self._request({i: ("phase", events, latency, phase) for i in workers}, 30)
        publish = ("publish", client, events, rate, window, timeout)
        published: Published = self._request({0: publish}, timeout + HANDSHAKE_TIMEOUT + 10)[0]
        deliveries: dict[int, Delivery] = {}
        try:
            self._collect(phase, workers, max(10.0, 2 * (published.last - published.first)), deliveries)
        except LoadError:  # events missing: take what arrived, let the late ones pass before the next run
            self._ask({i: ("stop",) for i in workers if i not in deliveries})
            self._collect(phase, workers, 10, deliveries)
            self._request({i: ("settle", 1.0, 30.0) for i in workers}, 40)
        parts = list(deliveries.values())
        total = Delivery(
            sum(d.expected for d in parts),
            sum(d.delivered for d in parts),
            max(d.last for d in parts),
            [x for d in parts for x in d.latencies],
            sum(d.dropped for d in parts),
        )
        return published, total

    def close(self, timeout: float = 20) -> None:
        self._ask({i: ("exit",) for i in range(len(self.procs))})
        deadline = time.monotonic() + timeout
        for proc in self.procs:
            proc.join(max(0.1, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join(5)
