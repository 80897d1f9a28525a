"""ZooKeeper write to socket message: how long a change takes to reach an open page.

Starts a ZooKeeper (or uses ``--zk``), optionally the simulator (``manage.py
simulate``) on the same root, and one daphne; opens ``/ws/errors/`` and
``/ws/cluster/``; then, one at a time with a pause between:

- writes an error (``report_task_error``) and times until the socket has it;
- activates or deactivates a storm and times until a ``cluster`` message shows it.

Times run from just before the ZooKeeper write to the message's arrival, in
this process (one clock). Prints p50/p99 and daphne's CPU and memory.

    .venv/bin/python -m bench.live_latency --samples 200
    .venv/bin/python -m bench.live_latency --no-simulator
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import random
import re
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from websockets.asyncio.client import connect

from bench import live_servers
from bench.common import bench_cluster, percentile
from clusterstate import (
    Assignment,
    StormBase,
    SupervisorInfo,
    mk_distributed_cluster_state,
    mk_storm_cluster_state,
)

ERROR_STORM = "bench-latency-1-1"
TOGGLE_STORM = "bench-toggle-2-2"


_STATUS = re.compile(r"^(\S+ \S+) INFO \S+ \{'task_beats': (\d+),")


def toggle_assignment(writer) -> Assignment:
    """The toggled storm's assignment, on a supervisor of the writer's own session: the
    simulator takes down, as leftovers of an earlier run, storms that no live supervisor
    other than its own runs."""
    writer.set_supervisor_heartbeat(
        "bench-toggle-sup", SupervisorInfo(int(time.time()), "bench-host", (6700,), 0)
    )
    return Assignment(
        "/nimbus/toggle",
        {"bench-toggle-sup": "bench-host"},
        {1: ("bench-toggle-sup", 6700)},
        {1: int(time.time())},
    )


def simulate_command(args) -> list[str]:
    """``manage.py simulate`` with the benchmark's cluster (``args``: storms, tasks per
    storm, heartbeat seconds, error rate), storms churning every 30 s."""
    return [
        sys.executable, "manage.py", "simulate",
        "--storms", str(args.storms),
        "--tasks-per-storm", str(args.tasks_per_storm),
        "--heartbeat-secs", str(args.heartbeat_secs),
        "--error-rate", str(args.error_rate),
        "--churn-secs", "30",
    ]  # fmt: skip


def beats_per_sec(log: Path) -> float | None:
    """Heartbeats the simulator wrote a second, from its status lines (every 10 s)."""
    points = []
    for line in log.read_text(errors="replace").splitlines():
        m = _STATUS.match(line)
        if m:
            at = datetime.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f")
            points.append((at.timestamp(), int(m.group(2))))
    if len(points) < 2:
        return None
    (t0, n0), (t1, n1) = points[0], points[-1]
    return round((n1 - n0) / (t1 - t0), 1)


def summary(values: list[float]) -> dict:
    ms = [v * 1000 for v in values]
    return {
        "n": len(ms),
        "p50_ms": round(percentile(ms, 50), 1),
        "p99_ms": round(percentile(ms, 99), 1),
        "max_ms": round(max(ms), 1),
    }


async def measure(args, base_url: str, writer, daphne_pid: int) -> dict:
    ws_base = base_url.replace("http://", "ws://")
    arrivals: dict[str, float] = {}
    waiters: dict[str, asyncio.Future] = {}
    statuses: list = []

    async def listen(ws, kind):
        async for raw in ws:
            now = time.perf_counter()
            m = json.loads(raw)
            if kind == "errors" and m["type"] == "error":
                key = m["error"]
            elif kind == "cluster" and m["type"] in ("cluster", "snapshot"):
                status = {s["id"]: s["status"] for s in m["storms"]}.get(TOGGLE_STORM)
                key = f"toggle {status}"
                statuses.append(status)
            else:
                continue
            arrivals.setdefault(key, now)
            fut = waiters.pop(key, None)
            if fut is not None and not fut.done():
                fut.set_result(now)

    async def timed(key: str, write) -> float:
        fut = asyncio.get_running_loop().create_future()
        waiters[key] = fut
        start = time.perf_counter()
        await asyncio.to_thread(write)
        arrived = await asyncio.wait_for(fut, 10)
        return arrived - start

    async with (
        connect(ws_base + "/ws/errors/", origin=base_url) as errors_ws,
        connect(ws_base + "/ws/cluster/", origin=base_url) as cluster_ws,
    ):
        await errors_ws.recv()
        await cluster_ws.recv()
        tasks = [
            asyncio.create_task(listen(errors_ws, "errors")),
            asyncio.create_task(listen(cluster_ws, "cluster")),
        ]
        before = live_servers.process_usage(daphne_pid)
        started = time.monotonic()
        error_times, misses = [], 0
        for i in range(args.samples):
            text = f"latency probe {i} {uuid.uuid4().hex[:8]}"
            try:
                error_times.append(
                    await timed(
                        text, lambda t=text, i=i: writer.report_task_error(ERROR_STORM, i % 20, t)
                    )
                )
            except TimeoutError:
                misses += 1
            await asyncio.sleep(random.uniform(0.05, 0.15))
        toggle_times, toggle_misses = [], 0
        # with an assignment, a deactivated storm stays listed, as INACTIVE
        await asyncio.to_thread(writer.set_assignment, TOGGLE_STORM, toggle_assignment(writer))
        await asyncio.sleep(1)
        for i in range(args.toggles):
            active = i % 2 == 0
            key = "toggle ACTIVE" if active else "toggle INACTIVE"

            def write(active=active):
                if active:
                    writer.activate_storm(TOGGLE_STORM, StormBase("toggle", int(time.time())))
                else:
                    writer.deactivate_storm(TOGGLE_STORM)

            try:
                toggle_times.append(await timed(key, write))
            except TimeoutError:
                toggle_misses += 1
            await asyncio.sleep(random.uniform(0.3, 0.5))
        wall = time.monotonic() - started
        after = live_servers.process_usage(daphne_pid)
        for t in tasks:
            t.cancel()
    return {
        "error_to_socket": {**summary(error_times), "missed": misses},
        "storm_change_to_cluster_message": {**summary(toggle_times), "missed": toggle_misses},
        "daphne_cpu_percent": round(100 * (after["cpu_secs"] - before["cpu_secs"]) / wall, 1),
        "daphne_rss_mb": round(after["rss_bytes"] / 2**20, 1),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--zk", help="host:port of a running ZooKeeper (default: start one)")
    parser.add_argument("--samples", type=int, default=200, help="errors timed (default 200)")
    parser.add_argument("--toggles", type=int, default=40, help="storm changes timed")
    parser.add_argument("--no-simulator", action="store_true", help="a quiet cluster")
    parser.add_argument("--storms", type=int, default=8, help="simulated storms (default 8)")
    parser.add_argument("--tasks-per-storm", type=int, default=50, help="default 50")
    parser.add_argument("--heartbeat-secs", type=float, default=3.0, help="default 3")
    parser.add_argument("--error-rate", type=float, default=2.0, help="simulated errors/s")
    args = parser.parse_args(argv)

    folder = Path(tempfile.mkdtemp(prefix="stormui-live-bench-"))
    zk, connect_string, root, conf = bench_cluster(args.zk, folder, "bench-live")
    env = live_servers.server_env(connect_string, root, folder / "db.sqlite3")
    procs = []
    state = mk_distributed_cluster_state(conf)
    writer = mk_storm_cluster_state(state)
    try:
        live_servers.migrate(env)
        if not args.no_simulator:
            sim = simulate_command(args)
            procs.append(
                subprocess.Popen(
                    sim,
                    cwd=live_servers.ROOT,
                    env=env,
                    stdout=open(folder / "simulate.log", "wb"),
                    stderr=subprocess.STDOUT,
                )
            )
        daphne, url = live_servers.start_daphne(env, folder)
        procs.append(daphne)
        time.sleep(3 if args.no_simulator else 8)  # let the simulated cluster fill in
        result = asyncio.run(measure(args, url, writer, daphne.pid))
        result["setup"] = {
            "simulator": None
            if args.no_simulator
            else {
                "storms": args.storms,
                "tasks": args.storms * args.tasks_per_storm,
                "heartbeat_secs": args.heartbeat_secs,
                "error_rate": args.error_rate,
                # written by the simulator's process; below tasks / heartbeat_secs, it fell behind
                "heartbeats_written_per_sec": beats_per_sec(folder / "simulate.log"),
            },
            "samples": args.samples,
        }
        print(json.dumps(result, indent=2))
    finally:
        for proc in reversed(procs):
            live_servers.stop(proc)
        writer.disconnect()
        state.close()
        if zk is not None:
            zk.stop()


if __name__ == "__main__":
    main()
