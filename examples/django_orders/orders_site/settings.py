"""Settings of the orders example: a development setup, configured from the environment.

Why the fallbacks: after ``make run`` in the repository root, the example must
publish with no further setup. The node's publisher key ``dev`` has its secret
in ``BROKER_PUBLISHER_SECRET``, which ``broker run`` writes to the git-ignored
``.crossbar/secrets.env``; these settings read it from the environment first,
then from that file. ``BROKER_SECRET`` overrides both.
"""

import os
from pathlib import Path

from broker.config import devsecrets

BASE_DIR = Path(__file__).resolve().parent.parent
REPO_ROOT = BASE_DIR.parent.parent

# -- Broker: where and as whom to publish (see broker.contrib.django) ----------
BROKER_URL = os.environ.get("BROKER_URL", "http://127.0.0.1:8080")
BROKER_KEY_ID = os.environ.get("BROKER_KEY_ID", "dev")
# None until `make run` has generated the dev secrets: publishing then raises
# ImproperlyConfigured naming BROKER_SECRET.
BROKER_SECRET = os.environ.get("BROKER_SECRET") or devsecrets.secret(
    "BROKER_PUBLISHER_SECRET", REPO_ROOT / ".crossbar"
)

# -- Django ---------------------------------------------------------------------
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "django-insecure-orders-example-development-only")
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "orders",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "orders_site.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        # ORDERS_DB moves the database (the tests migrate into a temporary one)
        "NAME": os.environ.get("ORDERS_DB", BASE_DIR / "db.sqlite3"),
    }
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_TZ = True
STATIC_URL = "static/"

# Failed publishes after a commit are logged on the "broker" logger.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"broker": {"handlers": ["console"], "level": "INFO"}},
}
