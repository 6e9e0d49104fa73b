"""WebSocket routes only: ``/sub`` and ``/pub``."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchsite.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402 - after Django's setup
from django.urls import path  # noqa: E402

from benchsite.consumers import Publisher, Subscriber  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": URLRouter([path("sub", Subscriber.as_asgi()), path("pub", Publisher.as_asgi())]),
    }
)
