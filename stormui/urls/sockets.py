"""The websocket routes, which :mod:`stormui.asgi` mounts."""

from django.urls import path

from .. import consumers

websocket_urlpatterns = [
    path("ws/cluster/", consumers.ClusterConsumer.as_asgi()),
    path("ws/storms/<str:storm_id>/", consumers.StormConsumer.as_asgi()),
    path("ws/errors/", consumers.ErrorsConsumer.as_asgi()),
    path("ws/timeline/", consumers.TimelineConsumer.as_asgi()),
]
