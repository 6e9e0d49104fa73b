"""The ``broker`` command: run the node, publish, tail a topic, mint a token, check and edit the config.

Why one command: ``make run`` in one shell and ``broker publish`` in another
must agree on the config, the secrets and the URL with no setup, and CI must
validate the config without starting a node. This module only builds the
parser; each command group is a module of its own (``run``, ``events``,
``token``, ``check``, ``config``). Importing it stays cheap: Twisted and
Autobahn load only inside the client commands (:mod:`broker.cli.wamp`).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

from broker import __version__
from broker.cli import config as configcmd
from broker.cli.check import cmd_check
from broker.cli.common import (
    DEFAULT_CONFIG,
    DEFAULT_URL,
    INTERRUPTED,
    LOG_LEVELS,
    RUN_DIRNAME,
    parse_port,
    parse_position,
    parse_positive,
)
from broker.cli.events import cmd_publish, cmd_tail
from broker.cli.lines import DEFAULT_WINDOW, cmd_pipe
from broker.cli.run import cmd_run
from broker.cli.token import cmd_token, parse_grant
from broker.core.uris import MATCH_POLICIES

#: ``broker --help``'s examples: the README's first steps, runnable as they stand.
EXAMPLES: Final = """\
examples:
  broker run                                          start the node on 127.0.0.1:8080
  broker run --port 8081                              ... on another port (or BROKER_PORT=8081)
  broker tail 'public.' --match prefix                print every event under public. as JSON lines
  broker tail 'orders..created' --match wildcard      WAMP wildcards are empty components
  broker tail public.demo --from 6f1c0e2ab4d39e87:42  first what was missed after a printed position
  broker publish public.demo '{"n": 1}'               prints {"topic": ..., "id": ..., "position": ...}
  tail -f app.log | broker publish logs.app --lines   one event per line, over one session
  broker pipe public.ticks -- vmstat 1                run a program, publish each line it prints
  broker token 42 --subscribe user.42.:prefix --ttl 3600
  broker config grant anonymous news. --match prefix --allow subscribe && broker reload
  broker check                                        validate .crossbar/config.json

'broker COMMAND --help' describes each command.
"""


def _window(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--window",
        type=parse_positive,
        default=DEFAULT_WINDOW,
        help="publishes in flight at most; input is not read while they are (default: %(default)s)",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="broker",
        description="Broker: a publish/subscribe message broker on Crossbar.io.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, func: Callable[[argparse.Namespace], int], summary: str) -> Any:
        sub = commands.add_parser(name, help=summary, description=summary)
        sub.set_defaults(func=func, interrupted=INTERRUPTED)
        sub.add_argument(
            "--config", type=Path, default=DEFAULT_CONFIG, help="node config (default: %(default)s)"
        )
        return sub

    run = command("run", cmd_run, "start the node in the foreground")
    run.add_argument(
        "--port",
        type=parse_port,
        default=os.environ.get("BROKER_PORT"),
        help="listen on this port (default: $BROKER_PORT, else the config's)",
    )
    run.add_argument(
        "--host",
        default=os.environ.get("BROKER_HOST"),
        help="listen on this interface (default: $BROKER_HOST, else the config's)",
    )
    run.add_argument(
        "--cbdir",
        type=Path,
        help=f"crossbar's node directory (default: {RUN_DIRNAME}/ next to the config)",
    )
    run.add_argument(
        "--loglevel", choices=LOG_LEVELS, default="warn", help="crossbar's (default: %(default)s)"
    )

    def client(name: str, func: Callable[[argparse.Namespace], int], summary: str) -> Any:
        sub = command(name, func, summary)
        sub.add_argument(
            "--url",
            help=f"router WebSocket (default: $BROKER_WS_URL, else the config's, else {DEFAULT_URL})",
        )
        sub.add_argument("--realm", default="app", help="(default: %(default)s)")
        sub.add_argument(
            "--authid",
            default="backend",
            help="WAMP-CRA user; the secret is $BROKER_<AUTHID>_SECRET, else the dev secrets file "
            "(default: %(default)s)",
        )
        return sub

    publish = client("publish", cmd_publish, "publish one event and wait for the router's ack")
    publish.add_argument("topic", metavar="TOPIC")
    publish.add_argument("json", metavar="JSON", nargs="?", help="the event's payload (its only argument)")
    publish.add_argument(
        "--lines",
        action="store_true",
        help='publish each line of standard input instead (JSON if it parses, else {"line": ...})',
    )
    _window(publish)

    pipe = client("pipe", cmd_pipe, "run a program and publish each line it prints as an event")
    pipe.add_argument("topic", metavar="TOPIC")
    pipe.add_argument("program", nargs="*", metavar="-- COMMAND ARGS...")
    pipe.add_argument(
        "--grace",
        type=float,
        default=5.0,
        help="seconds between SIGTERM and SIGKILL when the program must stop (default: %(default)s)",
    )
    _window(pipe)

    tail = client("tail", cmd_tail, "print each event on a topic as a JSON line")
    tail.set_defaults(interrupted=0)
    tail.add_argument("topic", metavar="TOPIC_OR_PATTERN")
    tail.add_argument("--match", choices=MATCH_POLICIES, default="exact", help="(default: %(default)s)")
    tail.add_argument("--anonymous", action="store_true", help="join anonymously instead")
    tail.add_argument("--count", type=parse_positive, help="exit after this many events")
    tail.add_argument(
        "--from",
        dest="resume_from",
        type=parse_position,
        metavar="EPOCH:CURSOR",
        help="first print what was published after this position (from a previous line's position)",
    )

    token = command("token", cmd_token, "print a signed user token (HS256, $BROKER_TOKEN_SECRET)")
    token.add_argument("sub", metavar="SUB", help="the user id the token names")
    token.add_argument(
        "--subscribe",
        action="append",
        type=parse_grant,
        metavar="PATTERN[:MATCH]",
        help="a topic pattern the user may subscribe to, MATCH one of exact (the default), prefix, "
        "wildcard: e.g. user.42.:prefix (repeatable)",
    )
    token.add_argument("--ttl", type=parse_positive, default=300, help="seconds (default: %(default)s)")
    token.add_argument(
        "--audience", help="the 'aud' claim (default: the node's tokens.audience, else broker)"
    )

    configcmd.add_commands(command, client)  # broker config ..., broker reload

    check = command("check", cmd_check, "validate the node config without starting it")
    check.add_argument("--json", action="store_true", help="report as JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``broker`` command line; returns the exit status."""
    words = list(sys.argv[1:] if argv is None else argv)
    program: list[str] = []
    if words[:1] == ["pipe"] and "--" in words:  # argparse cannot tell options after "--" from its own
        cut = words.index("--")
        words, program = words[:cut], words[cut + 1 :]
    args = _parser().parse_args(words)
    if program:
        args.program = [*args.program, *program]
    try:
        status: int = args.func(args)
    except KeyboardInterrupt:  # before the reactor took over SIGINT
        interrupted: int = args.interrupted
        return interrupted
    return status
