"""The HTML pages."""

from django.urls import path

from .. import views

urlpatterns = [
    path("", views.cluster, name="cluster"),
    path("storms/<str:storm_id>/", views.storm, name="storm"),
    path(
        "storms/<str:storm_id>/components/<str:component_id>/",
        views.component,
        name="component",
    ),
    path("storms/<str:storm_id>/tasks/<str:task_id>/", views.task, name="task"),
    path("supervisors/", views.supervisors, name="supervisors"),
    path("supervisors/<str:supervisor_id>/", views.supervisor, name="supervisor"),
    path("errors/", views.errors, name="errors"),
    path("timeline/", views.timeline_page, name="timeline"),
    path("errors/history/", views.error_history, name="error-history"),
    path("errors/groups/", views.error_groups, name="error-groups"),
]
