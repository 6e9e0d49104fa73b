"""Integrations of Broker's publisher SDK with web frameworks.

Why a separate package: each integration imports its framework, which the
base install (the stdlib-only SDK in :mod:`broker.client`) must not need.
Import ``broker.contrib.<framework>`` only where that framework is installed.
"""
