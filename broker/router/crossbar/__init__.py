"""Every reach into crossbar's, autobahn's, Twisted's and txaio's internals, behind one guarded door.

Why: Broker corrects measured crossbar 26.10 behaviours by replacing or
wrapping methods of their classes and modules (``tests/test_crossbar_door.py``
proves no module outside this package does). A patch written against one
release can silently do nothing, or break delivery, on another, so
:func:`install` first compares the installed versions with the pins
(:mod:`.versions`) and refuses to start on any other, in one line naming the
package and both versions; then it applies every patch, once, in the order
of :func:`install_order`. Broker's router component calls it, and nothing else here
(``broker/router/component.py``); the launcher calls :mod:`.controller`.

The patches, each module's docstring saying what crossbar does, what Broker
does instead and which upstream function it replaces (the numbers are the
items tests and docs refer to):

1, 2, 4. :mod:`.protocol` — invalid URIs, protocol violations, deep nesting.
3. :mod:`.hello` — a deadline for HELLO.
5, 7. :mod:`.longpoll` — long-poll sessions open, are checked, have a bounded queue;
   :mod:`.longpoll_origins` — their CORS and origin check.
6. :mod:`.backpressure` — a subscriber that stops reading is let go.
8. :mod:`.longpoll_limits` — long-poll bodies bounded by the message limit.
9. :mod:`.longpoll_open` — a malformed ``POST /lp/open`` is a JSON 400.
10. :mod:`.cors` — static files answer CORS for allowed origins only.
11. :mod:`.reserved` — REGISTER in reserved namespaces refused first.
12. :mod:`.body_limit` — request bodies refused as they arrive.
13, 14. :mod:`.connections` — WebSocket frame floods, slowloris, the connection cap.
15. :mod:`.listen` — a port taken late is one line (and :mod:`.controller`).
16. :mod:`.longpoll_sticky` — long-poll transport ids name their node (a proxy routes on
    them); an unknown transport is a JSON 404.
17. :mod:`.frames` — an EVENT serialized and framed once per serializer, written as it
    is to every WebSocket that provably sends the same bytes (``fast_path``); a lean
    ``Router.send``.
18. :mod:`.forms` — the publish API's and long-poll's POST bodies are not parsed as forms
    (their requests only: the rest of the site keeps Twisted's form parsing).
19. :mod:`.peers` — an HTTP connection's addresses asked of its transport once, not per request.
20. :mod:`.dates` — the ``Date`` of web answers formatted once per second.

Besides: :mod:`.logstyle` (plain, lazy log arguments), :mod:`.counting`
(refusals crossbar makes on its own, delivery tracking), :mod:`.reload`
(what a live reload reaches), :mod:`.readiness` (which web paths are
attached), :mod:`.publish` (every PUBLISH through Broker's position hook,
authorized once; the hook itself, :mod:`broker.router.positions`, is routed
by the component once its history engine is open, on join: until then
crossbar handles PUBLISH as it always did), :mod:`.subscribers` (which client
sessions hold a subscription, read-only: :mod:`broker.router.gaps`),
:mod:`.fastpublish` (an authorized PUBLISH dispatched without crossbar's
Deferreds, ``extra.fast_path``), :mod:`.unmask` (small client frames unmasked
without autobahn's cffi masker), :mod:`.sendnow` (an HTTP answer or a Redis command
sent in the call that writes it, on Twisted's plain TCP connections only).

This module imports its patches only inside :func:`install_order`: ``broker run``
reads :mod:`.versions` in a process that never loads crossbar's router.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from broker.errors import UnpinnedVersion
from broker.router.crossbar import versions
from broker.router.crossbar.context import Clock, Door

if TYPE_CHECKING:
    from broker.router.state import NodeState

#: One patch: its name and what applies it, given the :class:`~.context.Door`.
Installer = tuple[str, Callable[[Door], None]]

#: The names of the patches :func:`install` applied, in order (empty until it has).
_applied: list[str] = []


def install_order() -> tuple[Installer, ...]:
    """Every patch, in the order :func:`install` applies them.

    The order matters where two patches wrap the same function (the later one
    runs first): the long-poll origin check wraps ``/open``'s body check, so a
    foreign origin gets 403 before anything else; the long-poll service's
    ``create`` is wrapped by the limits, then the origins, then the reload
    hook. The publish reach-in is a step; the position hook it routes to is
    set by the component on join, when the history engine is open.
    """
    from crossbar.router.longpoll import WampLongPollResource

    from broker.router.crossbar import (
        backpressure,
        body_limit,
        connections,
        cors,
        counting,
        dates,
        forms,
        frames,
        hello,
        limits,
        listen,
        logstyle,
        longpoll,
        longpoll_limits,
        longpoll_open,
        longpoll_origins,
        longpoll_sticky,
        peers,
        protocol,
        publish,
        readiness,
        reload,
        reserved,
        unmask,
    )
    from broker.router.metrics import configure as configure_metrics
    from broker.router.publish_api import PublishResource

    def metering(door: Door) -> None:
        configure_metrics(door.max_namespaces)
        counting.install(door.state)

    return (
        ("logstyle", lambda door: logstyle.install()),
        ("limits", lambda door: limits.set_initial(door.hello_timeout, door.max_buffer_bytes)),
        ("protocol", protocol.install),
        ("hello", hello.install),
        ("frames", frames.install),
        ("backpressure", backpressure.install),
        ("longpoll", longpoll.install),
        ("longpoll_cors", longpoll_origins.install_defaults),
        ("longpoll_limits", lambda door: longpoll_limits.install(door.state)),
        ("longpoll_sticky", lambda door: longpoll_sticky.install(door.state)),
        ("longpoll_open", lambda door: longpoll_open.install()),
        ("cors", lambda door: cors.install()),
        ("longpoll_origins", longpoll_origins.install),
        ("reserved", lambda door: reserved.install(door.state)),
        ("connections", lambda door: connections.install(door.state, door.reactor)),
        ("listen", lambda door: listen.install()),
        ("counting", metering),
        ("publish", lambda door: publish.install()),
        ("unmask", lambda door: unmask.install()),
        (
            "body_limit",
            lambda door: body_limit.install(door.state),
        ),  # before transports: Twisted's HTTP channel
        ("forms", lambda door: forms.install((PublishResource, WampLongPollResource))),
        ("peers", lambda door: peers.install()),
        ("dates", lambda door: dates.install()),
        ("reload", lambda door: reload.install()),  # before transports: it records their factories
        ("readiness", lambda door: readiness.install()),  # /health waits for the paths attached after it
    )


def install(
    state: NodeState,
    hello_timeout: float,
    max_buffer_bytes: int,
    max_namespaces: int,
    reactor: Clock | None = None,
    fast_path: bool = True,
) -> None:
    """Check the installed versions, then apply every patch once (idempotent).

    Raises :class:`~broker.errors.UnpinnedVersion` (one line, naming the package
    and both versions) on versions other than the pinned ones; nothing is
    patched then.
    """
    if _applied:
        return
    problem = versions.check_installed()
    if problem is not None:
        raise UnpinnedVersion(problem)
    if reactor is None:
        from twisted.internet import reactor as global_reactor

        reactor = cast(Clock, global_reactor)
    door = Door(state, reactor, hello_timeout, max_buffer_bytes, max_namespaces, fast_path)
    for name, installer in install_order():
        installer(door)
        _applied.append(name)


def configure(hello_timeout: float, max_buffer_bytes: int, fast_path: bool = True) -> None:
    """A live reload's new HELLO deadline and slow-subscriber limit (:mod:`.limits`), and
    ``fast_path`` (:mod:`.frames`)."""
    from broker.router.crossbar import limits

    limits.configure(hello_timeout, max_buffer_bytes)
    if _applied:  # frames imports crossbar's router: only where the patches are installed
        from broker.router.crossbar import frames

        frames.configure(fast_path)
