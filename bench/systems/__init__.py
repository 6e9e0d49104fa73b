"""The systems the fan-out benchmark compares, one module each, behind one small interface.

Why an interface: the fan-out section runs the same cases (one publisher, N
subscribers, a bounded number of events) against Broker, plain crossbar,
python-socketio, Django Channels and a bare ``websockets`` broadcast server
in one run. Each system differs in two places only, so each module supplies
exactly those:

* a :class:`Server`: starts the system's processes on free loopback ports,
  says which PIDs are "the server" (for CPU accounting) and stops them by PID;
* a :class:`Client`: a small picklable description of how to reach it, sent
  into the load-generator processes (:mod:`bench.systems.loadgen`), which
  speaks the system's wire protocol over raw ``websockets`` connections —
  handshake and subscribe, recognise an event frame cheaply, read the
  publish timestamp out of it, frame a publish, recognise its acknowledgement.

Every wait here has a deadline; a server that does not come up raises
:class:`StartError`, which the section reports as a failed row.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.typing import Origin, Subprotocol
from websockets.uri import parse_uri

#: What travels on a WebSocket: text or binary frames.
Data = str | bytes

#: The WAMP topic every case publishes to (socket.io and Channels use their own room and group).
TOPIC = "public.bench"
#: Seconds one client connection may take from TCP connect to subscribed (or joined).
HANDSHAKE_TIMEOUT = 30


class StartError(RuntimeError):
    """A system under test did not come up; the message ends with its log tail."""


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    """Return once ``port`` accepts TCP connections; raise if ``proc`` dies or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise StartError(f"exited with {proc.returncode}; log:\n{tail(log)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise StartError(f"not listening on {port} after {timeout:.0f} s; log:\n{tail(log)}")


def tail(log: Path, chars: int = 3000) -> str:
    return log.read_text(errors="replace")[-chars:] if log.exists() else "(no log)"


def tree(pid: int) -> list[int]:
    """``pid`` and every process below it (crossbar's workers, daphne's)."""
    try:
        root = psutil.Process(pid)
        return [pid, *(child.pid for child in root.children(recursive=True))]
    except psutil.NoSuchProcess:
        return []


class FrameQueue:
    """Frames queued until a listener takes over: what every load-generator connection shares."""

    frames: asyncio.Queue[Data | None]
    on_frame: Callable[[Data], None] | None
    on_lost: Callable[[], None] | None

    def listen(self, on_frame: Callable[[Data], None], on_lost: Callable[[], None]) -> None:
        """From now on hand every frame to ``on_frame`` as it arrives (queued ones first)."""
        while not self.frames.empty():
            frame = self.frames.get_nowait()
            if frame is None:
                on_lost()
                return
            on_frame(frame)
        self.on_frame, self.on_lost = on_frame, on_lost


class Connection(FrameQueue, asyncio.Protocol):
    """One client WebSocket on websockets' sans-I/O protocol, with frames handed over synchronously.

    Why not ``websockets.asyncio.client``: its ``recv()`` costs a future and a
    task switch per message, which at tens of thousands of events per second
    on a 2-core machine takes CPU from the server being measured. Here the
    handshake steps ``await`` :meth:`recv`; afterwards :meth:`listen` gets each
    frame straight from ``data_received``. Pings are answered by the protocol.
    Client frames use no compression; servers' frames are never fragmented here.
    """

    def __init__(self, url: str, origin: str | None, subprotocol: str | None) -> None:
        self.protocol = ClientProtocol(
            parse_uri(url),
            origin=Origin(origin) if origin else None,
            subprotocols=[Subprotocol(subprotocol)] if subprotocol else None,
            max_size=2**20,
        )
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = loop.create_future()
        self.frames: asyncio.Queue[Data | None] = asyncio.Queue()
        self.on_frame: Callable[[Data], None] | None = None
        self.on_lost: Callable[[], None] | None = None
        self.transport: asyncio.Transport | None = None

    # -- asyncio.Protocol -------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.protocol.send_request(self.protocol.connect())
        self._flush()

    def data_received(self, data: bytes) -> None:
        self.protocol.receive_data(data)
        for event in self.protocol.events_received():
            if isinstance(event, Response):
                if self.protocol.state is State.OPEN:
                    self.opened.set_result(None)
                else:
                    self.opened.set_exception(ConnectionError(f"handshake refused: {event.status_code}"))
            elif isinstance(event, Frame) and event.opcode is Opcode.TEXT:
                self._deliver(bytes(event.data).decode())
            elif isinstance(event, Frame) and event.opcode is Opcode.BINARY:
                self._deliver(bytes(event.data))
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError("closed during the handshake"))
        self.frames.put_nowait(None)
        if self.on_lost is not None:
            self.on_lost()

    # -- use ----------------------------------------------------------------------
    def _deliver(self, frame: Data) -> None:
        if self.on_frame is not None:
            self.on_frame(frame)
        else:
            self.frames.put_nowait(frame)

    def _flush(self) -> None:
        assert self.transport is not None
        for chunk in self.protocol.data_to_send():
            if chunk:
                self.transport.write(chunk)
            elif self.transport.can_write_eof():
                self.transport.write_eof()
        if self.protocol.close_expected():
            self.transport.close()

    async def recv(self) -> Data:
        frame = await self.frames.get()
        if frame is None:
            raise ConnectionError("connection closed")
        return frame

    def send(self, frame: Data) -> None:
        if isinstance(frame, str):
            self.protocol.send_text(frame.encode())
        else:
            self.protocol.send_binary(frame)
        self._flush()

    def close(self) -> None:
        self.on_lost = None
        if self.transport is not None and not self.transport.is_closing():
            self.protocol.send_close()
            self._flush()
            self.transport.close()


