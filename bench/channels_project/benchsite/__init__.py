"""A minimal Django Channels project for the fan-out benchmark (see bench/systems/django_channels.py)."""
