"""Every outward JSON shape of the dashboard's figures, side by side.

Storm's REST API shapes (camelCase, field names as in Storm's
``STORM-UI-REST-API.md``; "JSON API" in ``docs/contract/dashboard.md``) and
the live sockets' messages (snake_case, each with a ``type``; "Live updates"
there) are made here and nowhere else, from the views in
:mod:`stormui.cluster`, so that the two cannot drift apart.

Counts are ints, ports ints, ``alive``/``zkConnected`` booleans, task ids
ints, ``lastError`` a string (empty when none). Latencies are strings with
three decimals, as Storm gives them. Where a node could not be read the
object carries ``"unreadable": true``.
"""

from __future__ import annotations

import datetime as dt
from importlib import metadata
from urllib.parse import quote

from .cluster import (
    WINDOW_LABELS,
    WINDOWS,
    ClusterView,
    ComponentView,
    ErrorView,
    InputStreamStats,
    OutputStreamStats,
    StormView,
    SupervisorView,
    TaskView,
    WindowStats,
    WorkerView,
    component_stream_stats,
)
from .graph import Graph, GraphEdge, GraphNode
from .logs import log_link
from .pages import LATEST_ERRORS


def _stormui_version() -> str:
    try:
        return metadata.version("stormui")
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"


#: ``stormVersion``: what the dashboard knows of the cluster's version, never an invented one
STORM_VERSION = f"stormui {_stormui_version()} (Storm 0.5 cluster state)"

# -- small formats -------------------------------------------------------------


def format_time(secs: float | None) -> str | None:
    """An epoch time as Storm's pages show it, in UTC: ``2024-05-01 12:00:00 UTC``."""
    if secs is None:
        return None
    try:
        return dt.datetime.fromtimestamp(secs, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, OSError, ValueError):  # a time no date can hold: say what it was
        return f"{secs} (epoch seconds)"


def format_duration(secs: int | None) -> str | None:
    """Seconds as Storm's pretty uptime: ``6m 5s``, ``1d 0h 3m 0s``."""
    if secs is None:
        return None
    secs = max(int(secs), 0)
    days, rest = divmod(secs, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "m"), (seconds, "s")]
    while len(parts) > 1 and parts[0][0] == 0:
        parts.pop(0)
    return " ".join(f"{n}{unit}" for n, unit in parts)


def format_latency(ms: float | None) -> str:
    """A latency as Storm gives it: milliseconds, three decimals; ``"0.000"`` when none acked."""
    return f"{ms or 0.0:.3f}"


def api_window(window: str) -> str:
    """A window as Storm's API names it: ``":all-time"`` for all time, else its seconds."""
    return ":all-time" if window == "all-time" else window


def encode_id(value: str) -> str:
    """An id as Storm's ``encoded*`` fields give it: URL-encoded, ``/`` included."""
    return quote(value, safe="")


def _lapsed(now: float, secs: int) -> int:
    return max(int(now - secs), 0)


def _latency_key(component_type: str) -> str:
    return "completeLatency" if component_type == "spout" else "processLatency"


def _counts(ws: WindowStats, latency_key: str) -> dict:
    return {
        "emitted": ws.emitted,
        "transferred": ws.transferred,
        "acked": ws.acked,
        "failed": ws.failed,
        latency_key: format_latency(ws.latency_ms),
    }


def window_stats(ws: WindowStats, latency_key: str = "completeLatency") -> dict:
    """One window's row of ``topologyStats``, ``spoutSummary`` or ``boltStats``."""
    label = WINDOW_LABELS[ws.window]
    return {"window": api_window(ws.window), "windowPretty": label, **_counts(ws, latency_key)}


def bolt_window_stats(ws: WindowStats) -> dict:
    """One window's row of a bolt's ``boltStats``: what the 0.5 layout cannot know is null."""
    return {**window_stats(ws, "processLatency"), "executeLatency": None, "executed": None}


def _unreadable(out: dict, unreadable) -> dict:
    if unreadable:
        out["unreadable"] = True
    return out


# -- Storm's REST API ----------------------------------------------------------


