"""How soon the mirror and a served dashboard notice a ZooKeeper outage and recover from it.

Starts a standalone ZooKeeper, a small simulated cluster on it (3 supervisors, 3 storms of
4 tasks beating every 0.5 s, an error a second), a :class:`ClusterMirror` in this process
and a daphne serving the dashboard. Then, ``--repeat`` times for each pause: stops
ZooKeeper, waits for both to say so, keeps it stopped for the pause, starts it again and
times, from its return: the mirror equal to a fresh read, the mirror connected, the API
(``/api/v1/cluster/summary``) saying ``zkConnected``, and a new error reaching the mirror's
subscriber. A pause of 0 is shorter than the 4 s session timeout; 8 s is twice as long.

Goals: the outage shown within 2 s of the stop; within 5 s of ZooKeeper's return, the
mirror equal to a fresh read and connected, and changes flowing.

    .venv/bin/python -m bench.outage --repeat 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

from bench import live_servers
from bench.common import FAULT_CLUSTER, start_zookeeper
from clusterstate import mk_distributed_cluster_state, mk_storm_cluster_state
from clusterstate.mirror import ClusterMirror
from clusterstate.simulate import Simulator

SESSION_TIMEOUT_MS = 4000
STUCK_SECS = 120.0


def wait(predicate, what: str, timeout: float = STUCK_SECS, interval: float = 0.02) -> float:
    """Poll until ``predicate()`` holds; return when, by ``time.monotonic()``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return time.monotonic()
        except Exception:  # a read while ZooKeeper is away: try again
            pass
        if time.monotonic() >= deadline:
            raise RuntimeError(f"{what}: not after {timeout}s")
        time.sleep(interval)


def same_as_zookeeper(mirror, conf) -> bool:
    """The mirror's storms, tasks and errors as a fresh session reads them."""
    state = mk_distributed_cluster_state(conf, timeout=5)
    try:
        fresh = mk_storm_cluster_state(state)
        if sorted(mirror.active_storms()) != sorted(fresh.active_storms()):
            return False
        for storm_id in fresh.active_storms():
            if sorted(mirror.task_ids(storm_id)) != sorted(fresh.task_ids(storm_id)):
                return False
            for task_id in fresh.task_ids(storm_id):
                mine = [e.error for e in mirror.task_errors(storm_id, task_id)]
                if mine != [e.error for e in fresh.task_errors(storm_id, task_id)]:
                    return False
        return True
    finally:
        state.close()


def api_connected(base_url: str) -> bool:
    with urllib.request.urlopen(base_url + "/api/v1/cluster/summary", timeout=10) as response:
        return json.load(response)["zkConnected"]


def one_outage(zk, pause: float, mirror, conf, base_url, writer) -> dict:
    delivered = threading.Event()
    text = f"after the outage {uuid.uuid4().hex}"

    def on_change(change):
        if change.kind == "errors" and any(e.error == text for e in change.errors):
            delivered.set()

    unsubscribe = mirror.subscribe(on_change)
    try:
        stopped_at = time.monotonic()
        zk.stop()
        stopped = time.monotonic()
        mirror_down = wait(lambda: not mirror.connected, "mirror down") - stopped
        api_down = wait(lambda: not api_connected(base_url), "API down", interval=0.1) - stopped
        time.sleep(pause)  # the outage itself
        zk.start()
        back = time.monotonic()
        equal = wait(lambda: same_as_zookeeper(mirror, conf), "mirror equal", interval=0.05) - back
        connected = wait(lambda: mirror.connected, "mirror connected") - back
        api_up = wait(lambda: api_connected(base_url), "API up", interval=0.1) - back
        storm_id = mirror.active_storms()[0]
        written = time.monotonic()
        writer.report_task_error(storm_id, mirror.task_ids(storm_id)[0], text)
        if not delivered.wait(STUCK_SECS):
            raise RuntimeError("the error written after the outage never reached the mirror")
        return {
            "stop_secs": stopped - stopped_at,
            "mirror_down": mirror_down,
            "api_down": api_down,
            "mirror_equal": equal,
            "mirror_connected": connected,
            "api_up": api_up,
            "error_delivered": time.monotonic() - written,
        }
    finally:
        unsubscribe()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="outages of each pause")
    parser.add_argument("--pauses", default="0,8", help="seconds ZooKeeper stays stopped")
    args = parser.parse_args(argv)
    pauses = [float(p) for p in args.pauses.split(",")]
    folder = Path(tempfile.mkdtemp(prefix="stormui-outage-bench-"))
    zk = start_zookeeper(str(folder / "zk"))
    root = f"/bench-outage-{uuid.uuid4().hex[:8]}"
    conf = {
        "storm.zookeeper.servers": [zk.connect_string],
        "storm.zookeeper.root": root,
        "storm.zookeeper.session.timeout": SESSION_TIMEOUT_MS,
    }
    sim = Simulator(FAULT_CLUSTER, lambda: mk_distributed_cluster_state(conf, timeout=30))
    env = live_servers.server_env(
        zk.connect_string, root, folder / "db.sqlite3", STORMUI_HEARTBEAT_SECS="0.5"
    )
    mirror = daphne = None
    states = []
    try:
        sim.start()
        wait(lambda: sim.counts()["tasks"] == 12, "the simulator's cluster")
        states.append(mk_distributed_cluster_state(conf, timeout=30))
        mirror = ClusterMirror(states[-1], heartbeat_secs=0.5, resync_secs=30)
        mirror.start(wait=STUCK_SECS)
        states.append(mk_distributed_cluster_state(conf, timeout=30))
        writer = mk_storm_cluster_state(states[-1])
        live_servers.migrate(env)
        daphne, base_url = live_servers.start_daphne(env, folder)
        wait(lambda: api_connected(base_url), "API connected", interval=0.2)
        runs = {p: [] for p in pauses}
        for _ in range(args.repeat):
            for pause in pauses:
                runs[pause].append(one_outage(zk, pause, mirror, conf, base_url, writer))
        result = {
            f"pause_{pause:g}s": {
                key: {
                    "median": round(statistics.median(r[key] for r in rs), 3),
                    "max": round(max(r[key] for r in rs), 3),
                }
                for key in rs[0]
            }
            for pause, rs in runs.items()
        }
        print(json.dumps({"repeat": args.repeat, **result}, indent=2))
    finally:
        live_servers.stop(daphne)
        if mirror is not None:
            mirror.stop()
        sim.stop()
        for state in states:
            state.close()
        zk.stop()


if __name__ == "__main__":
    main()
