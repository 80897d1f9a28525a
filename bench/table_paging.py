"""A component page of 2,000 tasks against one of 200: paging keeps them alike.

    .venv/bin/python -m bench.table_paging --tasks 200 2000

For each size, a storm whose one bolt has that many tasks (each with a heartbeat's
stats and an error) is built as a view in memory (:func:`synthetic_view`: no
ZooKeeper, no mirror; what is timed is what a page costs once the source holds its
view), and the component page is requested ``--requests`` times, the sizes in turn,
through Django's test ``Client`` (the whole stack: middleware, routing, view,
template): its first page, and a filtered one (a filter every row matches, so that
both sizes show 100 rows and the larger filters ten times the rows). The page shows
100 tasks and 100 errors whatever the size. Target: p50 at 2,000 tasks within 25% of
that at 200.
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import sys
import tempfile

from .common import machine_note, percentile, time_gets

NOW = 1_700_000_000
STORM = "big-1-1700000000"
COMPONENT = "count"


def _stats(seed: int) -> dict:
    from clusterstate.records import WINDOWS

    n = {w: (seed % 97 + 10) * 20 * (i + 1) for i, w in enumerate(WINDOWS)}
    return {
        "type": "bolt",
        "rate": 20,
        "emitted": {w: {"default": n[w]} for w in WINDOWS},
        "transferred": {w: {"default": n[w]} for w in WINDOWS},
        "acked": {w: {"split": {"default": n[w]}} for w in WINDOWS},
        "failed": {w: {"split": {"default": n[w] // 50}} for w in WINDOWS},
        "process_latencies": {w: {"split": {"default": 1.5 + seed % 7}} for w in WINDOWS},
    }


def synthetic_view(
    tasks: int, *, storms: int = 1, supervisors: int = 1, error_every: int = 10, now=NOW
):
    """A cluster view: ``storms`` storms (the first, :data:`STORM`, has a bolt of ``tasks``
    tasks, an error on every ``error_every``-th, newest first; the others none) and
    ``supervisors`` supervisors, as :mod:`stormui.cluster` would build it."""
    from clusterstate.records import TaskError
    from stormui.cluster import (
        WINDOWS,
        ClusterView,
        ComponentView,
        ErrorView,
        StormView,
        SupervisorView,
        TaskView,
        WindowStats,
        WorkerView,
    )

    task_views, errors = {}, []
    for t in range(1, tasks + 1):
        host, port = f"host-{t % 4}.example", 6700 + t % 4
        errs = ()
        if t % error_every == 0:
            errs = (TaskError(f"java.lang.RuntimeException: task {t} failed", NOW - t),)
            errors.append(ErrorView(STORM, t, COMPONENT, NOW - t, errs[0].error, host, port))
        task_views[t] = TaskView(
            storm_id=STORM,
            task_id=t,
            component_id=COMPONENT,
            component_type="bolt",
            node_id=f"node-{t % 4}",
            host=host,
            port=port,
            start_time_secs=NOW - 600,
            uptime_secs=600,
            heartbeat_time_secs=NOW - 2,
            heartbeat_age_secs=2,
            alive=t % 7 != 0,
            stats=_stats(t),
            errors=errs,
        )
    errors.sort(key=lambda e: -e.time_secs)
    empty = {w: WindowStats(w) for w in WINDOWS}
    comp = ComponentView(
        storm_id=STORM,
        component_id=COMPONENT,
        component_type="bolt",
        task_ids=tuple(task_views),
        window_stats=empty,
        errors=tuple(errors),
        tasks_alive=sum(1 for t in task_views.values() if t.alive),
    )
    storm_views = {}
    for s in range(storms):
        sid = STORM if s == 0 else f"storm-{s:05d}-{NOW}"
        storm_views[sid] = StormView(
            id=sid,
            name=sid.rsplit("-", 1)[0],
            status="ACTIVE",
            launch_time_secs=NOW - 600,
            uptime_secs=600,
            master_code_dir=None,
            tasks=task_views if s == 0 else {},
            components={COMPONENT: comp} if s == 0 else {},
            workers=(),
            window_stats=empty,
            errors=tuple(errors) if s == 0 else (),
            as_of=now,
        )
    sups = {}
    for i in range(supervisors):
        worker = WorkerView(STORM, f"node-{i}", f"host-{i}.example", 6700, (), f"sup-{i:05d}")
        sups[f"sup-{i:05d}"] = SupervisorView(
            id=f"sup-{i:05d}",
            host=f"host-{i}.example",
            time_secs=int(now) - 3,
            uptime_secs=900,
            worker_ports=(6700, 6701),
            lost=i % 13 == 12,
            workers=(worker,),
        )
    return ClusterView(
        as_of=now,
        zk_connected=True,
        synced_at=now,
        storms=storm_views,
        supervisors=sups,
        slots_total=2 * supervisors,
        slots_used=supervisors,
        errors_last_10m=len(errors),
    )


class ViewSource:
    """A source that holds one view (what :func:`stormui.source.get_source` hands views)."""

    def __init__(self, view):
        self.view = view
        self.zk_connected = view.zk_connected
        self.synced_at = view.synced_at
        self.syncing = False  # the view is whole: pages render, actions run

    def sync_progress(self) -> tuple[int, int]:
        return (0, 0)

    def cluster_view(self):
        return self.view

    def storm_view(self, storm_id):
        return self.view.storms.get(storm_id)


def _setup_django():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "stormui.settings")
    os.environ.setdefault("STORMUI_STORE", "memory")
    db_dir = tempfile.mkdtemp(prefix="stormui-bench-db-")
    atexit.register(shutil.rmtree, db_dir, ignore_errors=True)
    os.environ["DATABASE_URL"] = f"sqlite:///{db_dir}/bench.sqlite3"
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)


def _serving(views, source):
    """Points the views at ``source``."""

    def serve():
        views.get_source = lambda: source

    return serve


def run(sizes, requests: int, warmup: int) -> list[dict]:
    """Each size's page timed in turn, request by request (a busy machine slows all alike)."""
    from django.test import Client

    from stormui import views

    client = Client(raise_request_exception=True)
    sources = {tasks: ViewSource(synthetic_view(tasks, error_every=1)) for tasks in sizes}
    rows = []
    for name, query in (("first page", ""), ("filtered", "?tasks_q=example&errors_q=failed")):
        url = f"/storms/{STORM}/components/{COMPONENT}/{query}"
        cases = {tasks: (url, _serving(views, source)) for tasks, source in sources.items()}
        times = time_gets(client, cases, requests, warmup=warmup)
        for tasks in sizes:
            row = {
                "tasks": tasks,
                "page": name,
                "n": len(times[tasks]),
                "p50": percentile(times[tasks], 50) * 1000,
                "p99": percentile(times[tasks], 99) * 1000,
            }
            rows.append(row)
            print(
                f"{tasks:>6} tasks  component page, {name:10}  n={row['n']:<4} "
                f"p50 {row['p50']:7.1f} ms  p99 {row['p99']:7.1f} ms",
                flush=True,
            )
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.table_paging",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--tasks", type=int, nargs="+", default=[200, 2000])
    parser.add_argument("--requests", type=int, default=200, help="per URL (default 200)")
    parser.add_argument("--warmup", type=int, default=5, help="unmeasured first (default 5)")
    args = parser.parse_args(argv)
    print(f"# {machine_note()}", flush=True)
    _setup_django()
    rows = run(args.tasks, args.requests, args.warmup)
    first = {r["tasks"]: r["p50"] for r in rows if r["page"] == "first page"}
    if len(first) > 1:
        small, big = min(first), max(first)
        print(f"# p50 at {big} tasks / at {small}: {first[big] / first[small]:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
