"""Connects the ``Order`` model to Broker the way a real project does, in ``ready()``."""

from __future__ import annotations

from django.apps import AppConfig

from broker.contrib.django import publish_model_changes

#: Where the test project publishes each order's changes.
TOPIC = "public.shop.orders.{pk}"


class ShopConfig(AppConfig):
    """The ``shop`` app."""

    name = "tests.djangoproject.shop"
    label = "shop"

    def ready(self) -> None:
        from tests.djangoproject.shop.models import Order

        publish_model_changes(Order, topic=TOPIC)
