"""What each page shows, once: its template context and its live regions.

A page's view renders its template with :func:`context`; the live updates
render the same page's regions (:data:`REGIONS`: an element id and the
partial that renders it, the one the page's template includes) with the same
context, from the same view. So a region sent over a socket is byte for byte
what a reload would show, and a table's look lives in one template.

A page is named by a :data:`PageKey`: a tuple of strings, ``(kind, *ids,
window)``, then, when a big table shows another page or a filter, its tables'
parameters folded in one string (:mod:`stormui.paging`), then, when the charts show
another range than the last hour, the range (:func:`with_chart_range`). The key travels through
the channel layer as it is (JSON lists) and names the page's group
(:func:`page_group`).
"""

from __future__ import annotations

import hashlib
import json
import threading
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlencode

from django.template.loader import render_to_string

from . import charts, graph, paging
from .cluster import (
    DEFAULT_WINDOW,
    WINDOW_LABELS,
    WINDOWS,
    ClusterView,
    ErrorView,
    component_stream_stats,
)
from .history import errors as history_errors
from .history.recorder import retention_ms
from .models import ErrorGroup

#: how many of the newest errors the cluster page lists
LATEST_ERRORS = 5
#: the error feed page shows this many errors a page; the filters narrow them down
ERROR_FEED_LIMIT = paging.PAGE_SIZE

PageKey = tuple

#: every live page's regions: (element id, template), in the page's order
REGIONS: dict[str, list[tuple[str, str]]] = {
    "cluster": [
        ("cluster-summary", "cluster_summary"),
        ("storms-region", "storms"),
        ("supervisors-region", "supervisors"),
        ("latest-errors-region", "latest_errors"),
    ],
    "supervisors": [
        ("supervisors-summary", "supervisors_summary"),
        ("supervisors-region", "supervisors"),
        ("supervisor-details", "supervisor_details"),
    ],
    "supervisor": [
        ("supervisor-title", "supervisor_title"),
        ("supervisor-summary", "supervisor_summary"),
        ("supervisor-workers", "supervisor_workers"),
    ],
    "storm": [
        ("storm-title", "storm_title"),
        ("storm-notices", "storm_notices"),
        ("storm-summary", "storm_summary"),
        ("storm-stats-region", "storm_stats"),
        ("storm-graph", "storm_graph"),
        ("storm-charts", "storm_charts"),
        ("spouts-region", "spouts"),
        ("bolts-region", "bolts"),
        ("workers-region", "workers"),
    ],
    "component": [
        ("component-summary", "component_summary"),
        ("component-stats-region", "component_stats"),
        ("component-charts", "component_charts"),
        ("component-streams-region", "component_streams"),
        ("tasks-region", "component_tasks"),
        ("component-errors-region", "component_errors"),
    ],
    "task": [
        ("task-title", "task_title"),
        ("task-notices", "task_notices"),
        ("task-summary", "task_summary"),
        ("task-stats-region", "task_stats"),
        ("task-errors-region", "task_errors"),
    ],
    "errors": [("error-count", "error_count"), ("error-feed-region", "error_feed")],
    "timeline": [("timeline-region", "timeline")],
}
#: every page's status line: when its data was read, and ZooKeeper's state
STATUS_REGIONS = [("as-of", "as_of"), ("zk-status", "zk_status")]
#: the pages whose figures are a storm's
STORM_PAGES = ("storm", "component", "task")


def template(name: str) -> str:
    return f"stormui/regions/{name}.html"


def page_group(key: PageKey) -> str:
    """The group of a page's sockets (group names allow only a few ASCII characters)."""
    text = json.dumps(list(key), separators=(",", ":"))
    return "page." + hashlib.sha256(text.encode("utf-8")).hexdigest()[:40]


def storm_of(key: PageKey) -> str | None:
    return key[1] if key[0] in STORM_PAGES else None


