"""The server-rendered pages. Each view authorises, takes its view from the source, renders."""

from __future__ import annotations

import functools
import time

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpResponseServerError
from django.shortcuts import render
from django.template import loader

from clusterstate.paths import check_id, check_task_id

from .cluster import DEFAULT_WINDOW, WINDOW_LABELS, WINDOWS, parse_window
from .forms import parse_error_filter
from .source import get_source

# the error feed page shows at most this many errors; the filters narrow it down
ERROR_FEED_LIMIT = 200


def page(view):
    """Every page: login first when the deployment asks for it."""

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        if settings.STORMUI_LOGIN_REQUIRED and not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path(), settings.LOGIN_URL)
        return view(request, *args, **kwargs)

    return wrapper


def _id(value: str, kind: str) -> str:
    # an id that could never name a node is simply not found
    try:
        return check_id(value, kind)
    except ValueError:
        raise Http404(f"no such {kind}") from None


def _task_id(value: str) -> int:
    try:
        return check_task_id(value)
    except ValueError:
        raise Http404("no such task") from None


def _status(source, as_of: float | None = None) -> dict:
    """The "data as of ... · ZooKeeper connected" line every page shows."""
    return {
        "as_of": as_of if as_of is not None else time.time(),
        "zk_connected": source.zk_connected,
        "synced_at": source.synced_at,
    }


def _storm(source, storm_id: str):
    storm = source.storm_view(_id(storm_id, "storm id"))
    if storm is None:
        raise Http404("no such storm")
    return storm


def _window(request) -> str:
    try:
        return parse_window(request.GET.get("window"))
    except ValueError:
        return DEFAULT_WINDOW


def _windows():
    return [(w, WINDOW_LABELS[w]) for w in WINDOWS]


@page
def cluster(request):
    source = get_source()
    view = source.cluster_view()
    return render(
        request,
        "stormui/cluster.html",
        {
            "status": _status(source, view.as_of),
            "now": view.as_of,
            "cluster": view,
            "storms": sorted(view.storms.values(), key=lambda s: (s.name.lower(), s.id)),
            "supervisors": sorted(view.supervisors.values(), key=lambda s: (s.host or "", s.id)),
            "latest_errors": view.recent_errors[:5],
            "storm_names": {s.id: s.name for s in view.storms.values()},
            # a built view is never changed, so its identity and time name its rendering
            "view_key": f"{id(view)}-{view.as_of}",
        },
    )


@page
def storm(request, storm_id):
    source = get_source()
    storm = _storm(source, storm_id)
    status = _status(source)
    return render(
        request,
        "stormui/storm.html",
        {
            "status": status,
            "now": status["as_of"],
            "storm": storm,
            "window": _window(request),
            "window_label": WINDOW_LABELS[_window(request)],
            "windows": _windows(),
            "workers": sorted(storm.workers, key=lambda w: (w.host or "", w.port)),
            "unreadable_tasks": [t for t in storm.tasks.values() if t.unreadable],
        },
    )


@page
def component(request, storm_id, component_id):
    source = get_source()
    storm = _storm(source, storm_id)
    comp = storm.components.get(_id(component_id, "component id"))
    if comp is None:
        raise Http404("no such component")
    status = _status(source)
    return render(
        request,
        "stormui/component.html",
        {
            "status": status,
            "now": status["as_of"],
            "storm": storm,
            "component": comp,
            "live_component": comp.component_id,
            "tasks": [storm.tasks[t] for t in sorted(comp.task_ids) if t in storm.tasks],
            "window": _window(request),
            "window_label": WINDOW_LABELS[_window(request)],
            "windows": _windows(),
        },
    )


@page
def task(request, storm_id, task_id):
    source = get_source()
    storm = _storm(source, storm_id)
    task = storm.tasks.get(_task_id(task_id))
    if task is None:
        raise Http404("no such task")
    status = _status(source)
    return render(
        request,
        "stormui/task.html",
        {
            "status": status,
            "now": status["as_of"],
            "storm": storm,
            "task": task,
            "live_component": task.component_id,
            "errors": list(reversed(task.errors)),  # newest first
            "windows": _windows(),
        },
    )


def _supervisor_workers(view, supervisor):
    """Each worker of a supervisor with its tasks (None where the task is unknown)."""
    rows = []
    for worker in sorted(supervisor.workers, key=lambda w: (w.port, w.storm_id)):
        storm = view.storms.get(worker.storm_id)
        tasks = [(t, storm.tasks.get(t) if storm else None) for t in worker.task_ids]
        alive = sum(1 for _, t in tasks if t is not None and t.alive)
        rows.append({"worker": worker, "storm": storm, "tasks": tasks, "alive": alive})
    return rows


@page
def supervisors(request):
    source = get_source()
    view = source.cluster_view()
    sups = sorted(view.supervisors.values(), key=lambda s: (s.host or "", s.id))
    return render(
        request,
        "stormui/supervisors.html",
        {
            "status": _status(source, view.as_of),
            "now": view.as_of,
            "cluster": view,
            "supervisors": sups,
            "details": [(s, _supervisor_workers(view, s)) for s in sups],
        },
    )


@page
def supervisor(request, supervisor_id):
    source = get_source()
    view = source.cluster_view()
    sup = view.supervisors.get(_id(supervisor_id, "supervisor id"))
    if sup is None:
        raise Http404("no such supervisor")
    return render(
        request,
        "stormui/supervisor.html",
        {
            "status": _status(source, view.as_of),
            "now": view.as_of,
            "supervisor": sup,
            "workers": _supervisor_workers(view, sup),
        },
    )


@page
def errors(request):
    source = get_source()
    view = source.cluster_view()
    error_filter = parse_error_filter(request.GET)
    matching = error_filter.select(view)
    storms = sorted(view.storms.values(), key=lambda s: (s.name.lower(), s.id))
    return render(
        request,
        "stormui/errors.html",
        {
            "status": _status(source, view.as_of),
            "now": view.as_of,
            "errors": matching[:ERROR_FEED_LIMIT],
            "matching": len(matching),
            "limit": ERROR_FEED_LIMIT,
            "storms": storms,
            "storm_names": {s.id: s.name for s in storms},
            "filters": error_filter.fields(),
        },
    )


def not_found(request, exception=None):
    return render(request, "404.html", status=404)


def server_error(request):
    # no context, no source: this page must render whatever went wrong
    return HttpResponseServerError(loader.get_template("500.html").render())