def cluster_summary(view: ClusterView) -> dict:
    """``GET /api/v1/cluster/summary``."""
    return {
        "stormVersion": STORM_VERSION,
        "nimbusUptime": None,  # the 0.5 layout has no record of Nimbus
        "supervisors": view.supervisors_present,
        "topologies": len(view.storms),
        "slotsTotal": view.slots_total,
        "slotsUsed": view.slots_used,
        "slotsFree": view.slots_free,
        "executorsTotal": view.tasks_total,  # every task is its own executor
        "tasksTotal": view.tasks_total,
        "tasksAlive": view.tasks_alive,
        "tasksDead": view.tasks_dead,
        "errorsLast10m": view.errors_last_10m,
        "zkConnected": bool(view.zk_connected),
        "syncedAt": format_time(view.synced_at),
    }


def supervisor_summary(sup: SupervisorView) -> dict:
    """One supervisor of ``GET /api/v1/supervisor/summary``."""
    out = {
        "id": sup.id,
        "host": sup.host,
        "uptimeSeconds": sup.uptime_secs,
        "uptime": format_duration(sup.uptime_secs),
        "slotsTotal": sup.slots_total,
        "slotsUsed": sup.slots_used,
        "lost": sup.lost,
    }
    return _unreadable(out, sup.unreadable)


def supervisors_summary(view: ClusterView) -> dict:
    """``GET /api/v1/supervisor/summary``: present supervisors, and lost ones still assigned."""
    return {"supervisors": [supervisor_summary(s) for s in view.supervisors.values()]}


def topology_summary(storm: StormView) -> dict:
    """One storm of ``GET /api/v1/topology/summary``; also the head of its detail."""
    out = {
        "id": storm.id,
        "name": storm.name,
        "status": storm.status,
        "uptimeSeconds": storm.uptime_secs,
        "uptime": format_duration(storm.uptime_secs),
        "tasksTotal": storm.tasks_total,
        "executorsTotal": storm.tasks_total,
        "tasksAlive": storm.tasks_alive,
        "workersTotal": storm.workers_total,
    }
    return _unreadable(out, storm.unreadable)


def topologies_summary(view: ClusterView) -> dict:
    """``GET /api/v1/topology/summary``."""
    return {"topologies": [topology_summary(s) for s in view.storms.values()]}


def _last_error(comp: ComponentView, now: float) -> dict:
    e = comp.last_error
    if e is None:
        return {
            "lastError": "",
            "errorTime": None,
            "errorHost": None,
            "errorPort": None,
            "errorLapsedSecs": None,
            "errorWorkerLogLink": None,
        }
    return {
        "lastError": e.error,
        "errorTime": e.time_secs,  # epoch seconds, as Storm gives it here
        "errorHost": e.host,
        "errorPort": e.port,
        "errorLapsedSecs": _lapsed(now, e.time_secs),
        "errorWorkerLogLink": log_link(e.host, e.port, e.storm_id, e.task_id),
    }


def component_summary(comp: ComponentView, window: str, now: float) -> dict:
    """A row of a topology's ``spouts`` (``spoutId``) or ``bolts`` (``boltId``)."""
    spout = comp.component_type == "spout"
    id_key = "spoutId" if spout else "boltId"
    out = {
        id_key: comp.component_id,
        ("encodedSpoutId" if spout else "encodedBoltId"): encode_id(comp.component_id),
        "componentType": comp.component_type,
        "tasks": len(comp.task_ids),
        "executors": len(comp.task_ids),
        "tasksAlive": comp.tasks_alive,
        **_counts(comp.window_stats[window], _latency_key(comp.component_type)),
        **_last_error(comp, now),
    }
    if not spout:  # what the 0.5 layout cannot know
        out.update(capacity=None, executeLatency=None, executed=None)
    return out


def worker(w: WorkerView, storm: StormView | None = None) -> dict:
    """A row of a topology's ``workers`` (and of a supervisor's)."""
    tasks = [storm.tasks[t] for t in w.task_ids if t in storm.tasks] if storm is not None else []
    uptimes = [t.uptime_secs for t in tasks if t.uptime_secs is not None]
    uptime = max(uptimes) if uptimes else None
    num_tasks: dict[str, int] = {}
    for t in tasks:
        if t.component_id is not None:
            num_tasks[t.component_id] = num_tasks.get(t.component_id, 0) + 1
    return {
        "host": w.host,
        "port": w.port,
        "supervisorId": w.supervisor_id,
        "topologyId": w.storm_id,
        "topologyName": storm.name if storm is not None else w.storm_id,
        "tasks": len(w.task_ids),
        "executors": len(w.task_ids),
        "taskIds": list(w.task_ids),
        "uptimeSeconds": uptime,  # its longest-running task's
        "uptime": format_duration(uptime),
        "componentNumTasks": dict(sorted(num_tasks.items())),
        "workerLogLink": log_link(w.host, w.port, w.storm_id),
    }


