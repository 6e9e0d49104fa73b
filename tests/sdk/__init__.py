"""Tests of the publisher SDK (:mod:`broker.client`), run in ``.venv-sdk``: no crossbar."""
