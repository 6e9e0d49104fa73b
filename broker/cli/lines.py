"""``broker publish TOPIC --lines`` and ``broker pipe TOPIC -- COMMAND``: a program's output as events.

Why (websocketd's idea, for a broker): any program that prints lines becomes
a live topic without a client library. Both commands publish over one
session (:mod:`broker.cli.stream`), every line acknowledged, and end with a
one-line summary on stderr. Exit statuses:

- ``broker publish --lines``: 0 when every line was published (or skipped),
  1 on the first refused line or a lost connection (the line number, the
  error URI and message on stderr; what was acknowledged stays published),
  130 when stopped by Ctrl-C or SIGTERM (after what was in flight was answered);
- ``broker pipe``: the program's own status (128 + N if signal N ended it)
  once every line it printed was acknowledged; 125 when Broker stopped it
  (a refused line, a lost connection) or could not connect; 126/127 when the
  program cannot be run / is not found; 130 on Ctrl-C or SIGTERM, which stop
  the program too.
"""

from __future__ import annotations

import argparse
import sys
from typing import Final

from broker.cli.common import fail, join_target
from broker.config import nodeconfig
from broker.core.uris import check_uri
from broker.core.window import Window
from broker.errors import BrokerError, ConfigError, InvalidUri, WampError

#: Publishes in flight at most, unless ``--window`` says otherwise.
DEFAULT_WINDOW: Final = 500
#: The message limit when there is no config to read it from: the shipped config's.
DEFAULT_MESSAGE_LIMIT: Final = 65536
#: ``broker pipe``'s status when Broker itself ended the run (after ``env`` and ``timeout``).
PIPE_FAILED: Final = 125


def message_limit(args: argparse.Namespace) -> int:
    """The node's message limit, from its config (``--config``), else :data:`DEFAULT_MESSAGE_LIMIT`."""
    if not args.config.exists():
        return DEFAULT_MESSAGE_LIMIT
    limit = nodeconfig.message_limit(nodeconfig.load(args.config))
    return nodeconfig.CROSSBAR_DEFAULT_MESSAGE_SIZE if limit is None else limit


def _report(window: Window) -> None:
    if window.refusal is not None:
        print(f"broker: {window.refusal}", file=sys.stderr)
    elif window.lost is not None:
        print(f"broker: after line {window.read}: {window.lost}", file=sys.stderr)
    print(f"broker: {window.summary()}", file=sys.stderr, flush=True)


def _run(args: argparse.Namespace, command: list[str] | None, failed: int) -> int:
    try:
        check_uri(args.topic, "exact", what="topic")
        target = join_target(args, anonymous=False)
        limit = message_limit(args)
    except InvalidUri as exc:
        return fail(f"publish failed: {exc.wamp_uri}: {exc}", status=failed)
    except ConfigError as exc:
        return fail(f"config error: {exc}", status=failed)
    except BrokerError as exc:
        return fail(str(exc), status=failed)
    from broker.cli import stream
    from broker.cli import wamp as wampclient

    window = Window(args.window)
    publisher = stream.Publisher(args.topic, window, limit)
    try:
        if command is None:
            status, _ = wampclient.run(
                lambda: stream.publish_lines(target, publisher, sys.stdin.fileno()), args.interrupted
            )
        else:
            status, child = wampclient.run(
                lambda: stream.pipe(target, publisher, command, args.grace), args.interrupted
            )
            if status == 0:
                status = failed if child is None else child
    except WampError as exc:  # the node refused the session
        return fail(f"publish failed: {exc}", status=failed)
    except BrokerError as exc:  # could not connect or join: nothing was read
        return fail(str(exc), status=failed)
    _report(window)
    if status == 0 and window.stopped:
        return failed
    return status


def cmd_publish_lines(args: argparse.Namespace) -> int:
    """``broker publish TOPIC --lines``: each line of standard input is one event."""
    return _run(args, None, 1)


def cmd_pipe(args: argparse.Namespace) -> int:
    """``broker pipe TOPIC -- COMMAND ARGS...``: each line ``COMMAND`` prints is one event."""
    command = list(args.program)
    if not command:
        return fail("no command to run: broker pipe TOPIC -- COMMAND [ARGS...]", status=2)
    return _run(args, command, PIPE_FAILED)
