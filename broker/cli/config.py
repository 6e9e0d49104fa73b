"""``broker config`` (edit the node config) and ``broker reload`` (apply it to the running node).

Why a command and not an editor: an operator's hand edit can break the file
or reference a secret nobody set, and the node only finds out at the next
start. Each ``broker config`` edit is a pure function (:mod:`broker.config.configedit`),
validated like ``broker check`` does before the file is replaced — an
invalid edit leaves the file as it was and names the JSON path — and the file
is written atomically in its house style (:mod:`broker.config.configfile`), so the
diff a reviewer sees is the edit. ``broker reload`` then asks the running
node to apply it (``broker.reload``, as ``operator``), or sends the node
SIGHUP (``--signal``). Twisted loads only for ``reload`` without ``--signal``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import signal
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from broker.cli import check, common
from broker.config import atomicfile, configedit, configfile, devsecrets, nodeconfig
from broker.config.reload import RELOAD_PROCEDURE
from broker.core.grants import ACTIONS
from broker.core.uris import MATCH_POLICIES
from broker.errors import BrokerError, ConfigError, WampError

#: Adds a subcommand with ``--config``: ``(name, func, summary) -> parser``.
CommandAdder = Callable[[str, Callable[[argparse.Namespace], int], str], Any]


def _say(message: str) -> None:
    print(f"broker: {message}", file=sys.stderr, flush=True)


def _fail(message: str, status: int = 1) -> int:
    _say(message)
    return status


def _actions(text: str) -> list[str]:
    """An argparse type: ``subscribe,publish``."""
    actions = [a.strip() for a in text.split(",") if a.strip()]
    unknown = [a for a in actions if a not in ACTIONS]
    if unknown or not actions:
        raise argparse.ArgumentTypeError(f"actions are a comma-separated list of {', '.join(ACTIONS)}")
    return actions


def _publisher_topics(texts: list[str], match: str | None) -> list[tuple[str, str]] | None:
    """``add-publisher``'s ``(uri, match)`` patterns: every ``--topic`` with ``--match``
    (default exact), as ``grant`` and ``set-history`` take them; ``None`` after a usage error.

    The old ``PATTERN:MATCH`` suffix still works, with a note that it is deprecated.
    """
    topics = []
    for text in texts:
        uri, sep, suffix = text.rpartition(":")
        if not sep or suffix not in MATCH_POLICIES:
            topics.append((text, match or "exact"))
            continue
        if match is not None:
            _say(f"--topic {text!r} and --match {match}: give the match once, with --match")
            return None
        _say(f"note: --topic {text!r} is deprecated: write --topic {uri} --match {suffix}")
        topics.append((uri, suffix))
    return topics


def _rate(text: str) -> tuple[float, int]:
    """An argparse type: ``PER_SECOND[:BURST]``."""
    rate, _, burst = text.partition(":")
    try:
        per_second = float(rate)
        size = int(burst) if burst else max(1, int(per_second))
    except ValueError:
        per_second, size = 0.0, 0
    if per_second <= 0 or size < 1:
        raise argparse.ArgumentTypeError(f"not a rate PER_SECOND[:BURST]: {text!r}")
    return per_second, size


@contextlib.contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """``os.environ`` with ``values`` added, for the duration (a pending secret counts as set)."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def validate(path: Path, text: str, pending: Mapping[str, str]) -> list[ConfigError]:
    """Everything wrong with ``text`` as the node config at ``path`` (which is not touched).

    Broker's settings are parsed (:func:`broker.config.settings.parse_settings`, with
    ``pending`` secrets counting as set) and the whole config is checked
    (:func:`broker.cli.check.check_config`) as a sibling file, so relative paths and
    the dev secrets file resolve as they will for ``path``.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.check-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        candidate = Path(tmp)
        with _environment(pending):
            try:
                config = nodeconfig.load(candidate)
                # unset secrets are check_config's to report, once each: here they count as set
                env = nodeconfig.assume_set(config)
                env.update(devsecrets.load(devsecrets.path_for(path.parent)))
                check.broker_component(config, {**env, **os.environ})
            except ConfigError as error:
                return [error]
            return check.check_config(candidate)
    finally:
        os.unlink(tmp)


def _apply(args: argparse.Namespace, edit: Callable[[dict[str, Any]], configedit.Edited]) -> int:
    """Edit the config at ``--config``, validate, write; the exit status."""
    path: Path = args.config
    try:
        edited = edit(nodeconfig.load(path))
    except ConfigError as error:
        return _fail(f"config error: {error}")
    secrets_path = devsecrets.path_for(path.parent)
    changes: dict[str, str | None] = {}
    if args.edit in ("add-publisher", "rotate-publisher") and edited.secret_var:
        changes[edited.secret_var] = secrets.token_urlsafe(32)
    text = configfile.format_config(edited.config)
    pending = {k: v for k, v in changes.items() if v is not None}
    errors = validate(path, text, pending)
    if errors:
        for found in errors:
            _say(f"config error: {found}")
        return _fail(f"{path} left unchanged")
    if pending:  # before the config that references it
        devsecrets.update(secrets_path, changes)
    if text != path.read_text(encoding="utf-8"):
        configfile.write(path, text)
    if args.edit == "remove-publisher" and edited.secret_var:
        devsecrets.update(secrets_path, {edited.secret_var: None})
    _say(f"{edited.summary}; apply it with 'broker reload'")
    for name, value in pending.items():
        _say(f"secret ${{{name}}} stored in {secrets_path}")
        if name in os.environ:
            _say(f"note: {name} is set in this environment, and a node started with it keeps that value")
        print(f"key_id={args.key}")
        print(f"secret={value}")
    return 0


def _cmd_config(args: argparse.Namespace) -> int:
    topics: list[tuple[str, str]] = []
    if args.edit == "add-publisher":
        found = _publisher_topics(args.topic, args.match)
        if found is None:
            return 2
        topics = found
    edits: dict[str, Callable[[dict[str, Any]], configedit.Edited]] = {
        "add-publisher": lambda c: configedit.add_publisher(c, args.key, topics, args.rate),
        "remove-publisher": lambda c: configedit.remove_publisher(c, args.key),
        "rotate-publisher": lambda c: configedit.rotate_publisher(c, args.key),
        "grant": lambda c: configedit.grant(c, args.role, args.pattern, args.match, args.allow),
        "revoke": lambda c: configedit.revoke(c, args.role, args.pattern, args.match, args.allow),
        "set-history": lambda c: configedit.set_history_policy(
            c, args.pattern, args.match, args.max_events, args.max_age
        ),
        "remove-history": lambda c: configedit.remove_history_policy(c, args.pattern, args.match),
    }
    directory = args.config.resolve().parent
    # read, edit, write: one edit at a time (a missing directory: _apply reports the unreadable config)
    with atomicfile.edit_lock(directory) if directory.is_dir() else contextlib.nullcontext():
        return _apply(args, edits[args.edit])


def _cmd_reload(args: argparse.Namespace) -> int:
    if args.signal:
        cbdir: Path = (args.cbdir or args.config.parent / common.RUN_DIRNAME).absolute()
        pid = common.running_node(cbdir)
        if pid is None:
            return _fail(f"no node is running from {cbdir}")
        os.kill(pid, signal.SIGHUP)
        print(f"sent SIGHUP to the node (PID {pid}); its log reports the outcome")
        return 0
    try:
        target = common.join_target(args, anonymous=False)
    except BrokerError as exc:
        return _fail(str(exc))
    from broker.cli import wamp as wampclient

    try:
        status, report = wampclient.run(lambda: wampclient.call(target, RELOAD_PROCEDURE), args.interrupted)
    except WampError as exc:
        if exc.uri == ConfigError.wamp_uri:
            return _fail(f"reload refused, the node keeps its config: {exc.message}")
        return _fail(f"reload failed: {exc}")
    except BrokerError as exc:
        return _fail(str(exc))
    if status != 0 or not isinstance(report, dict):
        return status or 1
    for path in report.get("changed", []):
        print(f"changed: {path}")
    for path in report.get("restart_needed", []):
        print(f"restart needed: {path}")
    if not report.get("changed") and not report.get("restart_needed"):
        print("no changes")
    return 0


def add_commands(command: CommandAdder, client: CommandAdder) -> None:
    """Add ``broker config`` (via ``command``) and ``broker reload`` (via ``client``) to the parser."""
    config = command("config", _cmd_config, "edit the node config: publisher keys, grants, history")
    edits = config.add_subparsers(dest="edit", required=True, metavar="EDIT")

    def edit(name: str, summary: str) -> Any:
        sub = edits.add_parser(name, help=summary, description=summary)
        # also accepted after the edit's name; the parent's value otherwise
        sub.add_argument("--config", type=Path, default=argparse.SUPPRESS, help="node config")
        return sub

    def pattern(sub: Any, default_match: str) -> None:
        sub.add_argument("pattern", metavar="PATTERN")
        sub.add_argument(
            "--match", choices=MATCH_POLICIES, default=default_match, help="(default: %(default)s)"
        )

    add = edit("add-publisher", "add a publisher key for POST /api/publish, with a new secret")
    add.add_argument("key", metavar="KEY")
    add.add_argument(
        "--topic",
        action="append",
        required=True,
        metavar="PATTERN",
        help="where the key may publish, e.g. --topic orders. --match prefix (repeatable)",
    )
    add.add_argument("--match", choices=MATCH_POLICIES, help="how every --topic matches (default: exact)")
    add.add_argument("--rate", type=_rate, metavar="PER_SECOND[:BURST]", help="rate limit")
    edit("remove-publisher", "remove a publisher key").add_argument("key", metavar="KEY")
    edit("rotate-publisher", "give a publisher key a new secret").add_argument("key", metavar="KEY")
    for name, summary, required in (
        ("grant", "allow ROLE actions on a topic pattern", True),
        ("revoke", "take actions on exactly this pattern away from ROLE (all without --allow)", False),
    ):
        sub = edit(name, summary)
        sub.add_argument("role", metavar="ROLE")
        pattern(sub, "exact")
        sub.add_argument(
            "--allow",
            type=_actions,
            required=required,
            metavar="ACTION[,ACTION]",
            help=f"comma-separated: {', '.join(ACTIONS)}",
        )
    history = edit("set-history", "set how much history topics matching PATTERN keep")
    pattern(history, "prefix")
    history.add_argument("--max-events", type=int, default=1000, help="(default: %(default)s)")
    history.add_argument("--max-age", type=int, default=3600, help="seconds (default: %(default)s)")
    pattern(edit("remove-history", "remove the history policy on PATTERN"), "prefix")

    reload = client("reload", _cmd_reload, "apply the edited config to the running node, live")
    reload.set_defaults(authid="operator")
    reload.add_argument(
        "--signal", action="store_true", help="send the node SIGHUP instead (the outcome goes to its log)"
    )
    reload.add_argument(
        "--cbdir", type=Path, help="the node directory, for --signal (default: run/ next to the config)"
    )
