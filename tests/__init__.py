"""Broker's test suite, and the harness other code imports from it.

Why a package: :mod:`tests.node` (a real node on ephemeral ports) and
:mod:`tests.rawwamp` (a raw WAMP client) are shared with the benchmarks
(``python -m bench.run`` from the repository root imports them as ``tests.*``)
and with the fault suite (``python -m tests.faults.run``), and a node started
by a test loads ``tests.slowresource`` by that name: a regular package is found
from the root with nothing added to ``sys.path``.
"""
