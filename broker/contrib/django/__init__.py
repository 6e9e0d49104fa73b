"""Publish to Broker from Django, after the database commits.

Why: Django code changes data inside transactions, and subscribers must only
hear about changes that were committed. This package wraps the stdlib
publisher SDK (:mod:`broker.client`) with Django's settings, transactions and
model signals; it imports no crossbar, Twisted or Autobahn, and needs no entry
in ``INSTALLED_APPS``.

Settings: ``BROKER_URL`` (the node's base URL, ``http://127.0.0.1:8080``),
``BROKER_KEY_ID``, ``BROKER_SECRET`` and optionally ``BROKER_TIMEOUT`` (seconds).

::

    from broker.contrib.django import publish, publish_model_changes

    publish("public.stock", {"item": "tea", "left": 3})   # sent when the transaction commits
    publish_model_changes(Order, topic="public.orders.{pk}")  # in AppConfig.ready()
"""

from __future__ import annotations

from broker.contrib.django.publishing import get_publisher, publish, publish_now, reset_publisher
from broker.contrib.django.signals import publish_model_changes

__all__ = ["get_publisher", "publish", "publish_model_changes", "publish_now", "reset_publisher"]
