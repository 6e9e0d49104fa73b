"""The ``broker`` command: run the node, publish, tail a topic, mint a token, check the config.

Why one command: ``make run`` in one shell and ``broker publish`` in another
must agree on the config, the secrets and the URL with no setup, and CI must
validate the config without starting a node. ``broker run`` becomes the
``crossbar`` controller process (``exec``), so signals, logs and worker
shutdown are crossbar's own. Importing this module stays cheap: Twisted and
Autobahn load only inside the client commands (:mod:`broker.wampclient`).
"""

from __future__ import annotations

import argparse
import hmac
import json
import os
import re
import socket
import sys
from collections.abc import Callable, Coroutine, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from broker import __version__, configcheck, configcmd, configfile, devsecrets, nodeconfig, versions
from broker.configcheck import report
from broker.configcheck.crossbar import crossbar_check
from broker.errors import BrokerError, ConfigError, InvalidUri, WampError
from broker.history import POSITION_KEY
from broker.reload import ENV_CONFIG, ENV_FILE_SECRETS, SNAPSHOT_FILENAME
from broker.settings import TokenSettings, find_component, parse_settings, without_runtime
from broker.uris import MATCH_POLICIES, check_uri

if TYPE_CHECKING:
    from broker.wampclient import Target

DEFAULT_CONFIG: Final = Path(".crossbar/config.json")
#: Where clients connect when neither ``--url``, ``BROKER_WS_URL`` nor a config says.
DEFAULT_URL: Final = "ws://127.0.0.1:8080/ws"
#: ``broker run``'s node directory, relative to the config's directory.
RUN_DIRNAME: Final = "run"
LOG_LEVELS: Final = ("none", "error", "warn", "info", "debug", "trace")
#: Exit status of a command stopped by Ctrl-C or SIGTERM (``tail`` exits 0).
INTERRUPTED: Final = 130


def _fail(message: str, status: int = 1) -> int:
    print(f"broker: {message}", file=sys.stderr)
    return status


def _port(text: str) -> int:
    """An argparse type: a TCP port number."""
    try:
        port = int(text)
    except ValueError:
        port = 0
    if not 0 < port < 65536:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}")
    return port


def _position(text: str) -> tuple[str, int]:
    """An argparse type: ``EPOCH:CURSOR``, as printed in an event's position."""
    epoch, _, cursor = text.rpartition(":")
    if not epoch or not cursor.isdigit():
        raise argparse.ArgumentTypeError(f"not a position EPOCH:CURSOR: {text!r}")
    return epoch, int(cursor)


def _positive(text: str) -> int:
    """An argparse type: a positive count."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"not a positive number: {text!r}")
    return value


def _crossbar() -> Path:
    """The ``crossbar`` executable installed next to this Python."""
    path = Path(sys.executable).with_name("crossbar")
    if not path.exists():
        raise BrokerError(f"{path} not found: install the node with pip install 'broker[node]'")
    return path


def _broker_component(config: Mapping[str, Any], env: Mapping[str, str] | None = None) -> Mapping[str, Any]:
    """Broker's router component in ``config``, once its settings are known valid.

    ``env`` resolves the settings' ``${VAR}`` secrets; by default every
    referenced variable counts as set, because :func:`_unset_variables` reports
    the missing ones for the whole config, each once.
    """
    path, component = find_component(config)
    if env is None:
        env = {var: "set" for _, var in nodeconfig.env_references(config)}
    extra = without_runtime(component.get("extra") or {})
    parse_settings(extra, f"{path}.extra", env=env)
    return component


def _unset_variables(config: Mapping[str, Any], defined: Callable[[str], bool]) -> list[ConfigError]:
    """An error for each ``${VAR}`` in ``config`` that ``defined`` says has no value."""
    return [
        ConfigError(path, f"environment variable {var} is not set")
        for path, var in nodeconfig.env_references(config)
        if not defined(var)
    ]


def _secret_name(authid: str) -> str:
    """The variable holding ``authid``'s WAMP-CRA secret (``BROKER_BACKEND_SECRET``)."""
    return f"BROKER_{re.sub(r'[^A-Z0-9]', '_', authid.upper())}_SECRET"


