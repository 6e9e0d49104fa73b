"""Publish lines from a file descriptor over one WAMP session: ``broker publish --lines`` and ``broker pipe``.

Why not ``broker publish`` in a loop: each is a new process and a new session
(0.7 s). Here one session publishes every line, each with acknowledgement,
at most ``window`` in flight (:class:`broker.core.window.Window`). The
publishes are written and their answers read on the session's connection
directly (:mod:`broker.cli.channel`: a few µs a line instead of autobahn's
~70), and each read's answers refill the window in one write, so the node,
not this process, sets the pace. While the window is full the input is not
read, so a fast program blocks on its full pipe instead of growing this
process's memory. The input is read in a daemon thread, one chunk per
request from the reactor, because a regular file cannot be polled (epoll
refuses it) and a thread blocked on a terminal must not keep the process
alive at exit. The child of ``broker pipe`` is stopped with SIGTERM, then
SIGKILL after a grace period, whenever the publishing ends early (a refusal,
the connection lost, Ctrl-C or SIGTERM). Imported lazily: it pulls in Twisted.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from twisted.internet import defer, task

from broker.cli.channel import Channel
from broker.cli.wamp import Target, _joined, reactor
from broker.core.lines import LineSplitter, line_json, line_payload
from broker.core.window import Window
from broker.errors import BrokerError, PayloadTooLarge
from broker.history.recovery import check_deliverable

#: Bytes read from the input at a time.
CHUNK: Final = 65536
#: The epoch a node's history engines issue (16 hex digits): an event's size is checked with one.
_EPOCH_LIKE: Final = "0" * 16
#: The reasons of a session that ended (autobahn fails the publishes in flight with them).
_SESSION_CLOSED: Final = "wamp.close."
#: Bytes an event's envelope and position take at most besides its payload and topic (see
#: :func:`~broker.history.recovery.check_deliverable`: 512 reserved, the position ~100).
_MARGIN: Final = 2048
#: Seconds between two looks at whether a child has exited.
_POLL: Final = 0.02


class Reader:
    """Reads a file descriptor in a daemon thread: :meth:`read` asks for one chunk (``b""`` at the end)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._requests: queue.SimpleQueue[defer.Deferred[bytes]] = queue.SimpleQueue()
        threading.Thread(target=self._run, name=f"read-fd-{fd}", daemon=True).start()

    def read(self) -> defer.Deferred[bytes]:
        """The next chunk of the input, read only now (``b""``: the end of the input)."""
        answer: defer.Deferred[bytes] = defer.Deferred()
        self._requests.put(answer)
        return answer

    def _run(self) -> None:
        while True:
            answer = self._requests.get()
            try:
                data = os.read(self.fd, CHUNK)
            except OSError as exc:
                reactor.callFromThread(answer.errback, BrokerError(f"cannot read the input: {exc}"))
                return
            reactor.callFromThread(answer.callback, data)
            if not data:
                return


@dataclass
class Publisher:
    """What one run publishes: to ``topic``, each event checked against ``max_bytes`` first."""

    topic: str
    window: Window
    max_bytes: int

    def check(self, payload: Any) -> None:
        """Refuse an event the node would refuse as too large, before it is sent.

        The node's own rule (:func:`~broker.history.recovery.check_deliverable`):
        the event with its position must fit the message limit; a PUBLISH over
        the limit would not even be refused, the node would close the connection.
        """
        check_deliverable(self.topic, [payload], {}, _EPOCH_LIKE, self.max_bytes)

    def fits_surely(self, raw: bytes) -> bool:
        """Whether a line this short cannot be too large in any encoding (no need to :meth:`check`).

        Escaping takes a byte to at most 6 (``\\u001f``), as does any encoding of
        a number; the rest is the envelope, the position and the topic.
        """
        return 6 * (len(raw) + len(self.topic)) + _MARGIN < self.max_bytes


