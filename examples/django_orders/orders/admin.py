"""Orders in the Django admin: every save and delete there is published."""

from django.contrib import admin

from orders.models import Order


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    """The order list shows what the dashboard receives."""

    list_display = ("id", "customer", "item", "quantity", "status", "updated_at")
    list_filter = ("status",)
