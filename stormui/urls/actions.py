"""The pages' admin actions and the audit page (the API's actions are in :mod:`.api`)."""

from django.urls import path

from .. import action_views

urlpatterns = [
    path("storms/<str:storm_id>/activate/", action_views.activate, name="storm-activate"),
    path("storms/<str:storm_id>/deactivate/", action_views.deactivate, name="storm-deactivate"),
    path("storms/<str:storm_id>/kill/", action_views.kill, name="storm-kill"),
    path("storms/<str:storm_id>/remove/", action_views.remove, name="storm-remove"),
    path("audit/", action_views.audit, name="audit"),
]
