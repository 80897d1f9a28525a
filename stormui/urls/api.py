"""Storm's REST API and the error feed, which the root URLconf includes under ``api/``.

The reads, then the admin actions, then the JSON 404 that answers every other
path under ``api/``: it must stay last.
"""

from django.urls import path, re_path

from .. import action_views, api

urlpatterns = [
    path("v1/cluster/summary", api.cluster_summary, name="api-cluster-summary"),
    path("v1/supervisor/summary", api.supervisor_summary, name="api-supervisor-summary"),
    path("v1/supervisor", api.supervisor, name="api-supervisor"),
    path("v1/topology/summary", api.topology_summary, name="api-topology-summary"),
    path("v1/topology-workers/<str:storm_id>", api.topology_workers, name="api-topology-workers"),
    path("v1/topology/<str:storm_id>", api.topology, name="api-topology"),
    path(
        "v1/topology/<str:storm_id>/component/<str:component_id>",
        api.component,
        name="api-component",
    ),
    path("v1/topology/<str:storm_id>/graph", api.topology_graph, name="api-topology-graph"),
    path("v1/topology/<str:storm_id>/series", api.topology_series, name="api-topology-series"),
    path("errors", api.errors, name="api-errors"),
    path("v1/timeline", api.timeline_events, name="api-timeline"),
    path("v1/errors/history", api.error_history, name="api-error-history"),
    path("v1/errors/groups", api.error_groups, name="api-error-groups"),
    path(
        "v1/topology/<str:storm_id>/activate",
        action_views.api_activate,
        name="api-topology-activate",
    ),
    path(
        "v1/topology/<str:storm_id>/deactivate",
        action_views.api_deactivate,
        name="api-topology-deactivate",
    ),
    path(
        "v1/topology/<str:storm_id>/remove",
        action_views.api_remove,
        name="api-topology-remove",
    ),
    path(
        "v1/topology/<str:storm_id>/kill/<str:wait_secs>",
        action_views.api_kill,
        name="api-topology-kill",
    ),
    # (?s): a path ending in an encoded newline is under api/ too
    re_path(r"^(?P<rest>(?s:.*))$", api.not_found, name="api-not-found"),  # must stay last
]
