"""Storm UI's REST API (``/api/v1/...``) and the error feed (``/api/errors``).

Their URLs are in :mod:`stormui.urls.api`, under ``api/``. Each view takes
its figures from the source, shapes them with :mod:`stormui.shapes` and
answers JSON; :mod:`stormui.decorators` makes every refusal JSON too.
"""

from __future__ import annotations

from django.core.exceptions import BadRequest
from django.http import Http404, JsonResponse

from clusterstate.paths import is_valid_id

from . import graph, shapes
from .cluster import parse_window
from .decorators import api_view, cluster_read
from .forms import BadErrorFilter, parse_error_filter
from .history import errors as history_errors
from .history import recorder, series, timeline
from .source import get_source


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


@api_view()
@cluster_read
def cluster_summary(request):
    return JsonResponse(shapes.cluster_summary(get_source().cluster_view()))


@api_view()
@cluster_read
def supervisor_summary(request):
    return JsonResponse(shapes.supervisors_summary(get_source().cluster_view()))


@api_view()
@cluster_read
def supervisor(request):
    """``?id=`` (or ``host=``): one supervisor and its workers."""
    sid, host = request.GET.get("id"), request.GET.get("host")
    if not sid and not host:
        raise BadRequest("give the supervisor's id= or host=")
    view = get_source().cluster_view()
    if sid:
        sup = view.supervisors.get(sid)
    else:
        sup = next((s for s in view.supervisors.values() if s.host == host), None)
    if sup is None:
        raise Http404("no such supervisor")
    return JsonResponse(shapes.supervisor_detail(view, sup))


@api_view()
@cluster_read
def topology_summary(request):
    return JsonResponse(shapes.topologies_summary(get_source().cluster_view()))


@api_view()
@cluster_read
def topology(request, storm_id: str):
    window = _window(request)
    return JsonResponse(shapes.topology_detail(_storm(storm_id), window))


@api_view()
@cluster_read
def topology_workers(request, storm_id: str):
    return JsonResponse(shapes.topology_workers(_storm(storm_id)))


@api_view()
@cluster_read
def component(request, storm_id: str, component_id: str):
    window = _window(request)
    storm = _storm(storm_id)
    # as on the component's page: an id that docs/contract/cluster-state.md ("Identifiers")
    # refuses is not found, even if data names it
    comp = storm.components.get(component_id) if is_valid_id(component_id) else None
    if comp is None:
        raise Http404("no such component")
    system = request.GET.get("sys", "").lower() in ("1", "true", "yes")
    return JsonResponse(shapes.component_detail(storm, comp, window, system=system))


@api_view()
@cluster_read
def topology_graph(request, storm_id: str):
    window = _window(request)
    storm = _storm(storm_id)
    return JsonResponse(shapes.topology_graph(graph.derive_graph(storm, window, storm.as_of)))


@api_view()
@cluster_read
def topology_series(request, storm_id: str):
    """A storm's (or with ``component=`` a component's) figure over time, from the history."""
    # a storm gone from the cluster still has its history
    storm = get_source().storm_view(storm_id) if is_valid_id(storm_id) else None
    if storm is None and not (is_valid_id(storm_id) and series.stored(storm_id)):
        raise Http404("no such topology")
    now = recorder.now_ms()
    try:
        metric, component, since, until = series.parse_query(request.GET, now)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    if component and not (
        is_valid_id(component)
        and (
            (storm is not None and component in storm.components)
            or series.stored(storm_id, component)
        )
    ):
        raise Http404("no such component")
    resolution, rows = series.read(storm_id, component, since, until, now)
    points = series.metric_points(rows, metric, resolution)
    return JsonResponse(shapes.series(metric, series.METRICS[metric][1], points))


@api_view()
@cluster_read
def errors(request):
    try:
        error_filter = parse_error_filter(request.GET, api=True)
    except BadErrorFilter as exc:
        raise BadRequest(str(exc)) from None
    return JsonResponse(shapes.errors_feed(error_filter.select(get_source().cluster_view())))


@api_view()
def timeline_events(request):
    """``?storm=&kind=&since=&until=&limit=&cursor=``: the timeline, newest first."""
    try:
        query = timeline.parse_query(request.GET)
    except timeline.BadQuery as exc:
        raise BadRequest(str(exc)) from None
    events, next_cursor = timeline.select(query)
    return JsonResponse(shapes.timeline(events, next_cursor))


@api_view("GET", "POST", "PUT", "PATCH", "DELETE")
def not_found(request, rest: str = ""):
    # anything else under api/ (including an id holding an encoded "/") is a JSON 404
    raise Http404("no such API endpoint")


# -- the error history (stormui.history.errors) ----------------------------------------------


def _history_query(request):
    try:
        return history_errors.parse_query(request.GET)
    except history_errors.BadQuery as exc:
        raise BadRequest(str(exc)) from None


@api_view()
def error_history(request):
    page = history_errors.history(_history_query(request))
    return JsonResponse(
        {
            "errors": [history_errors.error_shape(row) for row in page.errors],
            "next": page.next,
            "missed": page.missed,
        }
    )


@api_view()
def error_groups(request):
    found = history_errors.groups(_history_query(request))
    return JsonResponse({"groups": [history_errors.group_shape(g) for g in found]})
