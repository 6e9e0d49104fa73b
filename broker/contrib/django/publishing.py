"""Publish from Django: settings, one publisher per process, publishing on commit.

Why: a view that saves a row and announces "it changed" must not announce a
change that is then rolled back, and must not fail a request whose data is
already committed. :func:`publish` therefore checks what it can up front
(settings, topic, JSON), defers the HTTP publish with
``transaction.on_commit``, and logs, never raises, a failure after the commit.
:func:`publish_now` is the synchronous variant for code that wants the error.
The settings become one :class:`broker.client.Publisher` per process, built on
first use and rebuilt when a ``BROKER_*`` setting changes (``override_settings``).
"""

from __future__ import annotations

import json
import logging
import threading
from typing import TYPE_CHECKING, Any, Final

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.db import transaction

from broker.client import Publisher, PublishError
from broker.core.uris import check_uri

if TYPE_CHECKING:
    from broker.client import Published

#: Where failed publishes after a commit are reported.
logger: Final = logging.getLogger("broker")

#: The publisher's required arguments, by the setting that supplies each.
_ARGUMENTS: Final = {"url": "BROKER_URL", "key_id": "BROKER_KEY_ID", "secret": "BROKER_SECRET"}
#: The settings every publisher needs.
REQUIRED_SETTINGS: Final = tuple(_ARGUMENTS.values())
#: Every setting the publisher is built from; changing one rebuilds it.
SETTINGS: Final = (*REQUIRED_SETTINGS, "BROKER_TIMEOUT")

_lock = threading.Lock()
_publisher: Publisher | None = None


def _required(name: str) -> str:
    value = getattr(settings, name, None)
    if value is None or value == "":
        raise ImproperlyConfigured(
            f"{name} is not set: publishing to Broker needs {', '.join(REQUIRED_SETTINGS)} "
            "in the Django settings"
        )
    if not isinstance(value, str):
        raise ImproperlyConfigured(f"{name} must be a string, not {type(value).__name__}")
    return value


def _build() -> Publisher:
    url, key_id, secret = (_required(name) for name in REQUIRED_SETTINGS)
    timeout = getattr(settings, "BROKER_TIMEOUT", None)
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0
    ):
        raise ImproperlyConfigured(f"BROKER_TIMEOUT must be a positive number of seconds, not {timeout!r}")
    try:
        if timeout is None:
            return Publisher(url, key_id, secret)
        return Publisher(url, key_id, secret, timeout=float(timeout))
    except ValueError as exc:  # the SDK's message starts with the argument's name
        argument = str(exc).split(" ", 1)[0]
        raise ImproperlyConfigured(f"{_ARGUMENTS.get(argument, 'Broker setting')}: {exc}") from exc


def get_publisher() -> Publisher:
    """The process's publisher, built from the settings on first use.

    Raises :class:`~django.core.exceptions.ImproperlyConfigured`, naming the
    setting, if one is missing or invalid.
    """
    global _publisher
    with _lock:
        if _publisher is None:
            _publisher = _build()
        return _publisher


def reset_publisher() -> None:
    """Forget the publisher; the next publish builds a new one from the settings."""
    global _publisher
    with _lock:
        _publisher = None


def _on_setting_changed(setting: str, **kwargs: Any) -> None:
    if setting in SETTINGS:
        reset_publisher()


setting_changed.connect(_on_setting_changed, dispatch_uid="broker.contrib.django.reset_publisher")


def _publish_committed(publisher: Publisher, topic: str, data: Any) -> None:
    """Publish after a commit: the data is saved whatever happens, so log, never raise."""
    try:
        publisher.publish(topic, data)
    except PublishError as exc:
        logger.error("event for topic %r was committed but not published: %s", topic, exc)
    except Exception:
        logger.exception("event for topic %r was committed but not published", topic)


def publish(topic: str, data: Any, *, using: str | None = None) -> None:
    """Publish ``data`` to ``topic`` once the transaction on database ``using`` commits.

    Nothing is published if the transaction rolls back; outside a transaction
    (autocommit) the event is published at once. Settings, the topic and
    JSON-serializability are checked now and raise here, before the commit
    (:class:`~django.core.exceptions.ImproperlyConfigured`,
    :class:`broker.errors.InvalidUri`, :class:`TypeError`/:class:`ValueError`).
    A failure to publish after the commit is logged on the ``broker`` logger
    and not raised. The publish runs synchronously in the committing thread.

    In a Django ``TestCase`` (one transaction per test) nothing commits: wrap
    the code in ``self.captureOnCommitCallbacks(execute=True)``.
    """
    publisher = get_publisher()
    check_uri(topic)
    json.dumps(data, allow_nan=False)
    transaction.on_commit(lambda: _publish_committed(publisher, topic, data), using=using)


def publish_now(topic: str, data: Any) -> Published:
    """Publish ``data`` to ``topic`` immediately, ignoring transactions.

    Raises :class:`broker.client.PublishError` (or a subclass) if the node
    refuses or cannot be reached, and ``ImproperlyConfigured`` as :func:`publish`.
    """
    return get_publisher().publish(topic, data)
