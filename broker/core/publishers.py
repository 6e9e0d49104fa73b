"""Who may publish over HTTP, and within which limits: the settings as values.

Why here and not in :mod:`broker.config.settings`: the publish gate
(:mod:`broker.core.publishing`) decides with them, and a rule must not depend
on the config layer that parses them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from broker.core.grants import Grant


@dataclass(frozen=True)
class RateLimit:
    """A token bucket: ``per_second`` events on average, bursts of ``burst``."""

    per_second: float
    burst: int


@dataclass(frozen=True)
class PublisherKey:
    """One backend's credentials for the HTTP publish API."""

    key_id: str
    secret: str = field(repr=False)
    #: Where this key may publish (grants with the single action ``publish``).
    topics: tuple[Grant, ...]
    rate_limit: RateLimit | None = None


@dataclass(frozen=True)
class HttpPublishSettings:
    """Limits of ``POST /api/publish``."""

    max_body_bytes: int = 65536
    max_batch: int = 100
    #: Seconds a signed request's timestamp may differ from the node's clock.
    timestamp_window: int = 300
    #: Seconds an idempotency key's first answer is kept.
    idempotency_window: int = 86400
    nonce_capacity: int = 200_000
    idempotency_capacity: int = 100_000
