"""The site's root URLconf: one URL module per concern, included from here.

- :mod:`.pages`: the HTML pages;
- :mod:`.actions`: the pages' admin actions and the audit page;
- :mod:`.api`: Storm's REST API (reads and actions) and the error feed, under ``api/``;
- :mod:`.sockets`: the websocket routes, which :mod:`stormui.asgi` mounts;
- :mod:`.health`: ``healthz``, ``readyz`` and ``metrics``, for load balancers and Prometheus.
"""

from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    path("", include("stormui.urls.pages")),
    path("", include("stormui.urls.actions")),
    path("api/", include("stormui.urls.api")),
    path("", include("stormui.urls.health")),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
    # for what asks the old way (pages without our <link rel="icon">: the admin's, the API's)
    path("favicon.ico", RedirectView.as_view(url=static("stormui/img/favicon.svg"))),
]

handler404 = "stormui.views.not_found"
handler500 = "stormui.views.server_error"
