"""Broker's rules, pure: URIs, grants, tokens, signing, replay, idempotency, limits, protocol tables.

Nothing here imports Twisted, Autobahn or crossbar, opens a file or a socket,
or reads the clock except through an injected function: each module is a set
of decisions the router adapters (:mod:`broker.router`) and the command line
call, and each is tested without a reactor (``tests/test_layers.py`` checks
the imports).
"""
