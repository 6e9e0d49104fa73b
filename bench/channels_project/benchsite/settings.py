"""Just enough Django for Channels: no database, no apps beyond channels, a Redis channel layer.

``BENCH_REDIS_PORT`` names the redis-server the benchmark started. The
default channel capacity (100 messages) silently drops group messages for a
consumer that is behind, which a saturation run always makes some consumer
be; the capacity is raised so that what is measured is throughput, not loss.
redis-py's pool refuses a 101st concurrent connection ("Too many
connections"), which hundreds of subscribers joining at once reach.
"""

import os

SECRET_KEY = "bench-only-not-secret"  # noqa: S105 - loopback benchmark
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = ["channels"]
ASGI_APPLICATION = "benchsite.asgi.application"
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True
REDIS_PORT = int(os.environ.get("BENCH_REDIS_PORT", "6379"))
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            "hosts": [{"address": f"redis://127.0.0.1:{REDIS_PORT}", "max_connections": 1000}],
            "capacity": 100_000,
        },
    }
}
