"""Developer tooling, neither the broker nor its tests: ``python -m tools.cluster`` (``make cluster``)."""
