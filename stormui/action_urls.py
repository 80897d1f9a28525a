"""URLs of the admin actions: the pages' and Storm's API's, both from the site's root."""

from django.urls import path

from . import action_views

page_urlpatterns = [
    path("storms/<str:storm_id>/deactivate/", action_views.deactivate, name="storm-deactivate"),
    path("storms/<str:storm_id>/remove/", action_views.remove, name="storm-remove"),
    path("audit/", action_views.audit, name="audit"),
]

api_urlpatterns = [
    path(
        "api/v1/topology/<str:storm_id>/deactivate",
        action_views.api_deactivate,
        name="api-topology-deactivate",
    ),
    path(
        "api/v1/topology/<str:storm_id>/remove",
        action_views.api_remove,
        name="api-topology-remove",
    ),
    path(
        "api/v1/topology/<str:storm_id>/kill/<str:wait_secs>",
        action_views.api_kill,
        name="api-topology-kill",
    ),
]
