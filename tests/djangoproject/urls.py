"""The test project's URLs: the token view, as a real project mounts it."""

from __future__ import annotations

from django.urls import path

from broker.contrib.django.views import token_view

urlpatterns = [path("broker/token", token_view)]