class Pump:
    """Reads, cuts and publishes until the end of the input, a refusal, a loss or :meth:`halt`.

    ``send(messages)`` writes a batch of serialized PUBLISH messages (a
    :class:`~broker.cli.channel.Channel`'s); the answers come back through
    :meth:`answered`, and :meth:`step` sends what the window then allows. The
    input is read only when every line read so far has been sent and the
    window has room. :meth:`finished` answers once nothing more will be sent
    and every publish sent has been answered (or can no longer be).
    """

    def __init__(self, publisher: Publisher, reader: Reader, send: Callable[[list[bytes]], None]) -> None:
        self.publisher = publisher
        self.window = publisher.window
        self.reader = reader
        self.send = send
        self.splitter = LineSplitter(publisher.max_bytes)
        self.pending: deque[bytes | PayloadTooLarge] = deque()
        self.ended = False
        self.reading = False
        self.halted = False
        #: Why the input could not be read, raised once what was in flight is answered.
        self.failure: BaseException | None = None
        #: The line number of each request in flight.
        self.lines: dict[int, int] = {}
        self._requests = itertools.count(1)
        self._envelope = b',{"acknowledge":true},' + json.dumps(publisher.topic).encode() + b",["
        self._waiting: list[defer.Deferred[None]] = []

    def answered(self, request: int, error: tuple[str, str] | None) -> None:
        """The node's answer to ``request``: acknowledged (``error`` None), or refused ``(uri, message)``."""
        line = self.lines.pop(request, None)
        if line is None:
            return  # not one of ours
        window = self.window
        if error is None:
            window.acknowledged()
            return
        uri, message = error
        if uri.startswith(_SESSION_CLOSED):
            window.lose(f"the session ended ({uri}: {message})")
        elif window.lost is None:
            window.refuse(line, uri, message)

    def ended_by_router(self, uri: str, message: str) -> None:
        """The router ended the session (``uri``, ``message``): what is in flight is never answered."""
        if self.lines:
            self.window.lose(f"the session ended ({uri}: {message})")
        self.step()

    def lose(self, reason: str) -> None:
        """The connection is gone."""
        self.window.lose(reason)
        self.step()

    def halt(self) -> None:
        """Send nothing more (Ctrl-C): what is in flight is still answered."""
        self.halted = True
        self.step()

    def finished(self) -> defer.Deferred[None]:
        """Fires once nothing more will be sent and nothing sent is unanswered."""
        waiting: defer.Deferred[None] = defer.Deferred()
        self._waiting.append(waiting)
        self._check()
        return waiting

    def step(self) -> None:
        """Send what the window allows, in one batch; read on when all is sent and there is room."""
        window = self.window
        publisher = self.publisher
        messages: list[bytes] = []
        while self.pending and not self.halted and window.has_room():
            item = self.pending.popleft()
            line = window.take()
            if isinstance(item, PayloadTooLarge):
                window.refuse(line, item.wamp_uri, str(item), in_flight=False)
                break
            if not item:
                window.skip()
                continue
            try:
                if publisher.fits_surely(item):
                    payload = line_json(item)
                else:  # near the limit: checked by the node's rule, sent as autobahn would encode it
                    value = line_payload(item)
                    publisher.check(value)
                    payload = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
            except BrokerError as exc:
                window.refuse(line, exc.wamp_uri, str(exc), in_flight=False)
                break
            request = next(self._requests)
            self.lines[request] = line
            window.send()
            messages.append(b"[16,%d%s%s]]" % (request, self._envelope, payload))
        if messages:
            self.send(messages)
        if not self._sending():
            self._check()
        elif not self.pending and not self.reading and window.has_room():
            self.reading = True
            self.reader.read().addCallbacks(self._got, self._failed)

    def _sending(self) -> bool:
        window = self.window
        return not (window.stopped or self.halted or self.failure or (self.ended and not self.pending))

    def _got(self, data: bytes) -> None:
        self.reading = False
        if data:
            self.pending.extend(self.splitter.feed(data))
        else:
            self.ended = True
            self.pending.extend(self.splitter.finish())
        self.step()

    def _failed(self, failure: Any) -> None:
        self.reading = False
        self.failure = failure.value
        self.step()

    def _check(self) -> None:
        if self._sending() or not self.window.drained:
            return
        waiting, self._waiting = self._waiting, []
        for sleeper in waiting:
            if not sleeper.called:  # a cancelled wait has fired already
                sleeper.callback(None)


