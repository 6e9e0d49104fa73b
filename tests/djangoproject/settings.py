"""Settings of the test Django project.

The databases live in the directory named by ``BROKER_TEST_DJANGO_DIR`` (a
pytest temporary directory). ``BROKER_*`` settings are deliberately absent:
each test sets them with ``override_settings``, pointing at its node.
"""

from __future__ import annotations

import os
from pathlib import Path

_DIR = Path(os.environ["BROKER_TEST_DJANGO_DIR"])

SECRET_KEY = "tests-only"
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.auth",  # users and logins, for broker.contrib.django.views.token_view
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "tests.djangoproject.shop",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
ROOT_URLCONF = "tests.djangoproject.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
DATABASES = {
    "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(_DIR / "default.sqlite3")},
    # a second database, to show that publish(using=...) waits for that one's commit
    "other": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(_DIR / "other.sqlite3")},
}