def status(as_of: float, zk_connected: bool, synced_at: float | None) -> dict:
    """The "data as of ... · ZooKeeper connected" line every page shows."""
    return {"as_of": as_of, "zk_connected": bool(zk_connected), "synced_at": synced_at}


def syncing_text(read: int, known: int) -> str:
    """How far the first read of the cluster has got, as pages and ``/readyz`` say it."""
    return f"reading the cluster: {read:,} of {known:,} nodes"


def _windows():
    return [(w, WINDOW_LABELS[w]) for w in WINDOWS]


def _by_name(storms):
    return sorted(storms, key=lambda s: (s.name.lower(), s.id))


def _by_host(supervisors):
    return sorted(supervisors, key=lambda s: (s.host or "", s.id))


def supervisor_workers(view: ClusterView, supervisor) -> list[dict]:
    """Each worker of a supervisor with its tasks (None where the task is unknown)."""
    rows = []
    for worker in sorted(supervisor.workers, key=lambda w: (w.port, w.storm_id)):
        storm = view.storms.get(worker.storm_id)
        tasks = [(t, storm.tasks.get(t) if storm else None) for t in worker.task_ids]
        alive = sum(1 for _, t in tasks if t is not None and t.alive)
        rows.append({"worker": worker, "storm": storm, "tasks": tasks, "alive": alive})
    return rows


# -- what a big table's filter searches in a row ----------------------------------------


def _storm_text(s):
    return (s.name, s.id, s.status)


def _supervisor_text(s):
    return (s.id, s.host, "lost" if s.lost else "ok")


def _task_text(t):
    last = t.errors[-1].error if t.errors else None
    return (t.task_id, t.host, t.port, "alive" if t.alive else "dead", last)


def _error_text(e):
    return (e.task_id, e.component_id, e.host, e.error)


def _tables(ctx: dict, tables: dict, rows: dict, text: dict, extra=()) -> dict:
    """Each paged table's page into ``ctx`` (its rows under the table's own name, the rest
    under ``<name>_table``)."""
    for name, table_rows in rows.items():
        t = paging.table(name, table_rows, text[name], tables, extra)
        ctx[f"{name}_table"] = t
        ctx[name] = t.rows
    ctx["tables_query"] = paging.encode(tables)
    return ctx


# -- each page's context: None when what it shows is not there -------------------------


def cluster_context(view: ClusterView, st: dict, tables: dict | None = None) -> dict:
    tables = tables or paging.parse({}, "cluster")
    ctx = {
        "status": st,
        "now": view.as_of,
        "cluster": view,
        "latest_errors": view.recent_errors[:LATEST_ERRORS],
        "storm_names": {s.id: s.name for s in view.storms.values()},
    }
    _tables(
        ctx,
        tables,
        {
            "storms": _by_name(view.storms.values()),
            "supervisors": _by_host(view.supervisors.values()),
        },
        {"storms": _storm_text, "supervisors": _supervisor_text},
    )
    # a built view is never changed, so its identity and time (and the tables' pages) name
    # its rendering
    ctx["view_key"] = f"{id(view)}-{view.as_of}-{ctx['tables_query']}"
    return ctx


def supervisors_context(view: ClusterView, st: dict, tables: dict | None = None) -> dict:
    tables = tables or paging.parse({}, "supervisors")
    ctx = {"status": st, "now": view.as_of, "cluster": view}
    _tables(
        ctx,
        tables,
        {"supervisors": _by_host(view.supervisors.values())},
        {"supervisors": _supervisor_text},
    )
    # the details of the supervisors the table shows
    ctx["details"] = [(s, supervisor_workers(view, s)) for s in ctx["supervisors"]]
    return ctx


def supervisor_context(view: ClusterView, st: dict, supervisor_id: str) -> dict | None:
    sup = view.supervisors.get(supervisor_id)
    if sup is None:
        return None
    return {
        "status": st,
        "now": view.as_of,
        "supervisor": sup,
        "s": sup,
        "live_supervisor": sup.id,
        "workers": supervisor_workers(view, sup),
    }


