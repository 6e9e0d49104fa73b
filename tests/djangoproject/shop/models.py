"""The test project's ``Order``: editable fields (published) and a timestamp (left out by default)."""

from __future__ import annotations

from decimal import Decimal

from django.db import models


class Order(models.Model):
    """One order; ``model_to_dict`` skips ``created_at``, which is not editable.

    ``price`` is a ``Decimal``, which only ``DjangoJSONEncoder`` makes JSON (a string).
    """

    customer = models.CharField(max_length=100)
    item = models.CharField(max_length=100)
    quantity = models.PositiveIntegerField(default=1)
    status = models.CharField(max_length=20, default="new")
    price = models.DecimalField(max_digits=8, decimal_places=2, default=Decimal("0"))
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.customer}: {self.quantity} x {self.item}"
