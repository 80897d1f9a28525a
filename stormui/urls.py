from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

from . import action_urls, api, views

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
    *action_urls.page_urlpatterns,
    # before the API's own patterns, which end in a JSON catch-all 404
    *action_urls.api_urlpatterns,
    path("api/", include(api.urlpatterns)),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
    # for what asks the old way (pages without our <link rel="icon">: the admin's, the API's)
    path("favicon.ico", RedirectView.as_view(url=static("stormui/img/favicon.svg"))),
]

handler404 = "stormui.views.not_found"
handler500 = "stormui.views.server_error"