def topology_detail(storm: StormView, window: str) -> dict:
    """``GET /api/v1/topology/<id>?window=``: stats by every window, components for ``window``."""
    now = storm.as_of
    return {
        **topology_summary(storm),
        "window": api_window(window),
        "windowHint": WINDOW_LABELS[window],
        "topologyStats": [window_stats(storm.window_stats[w]) for w in WINDOWS],
        "spouts": [component_summary(c, window, now) for c in storm.spouts],
        "bolts": [component_summary(c, window, now) for c in storm.bolts],
        "workers": [worker(w, storm) for w in storm.workers],
    }


def topology_workers(storm: StormView) -> dict:
    """``GET /api/v1/topology-workers/<id>``: its workers' hosts and ports."""
    return {"hostPortList": [{"host": w.host, "port": w.port} for w in storm.workers]}


def supervisor_detail(view: ClusterView, sup: SupervisorView) -> dict:
    """``GET /api/v1/supervisor?id=`` (or ``host=``): its summary and its workers."""
    workers = sorted(sup.workers, key=lambda w: (w.port, w.storm_id))
    return {
        **supervisor_summary(sup),
        "workers": [worker(w, view.storms.get(w.storm_id)) for w in workers],
    }


def task_stats(task: TaskView, window: str) -> dict:
    """A row of a component's ``taskStats`` (``id`` the task id)."""
    bolt = task.component_type != "spout"
    out = {
        "id": task.task_id,
        "taskId": task.task_id,
        "host": task.host,
        "port": task.port,
        "uptimeSeconds": task.uptime_secs,
        "uptime": format_duration(task.uptime_secs),
        "alive": task.alive,
        "heartbeatAgeSecs": task.heartbeat_age_secs,
        **_counts(task.window_stats[window], _latency_key(task.component_type)),
        "workerLogLink": log_link(task.host, task.port, task.storm_id, task.task_id),
    }
    if bolt:
        out.update(executeLatency=None, executed=None)
    return _unreadable(out, task.unreadable)


def executor_stats(task: TaskView, window: str) -> dict:
    """A row of a component's ``executorStats``: a task, as Storm's executor ``"[3-3]"``."""
    return {**task_stats(task, window), "id": f"[{task.task_id}-{task.task_id}]"}


def output_stats(row: OutputStreamStats, spout: bool) -> dict:
    """A row of a component's ``outputStats``."""
    out = {"stream": row.stream, "emitted": row.emitted, "transferred": row.transferred}
    if spout:
        out.update(
            completeLatency=format_latency(row.latency_ms), acked=row.acked, failed=row.failed
        )
    return _unreadable(out, row.unreadable)


def input_stats(row: InputStreamStats) -> dict:
    """A row of a bolt's ``inputStats``."""
    out = {
        "component": row.component,
        "encodedComponent": encode_id(row.component),
        "stream": row.stream,
        "processLatency": format_latency(row.latency_ms),
        "acked": row.acked,
        "failed": row.failed,
        "executeLatency": None,
        "executed": None,
    }
    return _unreadable(out, row.unreadable)


def component_error(e: ErrorView, now: float) -> dict:
    """A row of a component's ``componentErrors``."""
    ms = e.time_secs * 1000
    return {
        "taskId": e.task_id,
        "errorTime": ms,  # epoch milliseconds, as Storm gives it here
        "time": ms,
        "errorHost": e.host,
        "errorPort": e.port,
        "error": e.error,
        "errorLapsedSecs": _lapsed(now, e.time_secs),
        "errorWorkerLogLink": log_link(e.host, e.port, e.storm_id, e.task_id),
    }