def with_chart_range(key: PageKey, chart_range: str) -> PageKey:
    """A storm or component page's key with its charts' range (the default: the key as
    it was). A component's key then always has its tables' part, empty or not."""
    if chart_range == charts.DEFAULT_RANGE:
        return key
    if key[0] == "component" and len(key) == 4:
        key = (*key, "")
    return (*key, chart_range)


def chart_range_of(key: PageKey) -> str:
    position = {"storm": 3, "component": 5}.get(key[0])
    if position is None or len(key) <= position:
        return charts.DEFAULT_RANGE
    return charts.parse_range(key[position])


def _chart_ranges(chart_range: str, query: list) -> dict:
    """The charts' range and a link to each (the page's other parameters kept)."""
    links = []
    for name, _, words in charts.RANGES:
        pairs = query if name == charts.DEFAULT_RANGE else [*query, ("range", name)]
        links.append({"name": name, "words": words, "query": "?" + urlencode(pairs)})
    return {
        "chart_range": chart_range,
        "chart_range_words": charts.range_words(chart_range),
        "chart_ranges": links,
    }


def storm_context(
    storm, st: dict, window: str = DEFAULT_WINDOW, chart_range: str = charts.DEFAULT_RANGE
) -> dict:
    window_query = [("window", window)] if window != DEFAULT_WINDOW else []
    return {
        **_chart_ranges(chart_range, window_query),
        "status": st,
        "now": storm.as_of,
        "storm": storm,
        "window": window,
        "window_label": WINDOW_LABELS[window],
        "windows": _windows(),
        "workers": sorted(storm.workers, key=lambda w: (w.host or "", w.port)),
        "unreadable_tasks": [t for t in storm.tasks.values() if t.unreadable],
        "graph": graph.storm_drawing(storm, window, WINDOW_LABELS[window]),
        "charts": charts.charts(storm, chart_range=chart_range),
    }


#: each component's stream stats, by (storm view, component, window): a view never
#: changes, so a page of a big component sums its tasks' streams once per view, not per
#: request (what keeps a 2,000-task page as fast as a 200-task one)
_stream_sums: dict[tuple, tuple] = {}
_stream_sums_lock = threading.Lock()


def _stream_stats(storm, comp, window: str):
    key = (id(storm), comp.component_id, window)
    with _stream_sums_lock:
        hit = _stream_sums.get(key)
    if hit is not None and hit[0] is storm:
        return hit[1]
    sums = component_stream_stats(storm, comp, window)
    with _stream_sums_lock:
        if len(_stream_sums) >= 256:
            _stream_sums.clear()
        _stream_sums[key] = (storm, sums)
    return sums


def _streams(storm, comp, window: str) -> dict:
    """A component's per-stream stats in ``window``: its own streams, and system ones apart."""
    outputs, inputs = _stream_stats(storm, comp, window)
    return {
        "spout": comp.component_type == "spout",
        "outputs": [r for r in outputs if not r.system],
        "outputs_system": [r for r in outputs if r.system],
        "inputs": [r for r in inputs if not r.system],
        "inputs_system": [r for r in inputs if r.system],
    }


