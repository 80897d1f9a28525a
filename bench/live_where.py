"""Where a change waits on its way to the sockets, under a heartbeating cluster.

Starts a ZooKeeper (or uses ``--zk``) and the simulator (``manage.py
simulate``, a separate process) on the same root, then runs in this process
what daphne runs: a :class:`~clusterstate.mirror.ClusterMirror` and the view
builds and renders of :mod:`stormui.source` and :mod:`stormui.live`. A second
session (a separate :class:`ClusterState`) writes errors and storm changes one
at a time, and each is timed at every stage, on one clock:

- ``watch``: the ZooKeeper write to the watch notification on kazoo's thread
  (the session's socket, shared with the heartbeat reads unless
  ``--heartbeat-session``);
- ``apply``: the notification to the mirror telling its subscribers (the
  worker busy with a heartbeat batch or a resync meanwhile);
- ``view``: for storm changes, the build of the cluster view that holds it
  (``Source.cluster_view``: every storm, or only the changed ones);
- ``render``: the cluster page's regions from that view.

The relay's coalescing windows (``UPDATE_SECS``, ``ERROR_WINDOW_SECS``) come
on top: they are code, not measured here (see ``bench.live_latency`` for the
whole way to a browser's socket).

    .venv/bin/python -m bench.live_where --storms 25 --tasks-per-storm 200
    .venv/bin/python -m bench.live_where --storms 25 --tasks-per-storm 200 --heartbeat-session
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

from bench import live_servers
from bench.common import bench_cluster, percentile
from bench.live_latency import simulate_command, toggle_assignment
from clusterstate import (
    StormBase,
    mk_distributed_cluster_state,
    mk_storm_cluster_state,
)

ERROR_STORM = "bench-where-1-1"
TOGGLE_STORM = "bench-where-toggle-2-2"


def stats(values: list[float]) -> dict:
    ms = [v * 1000 for v in values]
    if not ms:
        return {"n": 0}
    return {
        "n": len(ms),
        "p50_ms": round(percentile(ms, 50), 1),
        "p99_ms": round(percentile(ms, 99), 1),
        "max_ms": round(max(ms), 1),
    }


class Probe:
    """Times of one write's stages, by key."""

    def __init__(self):
        self.lock = threading.Lock()
        self.events: dict[str, threading.Event] = {}
        self.times: dict[str, dict[str, float]] = {}

    def expect(self, key: str) -> threading.Event:
        with self.lock:
            self.times[key] = {"write": time.perf_counter()}
            self.events[key] = threading.Event()
            return self.events[key]

    def mark(self, key: str, stage: str) -> None:
        now = time.perf_counter()
        with self.lock:
            t = self.times.get(key)
            if t is not None and stage not in t:
                t[stage] = now
                if stage == "done":
                    self.events[key].set()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--zk", help="host:port of a running ZooKeeper (default: start one)")
    parser.add_argument("--samples", type=int, default=100, help="errors timed (default 100)")
    parser.add_argument("--toggles", type=int, default=30, help="storm changes timed")
    parser.add_argument("--storms", type=int, default=25)
    parser.add_argument("--tasks-per-storm", type=int, default=200)
    parser.add_argument("--heartbeat-secs", type=float, default=3.0)
    parser.add_argument("--error-rate", type=float, default=2.0)
    parser.add_argument(
        "--heartbeat-session",
        action="store_true",
        help="the mirror polls heartbeats on a session of its own",
    )
    args = parser.parse_args(argv)

    folder = Path(tempfile.mkdtemp(prefix="stormui-where-bench-"))
    zk, connect_string, root, conf = bench_cluster(args.zk, folder, "bench-where")
    env = live_servers.server_env(connect_string, root, folder / "db.sqlite3")
    os.environ.update(env)
    import django

    django.setup()
    from clusterstate.mirror import ClusterMirror
    from stormui import cluster, pages

    sim = simulate_command(args)
    proc = subprocess.Popen(
        sim,
        cwd=live_servers.ROOT,
        env=env,
        stdout=open(folder / "simulate.log", "wb"),
        stderr=subprocess.STDOUT,
    )
    states = []
    mirror = None
    try:
        time.sleep(8)  # let the simulated cluster fill in
        wstate = mk_distributed_cluster_state(conf)
        states.append(wstate)
        writer = mk_storm_cluster_state(wstate)
        state = mk_distributed_cluster_state(conf)
        states.append(state)
        kwargs = {}
        if args.heartbeat_session:
            kwargs["heartbeat_state"] = mk_distributed_cluster_state(conf)
            states.append(kwargs["heartbeat_state"])
        probe = Probe()
        error_folder = f"/taskerrors/{ERROR_STORM}/"
        storm_node = f"/storms/{TOGGLE_STORM}"

        def on_watch(event_type, path):
            if path.startswith(error_folder):
                for key in list(probe.times):
                    if key.startswith(path):
                        probe.mark(key, "watch")
            elif path == storm_node:
                probe.mark("toggle", "watch")

        state.register(on_watch)
        mirror = ClusterMirror(state, heartbeat_secs=args.heartbeat_secs, **kwargs)
        polls = []
        original_poll = mirror._poll_heartbeats

        def timed_poll():
            started = time.perf_counter()
            original_poll()
            polls.append(time.perf_counter() - started)

        mirror._poll_heartbeats = timed_poll

        def on_change(change):
            if change.kind == "errors":
                for e in change.errors:
                    for key in list(probe.times):
                        if key.endswith(e.error):
                            probe.mark(key, "done")
            elif change.kind == "storm" and change.storm_id == TOGGLE_STORM:
                probe.mark("toggle", "done")

        mirror.subscribe(on_change)
        mirror.start(wait=60)
        build_kwargs = {
            "connected": True,
            "synced_at": time.time(),
            "task_timeout": 30,
            "supervisor_timeout": 30,
        }
        time.sleep(2)

        def view_and_render():
            t0 = time.perf_counter()
            view = cluster.build_cluster_view(mirror, now=time.time(), **build_kwargs)
            t1 = time.perf_counter()
            key = ("cluster", "", 1)
            ctx = pages.context(key, view)
            pages.render_regions("cluster", ctx)
            return t1 - t0, time.perf_counter() - t1

        # errors
        stages = {"watch": [], "apply": [], "total": []}
        missed = 0
        for i in range(args.samples):
            task = i % 20
            text = f"where probe {i} {uuid.uuid4().hex[:8]}"
            key = f"{error_folder}{task}|{text}"
            done = probe.expect(key)
            writer.report_task_error(ERROR_STORM, task, text)
            if not done.wait(10):
                missed += 1
                continue
            t = probe.times[key]
            if "watch" in t:
                stages["watch"].append(t["watch"] - t["write"])
                stages["apply"].append(t["done"] - t["watch"])
            stages["total"].append(t["done"] - t["write"])
            time.sleep(random.uniform(0.05, 0.15))
        # storm changes
        writer.set_assignment(TOGGLE_STORM, toggle_assignment(writer))
        time.sleep(1)
        toggles = {"watch": [], "apply": [], "mirror_total": [], "view": [], "render": []}
        for i in range(args.toggles):
            probe.times.pop("toggle", None)
            done = probe.expect("toggle")
            if i % 2 == 0:
                writer.activate_storm(TOGGLE_STORM, StormBase("toggle", int(time.time())))
            else:
                writer.deactivate_storm(TOGGLE_STORM)
            if not done.wait(10):
                missed += 1
                continue
            t = probe.times["toggle"]
            if "watch" in t:
                toggles["watch"].append(t["watch"] - t["write"])
                toggles["apply"].append(t["done"] - t["watch"])
            toggles["mirror_total"].append(t["done"] - t["write"])
            build, render = view_and_render()
            toggles["view"].append(build)
            toggles["render"].append(render)
            time.sleep(random.uniform(0.3, 0.5))
        result = {
            "setup": {
                "storms": args.storms,
                "tasks": args.storms * args.tasks_per_storm,
                "heartbeat_secs": args.heartbeat_secs,
                "heartbeat_session": args.heartbeat_session,
            },
            "error": {k: stats(v) for k, v in stages.items()},
            "storm_change": {k: stats(v) for k, v in toggles.items()},
            "heartbeat_poll": stats(polls),
            "missed": missed,
            "heartbeats_polled": sum(
                len(mirror.heartbeat_tasks(s)) for s in mirror.heartbeat_storms()
            ),
        }
        print(json.dumps(result, indent=2))
    finally:
        if mirror is not None:
            mirror.stop()
        for s in states:
            s.close()
        live_servers.stop(proc)
        if zk is not None:
            zk.stop()


if __name__ == "__main__":
    main()