def component_detail(
    storm: StormView, comp: ComponentView, window: str, *, system: bool = False
) -> dict:
    """``GET /api/v1/topology/<id>/component/<component-id>?window=``.

    ``system``: include system streams (``__...``) in the stream stats, as Storm's ``sys=true``.
    """
    spout = comp.component_type == "spout"
    latency_key = _latency_key(comp.component_type)
    now = storm.as_of
    outputs, inputs = component_stream_stats(storm, comp, window)
    if not system:
        outputs = [r for r in outputs if not r.system]
        inputs = [r for r in inputs if not r.system]
    tasks = [storm.tasks[t] for t in comp.task_ids if t in storm.tasks]
    out = {
        "id": comp.component_id,
        "encodedId": encode_id(comp.component_id),
        "name": storm.name,
        "topologyId": storm.id,
        "encodedTopologyId": encode_id(storm.id),
        "topologyStatus": storm.status,
        "componentType": comp.component_type,
        "tasks": len(comp.task_ids),
        "executors": len(comp.task_ids),
        "tasksAlive": comp.tasks_alive,
        "window": api_window(window),
        "windowHint": WINDOW_LABELS[window],
        **_counts(comp.window_stats[window], latency_key),
    }
    if spout:
        out["spoutSummary"] = [window_stats(comp.window_stats[w]) for w in WINDOWS]
    else:
        out["boltStats"] = [bolt_window_stats(comp.window_stats[w]) for w in WINDOWS]
        out["inputStats"] = [input_stats(r) for r in inputs]
    out["outputStats"] = [output_stats(r, spout) for r in outputs]
    out["executorStats"] = [executor_stats(t, window) for t in tasks]
    out["taskStats"] = [task_stats(t, window) for t in tasks]
    out["componentErrors"] = [component_error(e, now) for e in comp.errors]
    return out


def _rate(value: float | None) -> float | None:
    """Tuples per second, to the thousandth; null when unknown (no two heartbeats yet)."""
    return round(value, 3) if value is not None else None


def graph_node(n: GraphNode) -> dict:
    """A node of a topology's graph: a component, or an input that has no tasks (``missing``)."""
    e = n.last_error
    return {
        "id": n.id,
        "type": n.type,
        "tasks": n.tasks,
        "tasksAlive": n.tasks_alive,
        "emitted": n.emitted,
        "transferred": n.transferred,
        "acked": n.acked,
        "failed": n.failed,
        _latency_key(n.type): format_latency(n.latency_ms),
        "lastError": e.error if e is not None else "",
        "errorTime": e.time_secs if e is not None else None,
        "recentError": n.recent_error,
        "missing": n.missing,
        # tuples per second (stormui.rates); null until two heartbeats gave one
        "emittedRate": _rate(n.rates.emitted),
        "ackedRate": _rate(n.rates.acked),
        "failedRate": _rate(n.rates.failed),
    }


def graph_edge(e: GraphEdge) -> dict:
    return {
        "from": e.source,
        "to": e.target,
        "stream": e.stream,
        "acked": e.acked,
        "failed": e.failed,
        "processLatency": format_latency(e.process_latency_ms),
        "ackedRate": _rate(e.acked_rate),
        "unreadable": e.unreadable,
    }


def topology_graph(g: Graph) -> dict:
    """``GET /api/v1/topology/<id>/graph?window=``."""
    return {
        "topologyId": g.storm_id,
        "window": api_window(g.window),
        "windowHint": WINDOW_LABELS[g.window],
        "nodes": [graph_node(n) for n in g.nodes],
        "edges": [graph_edge(e) for e in g.edges],
    }


# -- socket messages (snake_case, each with a "type") ------------------------------


def error_message(e: ErrorView) -> dict:
    """An error as the live feed sends it (and ``/api/errors`` lists it)."""
    return {
        "type": "error",
        "storm_id": e.storm_id,
        "task_id": e.task_id,
        "component_id": e.component_id,
        "time_secs": e.time_secs,
        "error": e.error,
        "host": e.host,
        "port": e.port,
    }


def errors_feed(errors) -> dict:
    """``GET /api/errors``: the feed's errors, newest first, each as its socket message."""
    return {"errors": [error_message(e) for e in errors]}


def _status(view_as_of: float, zk_connected: bool, synced_at: float | None) -> dict:
    return {"as_of": view_as_of, "zk_connected": bool(zk_connected), "synced_at": synced_at}


