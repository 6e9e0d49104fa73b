"""``broker publish`` and ``broker tail``: one acknowledged event out, a topic's events in as JSON lines."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from broker.cli.common import fail, run_client
from broker.cli.lines import cmd_publish_lines
from broker.history import POSITION_KEY


def cmd_publish(args: argparse.Namespace) -> int:
    if args.lines:
        if args.json is not None:
            return fail("give either JSON or --lines, not both", status=2)
        return cmd_publish_lines(args)
    if args.json is None:
        return fail("nothing to publish: give JSON, or --lines to read events from standard input", status=2)
    try:
        payload = json.loads(args.json)
    except json.JSONDecodeError as exc:
        return fail(f"invalid JSON payload: {exc}", status=2)
    status, published = run_client(
        args,
        "publish",
        "exact",
        False,
        lambda client, target: client.publish(target, args.topic, payload),
    )
    if published is not None:
        print(json.dumps(published), flush=True)
    return status


def _print_event(topic: str, args: list[Any], kwargs: dict[str, Any]) -> None:
    kwargs = dict(kwargs)
    position = kwargs.pop(POSITION_KEY, None)
    print(json.dumps({"topic": topic, "position": position, "args": args, "kwargs": kwargs}), flush=True)


def cmd_tail(args: argparse.Namespace) -> int:
    def subscribed() -> None:
        print(f"broker: subscribed to {args.topic} ({args.match})", file=sys.stderr, flush=True)

    try:
        status, _ = run_client(
            args,
            "subscribe",
            args.match,
            args.anonymous,
            lambda client, target: client.tail(
                target,
                args.topic,
                args.match,
                _print_event,
                subscribed,
                count=args.count,
                resume_from=args.resume_from,
            ),
        )
    except BrokenPipeError:
        # the reader went away (``broker tail | head -1``): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return status
