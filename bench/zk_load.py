"""ZooKeeper's load with 1 and with 4 daphnes: one reader however many serve.

    .venv/bin/python -m bench.zk_load --tasks 2000 --secs 20

Starts a ZooKeeper (or uses ``--zk``), writes a cluster (:mod:`bench.common`)
whose heartbeats a separate process rewrites every ``--beat-secs``, then, one
set-up after the other on the same cluster, measures over ``--secs`` seconds
what ZooKeeper's four-letter words count (the 4lw whitelist of
:mod:`clusterstate.zkserver` allows ``mntr`` and ``cons``): packets received
from the dashboard's sessions (``cons``, per session: every read and every
watch set is one; the heartbeat writers' sessions, there before, left out),
and the watches held (``mntr``). Set-ups:

- ``baseline``: no dashboard (the heartbeat writers alone);
- ``redis-1``: Redis, ``manage.py relay`` (the leader) and 1 daphne;
- ``redis-4``: Redis, ``manage.py relay`` and 4 daphnes (followers);
- ``alone-4``: 4 daphnes without Redis, each its own mirror (as before the
  replica: for contrast).

Each daphne is ready (``/readyz`` 200, its mirror synced) before the window
starts. Target: ``redis-4`` within 30 % of ``redis-1``, in the dashboard's
packets a second and in watches.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from bench import live_servers
from bench.common import ClusterSpec, HeartbeatWriters, bench_cluster, machine_note, populate
from clusterstate.zkserver import four_letter_word


def mntr(connect: str) -> dict[str, str]:
    host, port = connect.rsplit(":", 1)
    text = four_letter_word(host, int(port), "mntr", timeout=5)
    return dict(line.split("\t", 1) for line in text.splitlines() if "\t" in line)


def wait_ready(url: str, proc, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=10) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{url} not ready")
        time.sleep(0.2)


def sessions(connect: str) -> dict[str, int]:
    """Packets received from each session (``cons``), by session id."""
    host, port = connect.rsplit(":", 1)
    text = four_letter_word(host, int(port), "cons", timeout=5)
    return {sid: int(n) for n, sid in re.findall(r"recved=(\d+),sent=\d+,sid=(0x[0-9a-f]+)", text)}


def window(connect: str, secs: float, others: set[str]) -> dict:
    """ZooKeeper's counters over ``secs`` seconds: packets a second (all, and from the
    dashboard's sessions alone: not ``others``, the heartbeat writers'), watches, sessions."""
    before, before_sessions = mntr(connect), sessions(connect)
    started = time.monotonic()
    watches = []
    while time.monotonic() - started < secs:
        time.sleep(min(1.0, secs))
        watches.append(int(mntr(connect)["zk_watch_count"]))
    after, after_sessions = mntr(connect), sessions(connect)
    elapsed = time.monotonic() - started
    received = int(after["zk_packets_received"]) - int(before["zk_packets_received"])
    ours = [
        n - before_sessions.get(sid, 0) for sid, n in after_sessions.items() if sid not in others
    ]
    return {
        "packets_received_per_sec": round(received / elapsed, 1),
        "dashboard_packets_per_sec": round(sum(ours) / elapsed, 1),
        "dashboard_sessions": len(ours),
        "per_session_per_sec": sorted(round(n / elapsed, 1) for n in ours),
        "watches": max(watches),
        "sessions": int(after["zk_num_alive_connections"]),
    }


def run_setup(name, args, connect, root, folder, redis_url) -> dict:
    procs = []
    env = live_servers.server_env(
        connect,
        root,
        folder / f"{name}.sqlite3",
        STORMUI_SCHEDULER_THREAD="false",
        **({"REDIS_URL": redis_url} if redis_url else {}),
    )
    try:
        live_servers.migrate(env)
        if redis_url:
            procs.append(live_servers.start_relay(env, folder))
        daphnes = 1 if name == "redis-1" else 4
        started = []
        for i in range(daphnes):
            port = live_servers.free_port()
            proc = subprocess.Popen(
                [str(live_servers.VENV_BIN / "daphne"), "-b", "127.0.0.1", "-p", str(port)]
                + ["stormui.asgi:application"],
                cwd=live_servers.ROOT,
                env=env,
                stdout=open(folder / f"{name}-daphne-{i}.log", "wb"),
                stderr=subprocess.STDOUT,
            )
            procs.append(proc)
            started.append((f"http://127.0.0.1:{port}", proc))
        for url, proc in started:  # /readyz starts the source; 200 once its mirror is synced
            wait_ready(url, proc)
        time.sleep(args.settle)  # the cold loads' reads are not the steady load
        return window(connect, args.secs, args.others)
    finally:
        for proc in reversed(procs):
            live_servers.stop(proc)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--zk", help="host:port of a running ZooKeeper (default: start one)")
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--beat-secs", type=float, default=3.0)
    parser.add_argument("--secs", type=float, default=20.0, help="each window (default 20)")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds before a window")
    args = parser.parse_args(argv)

    folder = Path(tempfile.mkdtemp(prefix="stormui-zkload-bench-"))
    zk, connect, root, _conf = bench_cluster(args.zk, folder, "bench-zkload")
    spec = ClusterSpec.for_tasks(args.tasks)
    redis = None
    results = {"machine": machine_note(), "cluster": spec.describe(), "beat_secs": args.beat_secs}
    try:
        populate(connect, root, spec)
        redis, redis_url = live_servers.start_redis(folder)
        with HeartbeatWriters(connect, root, spec, beat_secs=args.beat_secs):
            time.sleep(args.settle)
            args.others = set(sessions(connect))  # the heartbeat writers'
            results["baseline"] = window(connect, args.secs, args.others)
            for name in ("redis-1", "redis-4", "alone-4"):
                results[name] = run_setup(
                    name, args, connect, root, folder, None if name == "alone-4" else redis_url
                )
        one = results["redis-1"]
        for name in ("redis-4", "alone-4"):
            r = results[name]
            results[f"{name} / redis-1"] = {
                "packets": round(
                    r["dashboard_packets_per_sec"] / max(one["dashboard_packets_per_sec"], 0.1), 2
                ),
                "watches": round(r["watches"] / max(one["watches"], 1), 2),
            }
        results["load_average_at_the_end"] = round(os.getloadavg()[0], 1)
        print(json.dumps(results, indent=1))
    finally:
        live_servers.stop(redis)
        if zk is not None:
            zk.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
