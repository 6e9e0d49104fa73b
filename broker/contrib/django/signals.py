"""Publish a model's saves and deletes, on commit, with one call.

Why: most live dashboards only need "this row was created, updated or
deleted, and here it is now". :func:`publish_model_changes` connects
``post_save`` and ``post_delete`` receivers that build that event and hand it
to :func:`broker.contrib.django.publish`, so a rolled-back save publishes
nothing and a failed publish never breaks a committed request.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db.models.signals import post_delete, post_save
from django.forms.models import model_to_dict

from broker.contrib.django.publishing import publish

#: Turns a model instance into the event's ``data``.
Serializer = Callable[[Any], Any]


def json_safe(value: Any) -> Any:
    """``value`` with dates, decimals, UUIDs and lazy strings as JSON strings (``DjangoJSONEncoder``)."""
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def publish_model_changes(model: type[Any], topic: str, *, serialize: Serializer = model_to_dict) -> None:
    """Publish every save and delete of ``model`` instances to ``topic``, on commit.

    ``topic`` is formatted with the instance's primary key (``"orders.{pk}"``).
    Each event's data is ``{"event": "created" | "updated" | "deleted", "pk": ...,
    "data": serialize(instance)}``, made JSON-safe with ``DjangoJSONEncoder``;
    the default ``serialize``, ``model_to_dict``, leaves out non-editable fields
    such as ``auto_now`` timestamps. Saves from fixtures (``loaddata``, ``raw``)
    are not published. Connecting the same model and topic again replaces the
    receivers rather than adding more; call this from ``AppConfig.ready()``.
    """
    uid = f"broker.contrib.django:{model._meta.label}:{topic}"

    def send(instance: Any, event: str, using: str) -> None:
        payload = {"event": event, "pk": json_safe(instance.pk), "data": json_safe(serialize(instance))}
        publish(topic.format(pk=instance.pk), payload, using=using)

    def saved(sender: type[Any], instance: Any, created: bool, raw: bool, using: str, **kwargs: Any) -> None:
        if not raw:
            send(instance, "created" if created else "updated", using)

    def deleted(sender: type[Any], instance: Any, using: str, **kwargs: Any) -> None:
        send(instance, "deleted", using)

    # weak=False: the receivers are closures that nothing else keeps alive
    for signal, receiver in ((post_save, saved), (post_delete, deleted)):
        signal.disconnect(sender=model, dispatch_uid=uid)
        signal.connect(receiver, sender=model, weak=False, dispatch_uid=uid)
