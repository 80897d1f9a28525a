import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "stormui.settings")
# Django must be set up before anything imports models
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import WebsocketDenier  # noqa: E402
from django.urls import re_path  # noqa: E402

from stormui.scheduler import StartsScheduler  # noqa: E402
from stormui.security import SameOriginValidator  # noqa: E402
from stormui.sockets import SocketAuthMiddlewareStack  # noqa: E402
from stormui.urls.sockets import websocket_urlpatterns  # noqa: E402

application = StartsScheduler(
    ProtocolTypeRouter(
        {
            "http": django_asgi_app,
            "websocket": SameOriginValidator(
                SocketAuthMiddlewareStack(
                    URLRouter(
                        [
                            *websocket_urlpatterns,
                            # any other path is refused, never left to raise "No route found"
                            re_path(r"", WebsocketDenier.as_asgi()),
                        ]
                    )
                )
            ),
        }
    )
)
