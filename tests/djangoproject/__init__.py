"""A minimal Django project for ``tests/test_django.py``: settings and one app, ``shop``."""