def component_context(
    storm,
    st: dict,
    component_id: str,
    window: str = DEFAULT_WINDOW,
    tables: dict | None = None,
    chart_range: str = charts.DEFAULT_RANGE,
):
    comp = storm.components.get(component_id)
    if comp is None:
        return None
    tables = tables or paging.parse({}, "component")
    ctx = {
        "streams": _streams(storm, comp, window),
        "status": st,
        "now": storm.as_of,
        "storm": storm,
        "component": comp,
        "live_component": comp.component_id,
        "charts": charts.charts(storm, comp.component_id, chart_range=chart_range),
        "window": window,
        "window_label": WINDOW_LABELS[window],
        "windows": _windows(),
    }
    window_query = [("window", window)] if window != DEFAULT_WINDOW else []
    range_query = [("range", chart_range)] if chart_range != charts.DEFAULT_RANGE else []
    _tables(
        ctx,
        tables,
        {
            "tasks": [storm.tasks[t] for t in sorted(comp.task_ids) if t in storm.tasks],
            "errors": comp.errors,
        },
        {"tasks": _task_text, "errors": _error_text},
        (*window_query, *range_query),
    )
    ctx.update(_chart_ranges(chart_range, window_query + parse_qsl(paging.encode(tables))))
    return ctx


def task_context(storm, st: dict, task_id: int):
    task = storm.tasks.get(task_id)
    if task is None:
        return None
    return {
        "status": st,
        "now": storm.as_of,
        "storm": storm,
        "task": task,
        "t": task,
        "live_component": task.component_id,
        "live_task": task.task_id,
        "errors": list(reversed(task.errors)),  # newest first
        "windows": _windows(),
    }


def errors_context(view: ClusterView, st: dict, error_filter, page: int = 1) -> dict:
    """The error feed's ``page`` (from 1, newest first) of the errors ``error_filter`` keeps
    (its own form filters them: no text filter of the table's)."""
    matching = error_filter.select(view)
    storms = _by_name(view.storms.values())
    extra = [(name, value) for name, value in error_filter.fields().items() if value]
    table = paging.table("errors", matching, _error_text, {"errors": ("", page)}, extra)
    return {
        "status": st,
        "now": view.as_of,
        "errors": table.rows,
        "errors_table": table,
        "matching": len(matching),
        "limit": ERROR_FEED_LIMIT,
        "storms": storms,
        "storm_names": {s.id: s.name for s in storms},
        "filters": error_filter.fields(),
    }


def context(key: PageKey, view: ClusterView) -> dict | None:
    """The context of the page ``key`` names, from ``view``; None when it shows nothing there."""
    kind = key[0]
    st = status(view.as_of, view.zk_connected, view.synced_at)
    if kind == "cluster":
        return cluster_context(view, st, paging.decode(key[1] if len(key) > 1 else "", kind))
    if kind == "supervisors":
        return supervisors_context(view, st, paging.decode(key[1] if len(key) > 1 else "", kind))
    if kind == "supervisor":
        return supervisor_context(view, st, key[1])
    storm = view.storms.get(key[1]) if kind in STORM_PAGES else None
    if storm is None:
        return None
    if kind == "storm":
        return storm_context(storm, st, key[2], chart_range_of(key))
    if kind == "component":
        tables = paging.decode(key[4] if len(key) > 4 else "", kind)
        return component_context(storm, st, key[2], key[3], tables, chart_range_of(key))
    if kind == "task":
        return task_context(storm, st, int(key[2]))
    raise ValueError(f"no such page: {kind}")


def render_regions(kind: str, ctx: dict) -> dict[str, str]:
    """The page's live regions and its status line, by element id, rendered from ``ctx``."""
    return {
        element: render_to_string(template(name), ctx)
        for element, name in STATUS_REGIONS + REGIONS[kind]
    }


def render_status(st: dict) -> dict[str, str]:
    """The status line's regions alone (ZooKeeper's connection changed)."""
    return {
        element: render_to_string(template(name), {"status": st})
        for element, name in STATUS_REGIONS
    }


def render_error_item(error, storm_name: str | None, now: float) -> str:
    """One error as every error list renders it (the feed, a component's, the cluster's)."""
    return render_to_string(
        "stormui/_error_item.html", {"e": error, "storm_name": storm_name, "now": now}
    )


def render_timeline_event(event, now: float) -> str:
    """One timeline event as the timeline and a storm's recent events list it."""
    return render_to_string("stormui/_timeline_event.html", {"ev": event, "now": now})


