"""The server-rendered pages. Each view authorises, takes its view from the source, renders."""

from __future__ import annotations

import functools
import time
from datetime import UTC, datetime

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import BadRequest
from django.http import Http404, HttpResponseServerError
from django.shortcuts import render
from django.template import loader

from clusterstate.paths import check_id, check_task_id

from . import charts, pages, paging
from .cluster import page_window
from .decorators import syncing_response
from .forms import parse_error_filter
from .history import errors as history_errors
from .history import timeline
from .source import get_source


def page(view):
    """Every page: login first when the deployment asks for it."""

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        if settings.STORMUI_LOGIN_REQUIRED and not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path(), settings.LOGIN_URL)
        return view(request, *args, **kwargs)

    return wrapper


def cluster_page(view):
    """A page of the cluster's figures: while the first read of the cluster runs, a page
    saying how far it has got instead, which turns into this page when the read is done
    (never a half-read cluster shown as whole)."""

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        source = get_source()
        if source.syncing:
            text = pages.syncing_text(*source.sync_progress())
            return syncing_response(render(request, "stormui/syncing.html", {"progress": text}))
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


def _status(source, as_of: float) -> dict:
    return pages.status(as_of, source.zk_connected, source.synced_at)


def _storm(source, storm_id: str):
    storm = source.storm_view(_id(storm_id, "storm id"))
    if storm is None:
        raise Http404("no such storm")
    return storm


def _tables(request, kind: str) -> dict:
    # the first of each parameter, as a page's socket reads its query
    return paging.parse({name: values[0] for name, values in request.GET.lists()}, kind)


def _found(ctx, what: str) -> dict:
    if ctx is None:
        raise Http404(f"no such {what}")
    return ctx


@page
@cluster_page
def cluster(request):
    source = get_source()
    view = source.cluster_view()
    ctx = pages.cluster_context(view, _status(source, view.as_of), _tables(request, "cluster"))
    return render(request, "stormui/cluster.html", ctx)


@page
@cluster_page
def storm(request, storm_id):
    source = get_source()
    storm = _storm(source, storm_id)
    window = page_window(request.GET.get("window"))
    chart_range = charts.parse_range(request.GET.get("range"))
    ctx = pages.storm_context(storm, _status(source, storm.as_of), window, chart_range)
    ctx.update(timeline.storm_history_context(storm))
    return render(request, "stormui/storm.html", ctx)


@page
@cluster_page
def component(request, storm_id, component_id):
    source = get_source()
    storm = _storm(source, storm_id)
    component_id = _id(component_id, "component id")
    st = _status(source, storm.as_of)
    tables = _tables(request, "component")
    window = page_window(request.GET.get("window"))
    chart_range = charts.parse_range(request.GET.get("range"))
    ctx = pages.component_context(storm, st, component_id, window, tables, chart_range)
    ctx = _found(ctx, "component")
    ctx.update(timeline.component_history_context(storm, component_id))
    return render(request, "stormui/component.html", ctx)


@page
@cluster_page
def task(request, storm_id, task_id):
    source = get_source()
    storm = _storm(source, storm_id)
    ctx = pages.task_context(storm, _status(source, storm.as_of), _task_id(task_id))
    return render(request, "stormui/task.html", _found(ctx, "task"))


@page
@cluster_page
def supervisors(request):
    source = get_source()
    view = source.cluster_view()
    tables = _tables(request, "supervisors")
    ctx = pages.supervisors_context(view, _status(source, view.as_of), tables)
    return render(request, "stormui/supervisors.html", ctx)


@page
@cluster_page
def supervisor(request, supervisor_id):
    source = get_source()
    view = source.cluster_view()
    supervisor_id = _id(supervisor_id, "supervisor id")
    ctx = pages.supervisor_context(view, _status(source, view.as_of), supervisor_id)
    return render(request, "stormui/supervisor.html", _found(ctx, "supervisor"))


@page
@cluster_page
def errors(request):
    source = get_source()
    view = source.cluster_view()
    error_filter = parse_error_filter(request.GET)
    page = paging.parse_page(request.GET.getlist("errors_page", ["1"])[0])
    ctx = pages.errors_context(view, _status(source, view.as_of), error_filter, page)
    return render(request, "stormui/errors.html", ctx)


@page
def timeline_page(request):
    source = get_source()
    try:
        query = timeline.parse_query(request.GET, cursor_name="before")
    except timeline.BadQuery as exc:
        raise BadRequest(str(exc)) from None
    ctx = timeline.timeline_context(query, _status(source, time.time()))
    return render(request, "stormui/timeline.html", ctx)


def not_found(request, exception=None):
    return render(request, "404.html", status=404)


def server_error(request):
    # no context, no source: this page must render whatever went wrong
    return HttpResponseServerError(loader.get_template("500.html").render())


# -- the error history's pages ------------------------------------------------------------------


def _history_params(request) -> dict:
    """The page's query, with ``since``/``until`` also taken as a form's UTC date and time."""
    params = {name: values[0] for name, values in request.GET.lists()}
    for name in ("since", "until"):
        value = params.get(name, "").strip()
        if value and not value.isdigit():
            try:
                dt = datetime.fromisoformat(value)
            except ValueError:
                continue  # left as it is: the query refuses it, naming it
            if dt.tzinfo is None:
                dt = dt.replace(tzinfo=UTC)
            params[name] = str(max(int(dt.timestamp() * 1000), 0))
    return params


def _history_page(request, template: str, context):
    try:
        query = history_errors.parse_query(_history_params(request))
    except history_errors.BadQuery as exc:
        ctx = {"bad_query": str(exc), "filters": {}, "times": {}}
        return render(request, template, ctx, status=400)
    return render(request, template, context(query, int(time.time() * 1000)))


@page
def error_history(request):
    return _history_page(request, "stormui/error_history.html", pages.error_history_context)


@page
def error_groups(request):
    return _history_page(request, "stormui/error_groups.html", pages.error_groups_context)
