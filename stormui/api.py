"""Storm UI's REST API (``/api/v1/...``) and the error feed (``/api/errors``).

``stormui.urls`` includes :data:`urlpatterns` under ``api/``. Each view takes
its figures from the source, shapes them with :mod:`stormui.shapes` and
answers JSON; :mod:`stormui.decorators` makes every refusal JSON too.
"""

from __future__ import annotations

from django.core.exceptions import BadRequest
from django.http import Http404, JsonResponse
from django.urls import path, re_path

from clusterstate.paths import is_valid_id

from . import shapes
from .cluster import parse_window, select_errors
from .decorators import api_view
from .source import get_source

ERRORS_DEFAULT_LIMIT = 100
ERRORS_MAX_LIMIT = 1000


def _window(request) -> str:
    try:
        return parse_window(request.GET.get("window"))
    except ValueError as exc:
        raise BadRequest(str(exc)) from None


def _storm(storm_id: str):
    # an id that could not be a node name is unknown, never turned into another path
    storm = get_source().storm_view(storm_id) if is_valid_id(storm_id) else None
    if storm is None:
        raise Http404("no such topology")
    return storm


def _int_param(request, name: str, default, minimum: int, maximum: int | None = None):
    raw = request.GET.get(name)
    if raw is None or raw == "":
        return default
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise BadRequest(f"{name} must be a non-negative integer")
    value = int(raw)
    if value < minimum or (maximum is not None and value > maximum):
        upper = f" and {maximum}" if maximum is not None else ""
        raise BadRequest(f"{name} must be at least {minimum}{upper}")
    return value


def _id_param(request, name: str) -> str | None:
    raw = request.GET.get(name)
    if raw is None or raw == "":
        return None
    if not is_valid_id(raw):
        raise BadRequest(f"{name} is not a valid id")
    return raw


@api_view()
def cluster_summary(request):
    return JsonResponse(shapes.cluster_summary(get_source().cluster_view()))


@api_view()
def supervisor_summary(request):
    return JsonResponse(shapes.supervisors_summary(get_source().cluster_view()))


@api_view()
def topology_summary(request):
    return JsonResponse(shapes.topologies_summary(get_source().cluster_view()))


@api_view()
def topology(request, storm_id: str):
    window = _window(request)
    return JsonResponse(shapes.topology_detail(_storm(storm_id), window))


@api_view()
def component(request, storm_id: str, component_id: str):
    window = _window(request)
    storm = _storm(storm_id)
    # as on the component's page: an id the contract refuses is not found, even if data names it
    comp = storm.components.get(component_id) if is_valid_id(component_id) else None
    if comp is None:
        raise Http404("no such component")
    return JsonResponse(shapes.component_detail(storm, comp, window))


@api_view()
def errors(request):
    storm = _id_param(request, "storm")
    component = _id_param(request, "component")
    since = _int_param(request, "since", None, 0)
    limit = _int_param(request, "limit", ERRORS_DEFAULT_LIMIT, 1, ERRORS_MAX_LIMIT)
    text = request.GET.get("text") or None
    selected = select_errors(
        get_source().cluster_view(),
        storm=storm,
        component=component,
        since=since,
        text=text,
        limit=limit,
    )
    return JsonResponse(shapes.errors_feed(selected))


@api_view("GET", "POST", "PUT", "PATCH", "DELETE")
def not_found(request, rest: str = ""):
    # anything else under api/ (including an id holding an encoded "/") is a JSON 404
    raise Http404("no such API endpoint")


urlpatterns = [
    path("v1/cluster/summary", cluster_summary, name="api-cluster-summary"),
    path("v1/supervisor/summary", supervisor_summary, name="api-supervisor-summary"),
    path("v1/topology/summary", topology_summary, name="api-topology-summary"),
    path("v1/topology/<str:storm_id>", topology, name="api-topology"),
    path(
        "v1/topology/<str:storm_id>/component/<str:component_id>",
        component,
        name="api-component",
    ),
    path("errors", errors, name="api-errors"),
    # admin actions (deactivate, remove, kill/<wait-secs>) go above this line
    # (?s): a path ending in an encoded newline is under api/ too
    re_path(r"^(?P<rest>(?s:.*))$", not_found, name="api-not-found"),  # must stay last
]
