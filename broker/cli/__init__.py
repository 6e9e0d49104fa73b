"""The ``broker`` command line, one module per command group (entry point :func:`broker.cli.main.main`).

``main`` builds the parser; ``common`` holds what the groups share; ``run``,
``events`` (publish, tail), ``token``, ``check`` and ``config`` (config edits,
reload) are the groups; ``wamp`` is the one-shot Twisted WAMP client the
client commands use. No group imports another group's module except
``check`` (``run`` and ``config`` validate as ``broker check`` does).
"""
