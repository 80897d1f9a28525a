from django.contrib import admin
from django.urls import include, path

from . import views

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
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
]

try:
    from . import api
except ImportError:  # the JSON API is landing separately
    api = None
if api is not None:
    urlpatterns.append(path("api/", include(api.urlpatterns)))

handler404 = "stormui.views.not_found"
handler500 = "stormui.views.server_error"