# -- the error history's pages (stormui.history.errors): read from the database, not live -----

#: the groups page's charts: the last day, or the range asked (at most a week of hours)
GROUP_CHART_HOURS = 24
GROUP_CHART_MAX_HOURS = 24 * 7


def _history_notes(query, now_ms: int) -> dict:
    return {
        "dropped": history_errors.dropped(now_ms - retention_ms()),
        "skipped": history_errors.skipped(query),
    }


def error_history_context(query, now_ms: int) -> dict:
    """The history page: the errors ``query`` selects, newest first, a page of them and the
    link to the next (older) page; how many of its tasks' errors ZooKeeper trimmed."""
    found = history_errors.history(query)
    fields = query.fields()
    limit = [("limit", str(query.limit))] if query.limit != history_errors.DEFAULT_LIMIT else []
    keep = [*fields.items(), *limit]
    errors = [
        ErrorView(
            storm_id=row["storm_id"],
            task_id=row["task_id"],
            component_id=row["component_id"] or None,
            time_secs=row["error_time"] // 1000,
            error=row["text"],
            host=row["host"] or None,
            port=row["port"],
        )
        for row in found.errors
    ]
    return {
        "now": now_ms / 1000,
        "errors": errors,
        "filters": fields,
        "times": {name: _datetime_local(getattr(query, name)) for name in ("since", "until")},
        "missed": found.missed,
        "next_query": "?" + urlencode([*keep, ("cursor", found.next)]) if found.next else None,
        "first_query": "?" + urlencode(keep) if query.cursor else None,
        "groups_query": "?"
        + urlencode(
            [(k, v) for k, v in fields.items() if k in ("storm", "component", "since", "until")]
        ),
        **_history_notes(query, now_ms),
    }


def error_groups_context(query, now_ms: int) -> dict:
    """The groups page: the groups of ``query``'s errors, newest last seen first, each with
    its counts per hour as a chart."""
    found = history_errors.groups(query)
    end = query.until if query.until is not None else now_ms
    hours = GROUP_CHART_HOURS
    if query.since is not None:
        hours = min(max(-(-(end - query.since) // 3_600_000), 1), GROUP_CHART_MAX_HOURS)
    start = end - end % 3_600_000 - (hours - 1) * 3_600_000
    history_errors.hourly(found, start, end, query)
    fields = query.fields()
    rows = []
    for n, g in enumerate(found):
        link = [("fingerprint", g.fingerprint)]
        link += [(k, v) for k, v in fields.items() if k in ("storm", "component", "since", "until")]
        rows.append(
            {
                "g": g,
                "first_secs": g.first_seen / 1000,
                "last_secs": g.last_seen / 1000,
                "history_query": "?" + urlencode(link),
                "chart": charts.hour_bars(
                    g.hours,
                    start,
                    hours,
                    chart_id=f"group-chart-{n}",
                    title="Errors per hour",
                ),
                "components": sorted(c for c in g.components if c),
                "hosts": sorted(h for h in g.hosts if h),
                "storms": sorted(g.storms),
                # the lists stop at LISTED: past it, "at least"
                "tasks": len(g.tasks),
                "more_tasks": len(g.tasks) >= ErrorGroup.LISTED,
            }
        )
    return {
        "now": now_ms / 1000,
        "groups": rows,
        "filters": fields,
        "times": {name: _datetime_local(getattr(query, name)) for name in ("since", "until")},
        "chart_hours": hours,
        "missed": history_errors.missed(query),
        "history_query": "?" + urlencode(fields),
        **_history_notes(query, now_ms),
    }


def _datetime_local(ms: int | None) -> str:
    """Epoch ms as an ``<input type="datetime-local">`` value, in UTC."""
    if ms is None:
        return ""
    try:
        return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M")
    except (OverflowError, OSError, ValueError):
        return ""
