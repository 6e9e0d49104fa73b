"""What every ``broker`` command shares: defaults, argument types, errors, and joining the router.

Why one module: ``run``, ``publish``, ``tail``, ``token`` and ``reload`` must agree on the
config, the secrets and the URL; each command group imports this and nothing imports a command group.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from broker.config import devsecrets, nodeconfig
from broker.core.uris import check_uri
from broker.errors import BrokerError, ConfigError, InvalidUri, WampError

if TYPE_CHECKING:
    from broker.cli.wamp import Target

DEFAULT_CONFIG: Final = Path(".crossbar/config.json")
#: Where clients connect when neither ``--url``, ``BROKER_WS_URL`` nor a config says.
DEFAULT_URL: Final = "ws://127.0.0.1:8080/ws"
#: ``broker run``'s node directory, relative to the config's directory.
RUN_DIRNAME: Final = "run"
LOG_LEVELS: Final = ("none", "error", "warn", "info", "debug", "trace")
#: Exit status of a command stopped by Ctrl-C or SIGTERM (``tail`` exits 0).
INTERRUPTED: Final = 130


def fail(message: str, status: int = 1) -> int:
    print(f"broker: {message}", file=sys.stderr)
    return status


def parse_port(text: str) -> int:
    """An argparse type: a TCP port number."""
    try:
        port = int(text)
    except ValueError:
        port = 0
    if not 0 < port < 65536:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}")
    return port


def parse_position(text: str) -> tuple[str, int]:
    """An argparse type: ``EPOCH:CURSOR``, as printed in an event's position."""
    epoch, _, cursor = text.rpartition(":")
    if not epoch or not cursor.isdigit():
        raise argparse.ArgumentTypeError(f"not a position EPOCH:CURSOR: {text!r}")
    return epoch, int(cursor)


def parse_positive(text: str) -> int:
    """An argparse type: a positive count."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"not a positive number: {text!r}")
    return value


def secret_name(authid: str) -> str:
    """The variable holding ``authid``'s WAMP-CRA secret (``BROKER_BACKEND_SECRET``)."""
    return f"BROKER_{re.sub(r'[^A-Z0-9]', '_', authid.upper())}_SECRET"


def running_node(cbdir: Path) -> int | None:
    """The PID of a live crossbar controller recorded in ``cbdir/node.pid``, if any.

    A stale file (dead process, or a PID reused by something else) counts as
    none: crossbar itself replaces it at start.
    """
    try:
        pid = int(json.loads((cbdir / "node.pid").read_text(encoding="utf-8"))["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if pid == os.getpid():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, but another user's
    try:
        # the controller renames itself to "crossbar-controller"
        return pid if b"crossbar" in Path(f"/proc/{pid}/cmdline").read_bytes() else None
    except OSError:
        return pid  # no /proc to tell: trust the pid file


def client_url(args: argparse.Namespace) -> str:
    """``--url``, else ``BROKER_WS_URL``, else the config's WebSocket, else the default."""
    if args.url:
        url: str = args.url
        return url
    if "BROKER_WS_URL" in os.environ:
        return os.environ["BROKER_WS_URL"]
    config_path: Path = args.config
    if not config_path.exists():
        return DEFAULT_URL
    port = os.environ.get("BROKER_PORT")
    try:
        port_number = parse_port(port) if port else None
    except argparse.ArgumentTypeError as exc:
        raise BrokerError(f"BROKER_PORT: {exc}") from None
    config = nodeconfig.render(
        nodeconfig.load(config_path),
        config_path.parent,
        port=port_number,
        host=os.environ.get("BROKER_HOST") or None,
    )
    return nodeconfig.websocket_url(config)


def join_target(args: argparse.Namespace, anonymous: bool) -> Target:
    """Where and as whom a client command joins."""
    url = client_url(args)
    secret: devsecrets.Secret | None = None
    if not anonymous:
        name = secret_name(args.authid)
        secret = devsecrets.lookup(name, args.config.parent)
        if secret is None:
            raise BrokerError(
                f"no secret for {args.authid!r}: set {name}, or start the node once "
                f"with 'broker run' to create {devsecrets.path_for(args.config.parent)}"
            )
    from broker.cli.wamp import Target

    return Target(
        url,
        args.realm,
        authid=None if anonymous else args.authid,
        secret=None if secret is None else secret.value,
        secret_source=None if secret is None else secret.source,
    )


#: A client command: ``(broker.cli.wamp, target) -> coroutine``.
ClientCommand = Callable[[Any, "Target"], Coroutine[Any, Any, Any]]


def run_client(
    args: argparse.Namespace, verb: str, match: str, anonymous: bool, command: ClientCommand
) -> tuple[int, Any]:
    """Check the topic, join and run ``command``: ``(status, result)``; errors are printed."""
    try:
        check_uri(args.topic, match, what="topic" if match == "exact" else "pattern")
        target = join_target(args, anonymous)
    except InvalidUri as exc:
        return fail(f"{verb} failed: {exc.wamp_uri}: {exc}"), None
    except ConfigError as exc:
        return fail(f"config error: {exc}"), None
    except BrokerError as exc:
        return fail(str(exc)), None
    from broker.cli import wamp as wampclient

    try:
        return wampclient.run(lambda: command(wampclient, target), args.interrupted)
    except WampError as exc:
        return fail(f"{verb} failed: {exc}"), None
    except BrokerError as exc:
        return fail(str(exc)), None
