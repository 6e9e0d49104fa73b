"""URLs: the Django admin, where orders are edited; the site root leads there."""

from django.contrib import admin
from django.urls import path
from django.views.generic import RedirectView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", RedirectView.as_view(url="/admin/orders/order/")),
]