def storm_row(storm: StormView) -> dict:
    """A storm in a socket message."""
    return {
        "id": storm.id,
        "name": storm.name,
        "status": storm.status,
        "uptime_secs": storm.uptime_secs,
        "tasks_total": storm.tasks_total,
        "tasks_alive": storm.tasks_alive,
        "workers_total": storm.workers_total,
        "unreadable": storm.unreadable,
    }


def supervisor_worker_row(w: WorkerView, storm: StormView | None) -> dict:
    """A worker of a supervisor in a socket message: which of its tasks are dead, not the
    tasks themselves (the cluster's message goes to every cluster page)."""
    tasks = storm.tasks if storm is not None else {}
    known = [tasks[t] for t in w.task_ids if t in tasks]
    return {
        "storm_id": w.storm_id,
        "port": w.port,
        "task_ids": list(w.task_ids),
        "tasks_alive": sum(1 for t in known if t.alive),
        "dead_task_ids": [t.task_id for t in known if not t.alive],
    }


def supervisor_row(sup: SupervisorView, storms: dict[str, StormView] | None = None) -> dict:
    """A supervisor in a socket message, with its workers when ``storms`` is given."""
    out = {
        "id": sup.id,
        "host": sup.host,
        "uptime_secs": sup.uptime_secs,
        "slots_total": sup.slots_total,
        "slots_used": sup.slots_used,
        "lost": sup.lost,
        "unreadable": sup.unreadable,
        "present": sup.present,
        "time_secs": sup.time_secs,
        "worker_ports": list(sup.worker_ports),
    }
    if storms is not None:
        workers = sorted(sup.workers, key=lambda w: (w.port, w.storm_id))
        out["workers"] = [supervisor_worker_row(w, storms.get(w.storm_id)) for w in workers]
    return out


def cluster_snapshot(view: ClusterView) -> dict:
    """What ``/ws/cluster/`` sends on connect (and after any resync)."""
    return {
        "type": "snapshot",
        **_status(view.as_of, view.zk_connected, view.synced_at),
        "summary": {
            "supervisors": view.supervisors_present,
            "storms": len(view.storms),
            "slots_total": view.slots_total,
            "slots_used": view.slots_used,
            "slots_free": view.slots_free,
            "tasks_total": view.tasks_total,
            "tasks_alive": view.tasks_alive,
            "tasks_dead": view.tasks_dead,
            "errors_last_10m": view.errors_last_10m,
        },
        "storms": [storm_row(s) for s in view.storms.values()],
        "supervisors": [supervisor_row(s, view.storms) for s in view.supervisors.values()],
        "latest_errors": [error_message(e) for e in view.recent_errors[:LATEST_ERRORS]],
    }


def cluster_update(view: ClusterView) -> dict:
    """``/ws/cluster/``'s message after a change: the whole page's figures again, coalesced."""
    return {**cluster_snapshot(view), "type": "cluster"}


def _window_row(ws: WindowStats) -> dict:
    return {
        "window": ws.window,
        "emitted": ws.emitted,
        "transferred": ws.transferred,
        "acked": ws.acked,
        "failed": ws.failed,
        "latency_ms": ws.latency_ms,
    }


def component_row(comp: ComponentView) -> dict:
    """A component in a socket message, with its stats for every window."""
    last = comp.last_error
    return {
        "id": comp.component_id,
        "type": comp.component_type,
        "tasks": len(comp.task_ids),
        "tasks_alive": comp.tasks_alive,
        "stats": {w: _window_row(comp.window_stats[w]) for w in WINDOWS},
        "last_error": error_message(last) if last is not None else None,
    }


def task_row(task: TaskView, *, with_stats: bool = False) -> dict:
    """A task in a socket message: its state; its stats by window and last error only when
    asked (a component's or task's page asks for its component's tasks: a storm may have
    thousands)."""
    out = {
        "id": task.task_id,
        "component_id": task.component_id,
        "node_id": task.node_id,
        "host": task.host,
        "port": task.port,
        "alive": task.alive,
        "uptime_secs": task.uptime_secs,
        "start_time_secs": task.start_time_secs,
        "heartbeat_time_secs": task.heartbeat_time_secs,
        "heartbeat_age_secs": task.heartbeat_age_secs,
        "errors": len(task.errors),
        "unreadable": bool(task.unreadable),
    }
    if with_stats:
        last = task.last_error
        out["stats"] = {w: _window_row(task.window_stats[w]) for w in WINDOWS}
        out["last_error"] = (
            {"time_secs": last.time_secs, "error": last.error} if last is not None else None
        )
    return out


