"""The Django project of the orders example: settings and URLs."""