# -- broker run ---------------------------------------------------------------


def _running_node(cbdir: Path) -> int | None:
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


def _export_secrets(config: Mapping[str, Any], config_dir: Path) -> None:
    """Set each ``${VAR}`` the environment lacks from the dev secrets (made if need be)."""
    missing = {var for _, var in nodeconfig.env_references(config) if var not in os.environ}
    from_file: set[str] = set()
    if missing:
        dev = devsecrets.load_or_create(devsecrets.path_for(config_dir))
        from_file = {var for var in missing if var in dev}
        os.environ.update({var: dev[var] for var in from_file})
    # a live reload re-reads these from the file (a rotated secret), never the operator's own
    os.environ[ENV_FILE_SECRETS] = ",".join(sorted(from_file))
    references = nodeconfig.env_references(config)
    errors = devsecrets.empty_errors(references, from_file, devsecrets.path_for(config_dir))
    errors += _unset_variables(config, os.environ.__contains__)
    if errors:
        raise errors[0]


def _check_listen(config: Mapping[str, Any]) -> str | None:
    """Why the node could not listen on its web transport's port, or None if it can.

    Binds and closes the address as Twisted will (``SO_REUSEADDR``), so a port
    in use is one clear line before crossbar starts, not its tracebacks after a
    worker has started. The message keeps the OS's words ("Address already in
    use"), and names the way out.
    """
    _, transport = nodeconfig.web_transport(config)
    endpoint = transport.get("endpoint") or {}
    port = endpoint.get("port")
    interface = endpoint.get("interface", "")
    if isinstance(port, bool) or not isinstance(port, int) or not isinstance(interface, str):
        return None  # the config check reports it
    try:
        found = socket.getaddrinfo(interface or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family = found[0][0]
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((interface, port))
    except OSError as exc:
        return nodeconfig.listen_problem(interface, port, exc)
    return None


def _cmd_run(args: argparse.Namespace) -> int:
    config_path: Path = args.config.absolute()
    config_dir = config_path.parent
    cbdir: Path = (args.cbdir or config_dir / RUN_DIRNAME).absolute()
    try:
        config = nodeconfig.load(config_path)
        _broker_component(config)
        _export_secrets(config, config_dir)
        component = _broker_component(config, os.environ)
        rendered = nodeconfig.render(config, config_dir, port=args.port, host=args.host)
        urls = f"{nodeconfig.http_url(rendered)}  {nodeconfig.websocket_url(rendered)}"
    except ConfigError as exc:
        return _fail(f"config error: {exc}")
    try:
        _crossbar()  # the node extra is installed
    except BrokerError as exc:
        return _fail(str(exc))
    problem = versions.check_installed()  # ... and is the one the patches were written for
    if problem is not None:
        return _fail(problem)
    if (cbdir / nodeconfig.CONFIG_FILENAME).resolve() == config_path.resolve():
        return _fail(f"--cbdir {cbdir}: the rendered config would replace {config_path}")
    pid = _running_node(cbdir)
    if pid is not None:
        return _fail(f"a node is already running from {cbdir} (PID {pid})")
    problem = _check_listen(rendered)
    if problem is not None:
        return _fail(problem)
    nodeconfig.write(cbdir, rendered)
    # what a live reload compares the edited file with (broker.router.reloader)
    snapshot = configfile.format_config(nodeconfig.render(config, config_dir))
    configfile.write(cbdir / SNAPSHOT_FILENAME, snapshot)
    print(f"Broker node starting: {urls} (realm {component.get('realm')})", flush=True)
    sys.stderr.flush()
    os.environ[ENV_CONFIG] = str(config_path)  # what a live reload re-reads
    # crossbar's controller, run by a launcher that forwards SIGHUP to the router worker
    argv = [sys.executable, "-m", "broker.router.launcher", "start", "--cbdir", str(cbdir)]
    argv += ["--loglevel", args.loglevel]
    os.execv(sys.executable, argv)  # noqa: S606 - becoming the controller is the point


# -- broker publish / tail ------------------------------------------------------


def _client_url(args: argparse.Namespace) -> str:
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
        port_number = _port(port) if port else None
    except argparse.ArgumentTypeError as exc:
        raise BrokerError(f"BROKER_PORT: {exc}") from None
    config = nodeconfig.render(
        nodeconfig.load(config_path),
        config_path.parent,
        port=port_number,
        host=os.environ.get("BROKER_HOST") or None,
    )
    return nodeconfig.websocket_url(config)


def _target(args: argparse.Namespace, anonymous: bool) -> Target:
    """Where and as whom a client command joins."""
    url = _client_url(args)
    secret: devsecrets.Secret | None = None
    if not anonymous:
        name = _secret_name(args.authid)
        secret = devsecrets.lookup(name, args.config.parent)
        if secret is None:
            raise BrokerError(
                f"no secret for {args.authid!r}: set {name}, or start the node once "
                f"with 'broker run' to create {devsecrets.path_for(args.config.parent)}"
            )
    from broker.wampclient import Target

    return Target(
        url,
        args.realm,
        authid=None if anonymous else args.authid,
        secret=None if secret is None else secret.value,
        secret_source=None if secret is None else secret.source,
    )


#: A client command: ``(broker.wampclient, target) -> coroutine``.
ClientCommand = Callable[[Any, "Target"], Coroutine[Any, Any, Any]]


def _client(
    args: argparse.Namespace, verb: str, match: str, anonymous: bool, command: ClientCommand
) -> tuple[int, Any]:
    """Check the topic, join and run ``command``: ``(status, result)``; errors are printed."""
    try:
        check_uri(args.topic, match, what="topic" if match == "exact" else "pattern")
        target = _target(args, anonymous)
    except InvalidUri as exc:
        return _fail(f"{verb} failed: {exc.wamp_uri}: {exc}"), None
    except ConfigError as exc:
        return _fail(f"config error: {exc}"), None
    except BrokerError as exc:
        return _fail(str(exc)), None
    from broker import wampclient

    try:
        return wampclient.run(lambda: command(wampclient, target), args.interrupted)
    except WampError as exc:
        return _fail(f"{verb} failed: {exc}"), None
    except BrokerError as exc:
        return _fail(str(exc)), None


def _cmd_publish(args: argparse.Namespace) -> int:
    try:
        payload = json.loads(args.json)
    except json.JSONDecodeError as exc:
        return _fail(f"invalid JSON payload: {exc}", status=2)
    status, published = _client(
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


def _cmd_tail(args: argparse.Namespace) -> int:
    def subscribed() -> None:
        print(f"broker: subscribed to {args.topic} ({args.match})", file=sys.stderr, flush=True)

    try:
        status, _ = _client(
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


# -- broker token ---------------------------------------------------------------

#: The variable holding the HS256 secret ``broker token`` signs with.
TOKEN_SECRET: Final = "BROKER_TOKEN_SECRET"  # noqa: S105 - a variable name


def _grant_pattern(text: str) -> dict[str, str]:
    """An argparse type: ``PATTERN[:MATCH]`` (``user.42.:prefix``); exact without a suffix.

    A suffix after the last ``:`` must be a match policy, so a typo
    (``:regex``, ``:prefx``) is refused rather than minted as part of an exact
    URI; a topic with a ``:`` of its own is written with its match
    (``a:b:exact``).
    """
    uri, sep, match = text.rpartition(":")
    if not sep:
        uri, match = text, "exact"
    elif match not in MATCH_POLICIES:
        raise argparse.ArgumentTypeError(
            f"unknown match {match!r} in {text!r}: write PATTERN[:MATCH] with MATCH one of "
            f"{', '.join(MATCH_POLICIES)} (an exact topic with a ':' of its own is written TOPIC:exact)"
        )
    try:
        check_uri(uri, match, what="pattern")
    except InvalidUri as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return {"uri": uri, "match": match}


def _node_tokens(config_path: Path) -> TokenSettings | None:
    """How the node at ``config_path`` verifies tokens (``extra.tokens``); None if it takes none.

    Its ``${VAR}`` secrets resolve as ``broker run`` resolves them: the
    environment, else the dev secrets file; others count as set.
    """
    config = nodeconfig.load(config_path)
    path, component = find_component(config)
    env = {var: "set" for _, var in nodeconfig.env_references(config)}
    env.update(devsecrets.load(devsecrets.path_for(config_path.parent)))
    env.update(os.environ)
    extra = without_runtime(component.get("extra") or {})
    return parse_settings(extra, f"{path}.extra", env=env).tokens


def _token_problem(args: argparse.Namespace, secret: str, tokens: TokenSettings | None) -> str | None:
    """Why the node would refuse the token ``args`` asks for, signed with ``secret``; or None."""
    where = f"the node ({args.config})"
    if tokens is None:
        return f"{where} accepts no tokens: its Broker component has no extra.tokens"
    if not any(key.alg == "HS256" and hmac.compare_digest(key.key, secret) for key in tokens.keys):
        return (
            f"{where} would refuse its signature: {TOKEN_SECRET} is none of the HS256 keys "
            "in extra.tokens.keys"
        )
    if args.ttl > tokens.max_ttl:
        return (
            f"--ttl {args.ttl} exceeds the tokens.max_ttl of {where}, {tokens.max_ttl} s: "
            "the node would refuse it (and a browser would reconnect with it forever)"
        )
    if args.audience is not None and args.audience != tokens.audience:
        return f"--audience {args.audience!r} is not the tokens.audience of {where}, {tokens.audience!r}"
    return None


def _cmd_token(args: argparse.Namespace) -> int:
    """Print a user token signed with the node's HS256 secret (for development and scripts).

    With the node's config at hand (``--config``), the token is checked
    against it first — key, ``max_ttl``, audience — so it is never one the
    node would refuse. A token without ``--subscribe`` is minted with a
    warning: it may subscribe only to what the config grants role ``user``.
    """
    from broker.tokens import DEFAULT_AUDIENCE, mint

    secret = devsecrets.secret(TOKEN_SECRET, args.config.parent)
    if not secret:
        return _fail(
            f"no token secret: set {TOKEN_SECRET}, or start the node once "
            f"with 'broker run' to create {devsecrets.path_for(args.config.parent)}"
        )
    audience = args.audience
    if args.config.exists():
        try:
            tokens = _node_tokens(args.config)
        except ConfigError as exc:
            return _fail(f"config error: {exc}")
        problem = _token_problem(args, secret, tokens)
        if problem is not None:
            return _fail(f"token not minted: {problem}")
        audience = audience or (tokens.audience if tokens else None)
    if not args.subscribe:
        print(
            "broker: warning: this token grants no subscription (add --subscribe PATTERN[:MATCH]): "
            "it may subscribe only to what the node grants role 'user'",
            file=sys.stderr,
        )
    try:
        token = mint(
            secret, args.sub, args.subscribe or [], ttl=args.ttl, audience=audience or DEFAULT_AUDIENCE
        )
    except (BrokerError, ValueError) as exc:
        return _fail(f"token not minted: {exc}")
    print(token)
    return 0


# -- broker check ---------------------------------------------------------------


def _check(config_path: Path) -> configcheck.Result:
    """Broker's checks of the config at ``config_path``, then, if they pass, ``crossbar check``.

    A ``${VAR}`` counts as set when the environment has it, or when the dev
    secrets file ``broker run`` reads or creates next to the config will.
    """
    try:
        dev = devsecrets.provides(devsecrets.path_for(config_path.parent))
    except ConfigError as exc:
        return configcheck.Result([exc])
    result = configcheck.check_file(config_path, lambda var: var in os.environ or var in dev)
    if result.errors or result.config is None:
        return result
    try:
        crossbar_error = crossbar_check(_crossbar(), result.config, config_path.parent)
    except BrokerError as exc:
        crossbar_error = ConfigError("$", f"crossbar check: {exc}")
    if crossbar_error is not None:
        result.errors.append(crossbar_error)
    return result


def check_config(config_path: Path) -> list[ConfigError]:
    """Everything wrong with the node config at ``config_path`` (empty when it is fine).

    See :mod:`broker.configcheck`: unknown keys, references, Broker's
    settings, unset secrets and the hardened defaults; then ``crossbar check``.
    """
    return _check(config_path).errors


def _cmd_check(args: argparse.Namespace) -> int:
    config_path: Path = args.config
    if not config_path.is_file():
        return _fail(f"--config {config_path}: no such file", status=2)
    result = _check(config_path)
    findings = result.findings()
    if args.json:
        print(json.dumps({"ok": not result.errors, "errors": report.as_json(findings)}, indent=2))
    else:
        for line in report.text(findings, str(config_path)):
            print(line, file=sys.stderr)
        if not result.errors:
            print(f"ok: {config_path}")
    return 1 if result.errors else 0


# -- the parser -------------------------------------------------------------------


#: ``broker --help``'s examples: the README's first steps, runnable as they stand.
EXAMPLES: Final = """\
examples:
  broker run                                          start the node on 127.0.0.1:8080
  broker run --port 8081                              ... on another port (or BROKER_PORT=8081)
  broker tail 'public.' --match prefix                print every event under public. as JSON lines
  broker tail 'orders..created' --match wildcard      WAMP wildcards are empty components
  broker tail public.demo --from 6f1c0e2ab4d39e87:42  first what was missed after a printed position
  broker publish public.demo '{"n": 1}'               prints {"topic": ..., "id": ..., "position": ...}
  broker token 42 --subscribe user.42.:prefix --ttl 3600
  broker config grant anonymous news. --match prefix --allow subscribe && broker reload
  broker check                                        validate .crossbar/config.json

'broker COMMAND --help' describes each command.
"""


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

    run = command("run", _cmd_run, "start the node in the foreground")
    run.add_argument(
        "--port",
        type=_port,
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

    publish = client("publish", _cmd_publish, "publish one event and wait for the router's ack")
    publish.add_argument("topic", metavar="TOPIC")
    publish.add_argument("json", metavar="JSON", help="the event's payload (its only argument)")

    tail = client("tail", _cmd_tail, "print each event on a topic as a JSON line")
    tail.set_defaults(interrupted=0)
    tail.add_argument("topic", metavar="TOPIC_OR_PATTERN")
    tail.add_argument("--match", choices=MATCH_POLICIES, default="exact", help="(default: %(default)s)")
    tail.add_argument("--anonymous", action="store_true", help="join anonymously instead")
    tail.add_argument("--count", type=_positive, help="exit after this many events")
    tail.add_argument(
        "--from",
        dest="resume_from",
        type=_position,
        metavar="EPOCH:CURSOR",
        help="first print what was published after this position (from a previous line's position)",
    )

    token = command("token", _cmd_token, "print a signed user token (HS256, $BROKER_TOKEN_SECRET)")
    token.add_argument("sub", metavar="SUB", help="the user id the token names")
    token.add_argument(
        "--subscribe",
        action="append",
        type=_grant_pattern,
        metavar="PATTERN[:MATCH]",
        help="a topic pattern the user may subscribe to, MATCH one of exact (the default), prefix, "
        "wildcard: e.g. user.42.:prefix (repeatable)",
    )
    token.add_argument("--ttl", type=_positive, default=300, help="seconds (default: %(default)s)")
    token.add_argument(
        "--audience", help="the 'aud' claim (default: the node's tokens.audience, else broker)"
    )

    configcmd.add_commands(command, client)  # broker config ..., broker reload

    check = command("check", _cmd_check, "validate the node config without starting it")
    check.add_argument("--json", action="store_true", help="report as JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``broker`` command line; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        status: int = args.func(args)
    except KeyboardInterrupt:  # before the reactor took over SIGINT
        interrupted: int = args.interrupted
        return interrupted
    return status
