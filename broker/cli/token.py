"""``broker token``: a user token signed with the node's HS256 secret, checked against the node first."""

from __future__ import annotations

import argparse
import hmac
import os
import sys
from pathlib import Path
from typing import Final

from broker.cli.common import fail
from broker.config import devsecrets, nodeconfig
from broker.config.settings import TokenSettings, component_settings
from broker.core.uris import MATCH_POLICIES, check_uri
from broker.errors import BrokerError, ConfigError, InvalidUri

#: The variable holding the HS256 secret ``broker token`` signs with.
TOKEN_SECRET: Final = "BROKER_TOKEN_SECRET"  # noqa: S105 - a variable name


def parse_grant(text: str) -> dict[str, str]:
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
    env = nodeconfig.assume_set(config)
    env.update(devsecrets.load(devsecrets.path_for(config_path.parent)))
    env.update(os.environ)
    return component_settings(config, env)[1].tokens


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


def cmd_token(args: argparse.Namespace) -> int:
    """Print a user token signed with the node's HS256 secret (for development and scripts).

    With the node's config at hand (``--config``), the token is checked
    against it first — key, ``max_ttl``, audience — so it is never one the
    node would refuse. A token without ``--subscribe`` is minted with a
    warning: it may subscribe only to what the config grants role ``user``.
    """
    from broker.core.tokens import DEFAULT_AUDIENCE, mint

    secret = devsecrets.secret(TOKEN_SECRET, args.config.parent)
    if not secret:
        return fail(
            f"no token secret: set {TOKEN_SECRET}, or start the node once "
            f"with 'broker run' to create {devsecrets.path_for(args.config.parent)}"
        )
    audience = args.audience
    if args.config.exists():
        try:
            tokens = _node_tokens(args.config)
        except ConfigError as exc:
            return fail(f"config error: {exc}")
        problem = _token_problem(args, secret, tokens)
        if problem is not None:
            return fail(f"token not minted: {problem}")
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
        return fail(f"token not minted: {exc}")
    print(token)
    return 0