def storm_snapshot(
    storm: StormView,
    *,
    zk_connected: bool,
    synced_at: float | None = None,
    component_id: str | None = None,
) -> dict:
    """What ``/ws/storms/<id>/`` sends on connect (and after any resync).

    ``component_id``: for a component's or a task's page (``?component=``), the message is
    narrowed to that component, its tasks and their workers, and each task carries its stats
    by window and its last error. An empty narrowed message means the component is gone.
    """
    if component_id is None:
        spouts, bolts = storm.spouts, storm.bolts
        tasks = [task_row(t) for t in storm.tasks.values()]
        workers = storm.workers
    else:
        comps = [storm.components[component_id]] if component_id in storm.components else []
        spouts = [c for c in comps if c.component_type == "spout"]
        bolts = [c for c in comps if c.component_type != "spout"]
        ids = {t for c in comps for t in c.task_ids}
        tasks = [task_row(storm.tasks[t], with_stats=True) for t in sorted(ids) if t in storm.tasks]
        workers = [w for w in storm.workers if ids.intersection(w.task_ids)]
    out = {
        "type": "snapshot",
        "storm_id": storm.id,
        **_status(storm.as_of, zk_connected, synced_at),
        "storm": storm_row(storm),
        "stats": {w: _window_row(storm.window_stats[w]) for w in WINDOWS},
        "spouts": [component_row(c) for c in spouts],
        "bolts": [component_row(c) for c in bolts],
        "workers": [
            {
                "node_id": w.node_id,
                "host": w.host,
                "port": w.port,
                "task_ids": list(w.task_ids),
            }
            for w in workers
        ],
        "tasks": tasks,
    }
    if component_id is not None:
        out["component_id"] = component_id
    return out


def storm_update(
    storm: StormView,
    *,
    zk_connected: bool,
    synced_at: float | None = None,
    component_id: str | None = None,
) -> dict:
    """``/ws/storms/<id>/``'s message after a change: the storm's figures again, coalesced."""
    snapshot = storm_snapshot(
        storm, zk_connected=zk_connected, synced_at=synced_at, component_id=component_id
    )
    return {**snapshot, "type": "storm"}


def storm_removed(storm_id: str, as_of: float) -> dict:
    """``/ws/storms/<id>/``'s message when the storm is gone from ZooKeeper."""
    return {"type": "storm", "storm_id": storm_id, "as_of": as_of, "removed": True}


def status_message(zk_connected: bool, synced_at: float | None) -> dict:
    """Every socket's message when ZooKeeper's connection changes."""
    return {"type": "status", "zk_connected": bool(zk_connected), "synced_at": synced_at}


def errors_snapshot(view: ClusterView, errors, *, resync: bool = False) -> dict:
    """What ``/ws/errors/`` sends on connect: the newest errors, newest first.

    ``resync``: sent instead of updates that were dropped (a slow socket, a
    ZooKeeper reconnect): the feed replaces what it shows.
    """
    out = {
        "type": "snapshot",
        **_status(view.as_of, view.zk_connected, view.synced_at),
        "errors": [error_message(e) for e in errors],
    }
    if resync:
        out["resync"] = True
    return out


def timeline_event(event) -> dict:
    """A timeline event as the API answers it (``docs/contract/history.md``)."""
    return {
        "time": event.time,
        "kind": event.kind,
        "stormId": event.storm_id,
        "taskId": event.task_id,
        "supervisorId": event.supervisor_id,
        "user": event.user,
        "detail": event.detail or None,
    }


def timeline(events, next_cursor: str | None) -> dict:
    return {"events": [timeline_event(e) for e in events], "next": next_cursor}


def series(metric: str, unit: str, points: list) -> dict:
    """A storm's or component's time series (``/api/v1/topology/<id>/series``): points
    ``[epoch_ms, value]``, oldest first, value null where unknown."""
    return {"metric": metric, "unit": unit, "points": points}
