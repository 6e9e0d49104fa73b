"""``broker run``: validate the config, export the dev secrets, render the node directory, become crossbar.

``broker run`` becomes the ``crossbar`` controller process (``exec``), so signals, logs and worker
shutdown are crossbar's own.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from broker.cli.check import broker_component, crossbar_executable
from broker.cli.common import RUN_DIRNAME, fail, running_node
from broker.config import clusterenv, configfile, devsecrets, nodeconfig
from broker.config.check.settings import secret_errors
from broker.config.reload import ENV_CONFIG, ENV_FILE_SECRETS, SNAPSHOT_FILENAME
from broker.core.nodeid import ENV_NODE_ID, check_node_id
from broker.errors import BrokerError, ConfigError
from broker.router.crossbar import versions


def export_secrets(config: Mapping[str, Any], config_dir: Path) -> None:
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
    errors += secret_errors(config, os.environ.__contains__)
    if errors:
        raise errors[0]


def check_listen(config: Mapping[str, Any]) -> str | None:
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


def cmd_run(args: argparse.Namespace) -> int:
    config_path: Path = args.config.absolute()
    config_dir = config_path.parent
    cbdir: Path = (args.cbdir or config_dir / RUN_DIRNAME).absolute()
    try:
        if os.environ.get(ENV_NODE_ID):  # else the router worker draws one
            check_node_id(os.environ[ENV_NODE_ID])
        redis_url = clusterenv.redis_url(os.environ)  # a cluster node (else None: a single node)
        config = nodeconfig.load(config_path)
        broker_component(config)
        export_secrets(config, config_dir)
        component = broker_component(nodeconfig.render(config, config_dir, redis_url=redis_url), os.environ)
        rendered = nodeconfig.render(config, config_dir, port=args.port, host=args.host, redis_url=redis_url)
        urls = f"{nodeconfig.http_url(rendered)}  {nodeconfig.websocket_url(rendered)}"
    except ConfigError as exc:
        return fail(f"config error: {exc}")
    try:
        crossbar_executable()  # the node extra is installed
    except BrokerError as exc:
        return fail(str(exc))
    problem = versions.check_installed()  # ... and is the one the patches were written for
    if problem is not None:
        return fail(problem)
    if (cbdir / nodeconfig.CONFIG_FILENAME).resolve() == config_path.resolve():
        return fail(f"--cbdir {cbdir}: the rendered config would replace {config_path}")
    pid = running_node(cbdir)
    if pid is not None:
        return fail(f"a node is already running from {cbdir} (PID {pid})")
    problem = check_listen(rendered)
    if problem is not None:
        return fail(problem)
    nodeconfig.write(cbdir, rendered)
    # what a live reload compares the edited file with (broker.router.reloader)
    snapshot = configfile.format_config(nodeconfig.render(config, config_dir, redis_url=redis_url))
    configfile.write(cbdir / SNAPSHOT_FILENAME, snapshot)
    cluster = f", history in Redis {clusterenv.shown(redis_url)}" if redis_url else ""
    print(f"Broker node starting: {urls} (realm {component.get('realm')}{cluster})", flush=True)
    sys.stderr.flush()
    os.environ[ENV_CONFIG] = str(config_path)  # what a live reload re-reads
    # crossbar's controller, run by a launcher that forwards SIGHUP to the router worker
    argv = [sys.executable, "-m", "broker.router.launcher", "start", "--cbdir", str(cbdir)]
    argv += ["--loglevel", args.loglevel]
    os.execv(sys.executable, argv)  # noqa: S606 - becoming the controller is the point
