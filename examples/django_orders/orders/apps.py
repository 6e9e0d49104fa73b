"""The orders app: connects Broker publishing when Django starts."""

from typing import Any

from django.apps import AppConfig
from django.forms.models import model_to_dict

from broker.contrib.django import publish_model_changes


def order_data(order: Any) -> dict[str, Any]:
    """The event data: the editable fields plus the timestamps ``model_to_dict`` leaves out."""
    return {**model_to_dict(order), "created_at": order.created_at, "updated_at": order.updated_at}


class OrdersConfig(AppConfig):
    """Publishes each order's changes to ``public.orders.<pk>``, which anonymous dashboards may watch."""

    name = "orders"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from orders.models import Order

        publish_model_changes(Order, topic="public.orders.{pk}", serialize=order_data)