async def open_websocket(url: str, origin: str | None = None, subprotocol: str | None = None) -> Connection:
    """Connect and complete the WebSocket handshake (no compression), within the handshake deadline."""
    uri = parse_uri(url)
    loop = asyncio.get_running_loop()

    async def open_() -> Connection:
        _, connection = await loop.create_connection(
            lambda: Connection(url, origin, subprotocol), uri.host, uri.port
        )
        await connection.opened
        return connection

    return await asyncio.wait_for(open_(), HANDSHAKE_TIMEOUT)


class Subprocess:
    """One server process started in its own session, logged to a file, stopped by PID."""

    def __init__(
        self, argv: Sequence[str], log: Path, cwd: Path | None = None, env: dict[str, str] | None = None
    ) -> None:
        self.argv = list(argv)
        self.log = log
        self.cwd = cwd
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.pids: list[int] = []

    def start(self, port: int, timeout: float = 60) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(  # noqa: S603 - our own programs, fixed arguments
                self.argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.cwd,
                env=self.env,
                start_new_session=True,
            )
        wait_for_port(port, self.proc, self.log, timeout)
        self.pids = tree(self.proc.pid)

    def stop(self, timeout: float = 15) -> None:
        """SIGINT, then SIGKILL for whatever of its process tree is still alive."""
        if self.proc is None:
            return
        pids = tree(self.proc.pid) or self.pids
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc = None


class Client(ABC):
    """How load-generator processes talk to one running system (picklable: plain fields only)."""

    #: "json" or "msgpack"; systems that only speak JSON keep "json"
    serializer: str = "json"

    def using(self, serializer: str) -> Client:
        """This client speaking ``serializer`` (a JSON-only system speaks JSON)."""
        return self

    @abstractmethod
    async def subscribe(self) -> Connection:
        """Open one subscriber connection, subscribed and ready for events (deadline inside)."""

    @abstractmethod
    def is_event(self, frame: Data) -> bool:
        """Whether ``frame`` is a delivered event (cheap: no full decode)."""

    @abstractmethod
    def sent_at(self, frame: Data) -> float:
        """The ``ts`` the publisher put in the event's payload."""

    @abstractmethod
    async def publisher(self) -> Connection:
        """Open the publisher's connection (authenticated where the system needs it)."""

    @abstractmethod
    def publish(self, payload: dict[str, Any], request: int) -> Data:
        """The frame that publishes ``payload``, acknowledged under ``request``."""

    @abstractmethod
    def acked(self, frame: Data) -> bool | None:
        """True for a publish acknowledgement, False for a refusal, None for anything else."""

    def answer(self, frame: Data) -> Data | None:
        """A reply the protocol requires to a non-event frame (a keep-alive), if any."""
        return None


@dataclass(frozen=True)
class BroadcastClient(Client):
    """The small protocol of the bare broadcast server and the Channels consumers.

    Subscribers connect to ``/sub`` and are told ``ready`` once they receive;
    the publisher sends each payload as a JSON frame to ``/pub`` and gets ``ack``
    back; every subscriber frame is an event.
    """

    url: str

    async def subscribe(self) -> Connection:
        ws = await open_websocket(f"{self.url}/sub")
        if await ws.recv() != "ready":
            raise ConnectionError(f"no 'ready' from {self.url}/sub")
        return ws

    def is_event(self, frame: Data) -> bool:
        return True

    def sent_at(self, frame: Data) -> float:
        return float(json.loads(frame)["ts"])

    async def publisher(self) -> Connection:
        return await open_websocket(f"{self.url}/pub")

    def publish(self, payload: dict[str, Any], request: int) -> Data:
        return json.dumps(payload, separators=(",", ":"))

    def acked(self, frame: Data) -> bool | None:
        return frame == "ack" or None


class Server(ABC):
    """One system under test: started once, measured at every N, stopped by PID."""

    #: the row label in the tables and plots
    name: str
    #: the serializers measured against it (WAMP systems: json and msgpack)
    serializers: tuple[str, ...] = ("json",)
    #: fewer deliveries per case for systems an order of magnitude slower (bounded run time)
    deliveries_scale: float = 1.0

    @abstractmethod
    def start(self, workdir: Path) -> Client:
        """Start on free loopback ports; raise :class:`StartError` if it does not come up."""

    @abstractmethod
    def pids(self) -> list[int]:
        """The processes whose CPU time is the server's."""

    @abstractmethod
    def stop(self) -> None:
        """Stop every process :meth:`start` started, by PID."""


class ProcessServer(Server):
    """A system of server processes started here (not a crossbar node), stopped in reverse order."""

    def __init__(self) -> None:
        self.processes: list[Subprocess] = []

    def launch(
        self,
        argv: Sequence[str],
        log: Path,
        port: int,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        """Start one process and wait until it listens on ``port``."""
        process = Subprocess(argv, log, cwd, env)
        self.processes.append(process)
        process.start(port)

    def pids(self) -> list[int]:
        return [pid for process in self.processes if process.proc for pid in tree(process.proc.pid)]

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.processes = []
