"""Broker: a publish/subscribe message broker for web applications.

The base package is import-safe without crossbar or Twisted; everything that
runs inside the crossbar router worker lives in :mod:`broker.router`.
"""

__version__ = "0.1.0"