async def publish_lines(target: Target, publisher: Publisher, fd: int, on_joined: Any = None) -> None:
    """Join, then publish every line read from ``fd`` until its end, a refusal or the connection lost.

    ``on_joined()`` runs once the session is joined (``broker pipe`` starts its
    program then). Returns once every publish sent has been answered; the
    outcome is in ``publisher.window``. Cancelled (Ctrl-C), it still waits
    for what is in flight, then leaves.
    """
    async with _joined(target) as session:
        if on_joined is not None:
            on_joined()
        pump = Pump(publisher, Reader(fd), lambda messages: None)
        leaving: list[bool] = []

        def lost(_: object) -> None:
            if not leaving:  # not our own GOODBYE
                pump.lose("the connection was lost")

        session.disconnected.addCallback(lost)
        channel = Channel(session.protocol, pump.answered, pump.step, pump.ended_by_router)
        pump.send = channel.send
        try:
            pump.step()
            await pump.finished()
        finally:
            pump.halt()
            while not publisher.window.drained:
                await pump.finished()
            channel.release()
            leaving.append(True)
        if pump.failure is not None:
            raise pump.failure


def exit_status(returncode: int) -> int:
    """A child's status as a shell reports it: its exit code, or 128 + the signal that killed it."""
    return 128 - returncode if returncode < 0 else returncode


async def _exited(child: subprocess.Popen[bytes], timeout: float | None = None) -> bool:
    deadline = None if timeout is None else time.monotonic() + timeout
    while child.poll() is None:
        if deadline is not None and time.monotonic() >= deadline:
            return False
        await task.deferLater(reactor, _POLL, lambda: None)
    return True


async def stop_child(child: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM, then SIGKILL if ``child`` has not exited within ``grace`` seconds."""
    if child.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        child.send_signal(signal.SIGTERM)
    if not await _exited(child, grace):
        with contextlib.suppress(ProcessLookupError):
            child.kill()
        await _exited(child)


async def pipe(target: Target, publisher: Publisher, command: list[str], grace: float) -> int | None:
    """Run ``command`` once joined and publish its standard output: the child's status, or None.

    None: the publishing ended early (a refusal, the connection lost; the
    reason is in ``publisher.window``) and the child was stopped. Cancelled,
    the child is stopped too, once what was in flight is acknowledged. A
    command that cannot be started is 127 (not found) or 126, as in a shell.
    """
    started: list[subprocess.Popen[bytes]] = []
    not_started: list[int] = []
    read_end, write_end = os.pipe()
    open_ends = [read_end, write_end]

    def start() -> None:
        open_ends.remove(write_end)
        try:
            started.append(subprocess.Popen(command, stdout=write_end))  # noqa: S603 (the user's own command)
        except OSError as exc:
            not_started.append(127 if isinstance(exc, FileNotFoundError) else 126)
            print(f"broker: cannot run {command[0]!r}: {exc.strerror}", file=sys.stderr, flush=True)
        finally:
            os.close(write_end)  # the child holds it: its exit (or none started) ends the input

    try:
        try:
            await publish_lines(target, publisher, read_end, on_joined=start)
        except BaseException:  # cancelled (Ctrl-C, SIGTERM), or the session failed
            if started:
                await stop_child(started[0], grace)
            raise
        if not_started:
            return not_started[0]
        if publisher.window.stopped:
            await stop_child(started[0], grace)
            return None
        await _exited(started[0])
        return exit_status(started[0].returncode)
    finally:
        for fd in open_ends:
            os.close(fd)
