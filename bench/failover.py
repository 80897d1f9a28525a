"""How soon another daphne leads when the leader is killed outright, under load.

Starts a standalone ZooKeeper (or uses ``--zk``), Redis, a small simulated cluster on it
(3 supervisors, 3 storms of 4 tasks beating every 0.5 s, an error a second), a writer
reporting an error every 0.1 s, and ``--daphnes`` daphnes behind Redis (each a
candidate: stormui.leader). Then ``--kills`` times: finds the leader from /metrics
(``stormui_leader``), opens an error feed (``/ws/errors/``) on every other daphne, waits
for its snapshot, SIGKILLs the leader and times, from the kill, the new leader's first
relayed message seen by any socket: its resync (a snapshot with ``resync``) or an error
written after the kill (only a live leader relays those). It also times when every socket
has had one, and when /metrics names the new leader. The killed daphne is started again
before the next kill, so as many candidates stand each time.

Goal (operations.md "Many processes"): another leads within 10 s: max <= 10 s.

    .venv/bin/python -m bench.failover --kills 10
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path

from bench import live_servers
from bench.common import FAULT_CLUSTER, machine_note, percentile, start_zookeeper
from clusterstate import mk_distributed_cluster_state, mk_storm_cluster_state
from clusterstate.simulate import Simulator

STUCK_SECS = 120.0
#: the writer's errors, one this often
ERROR_EVERY_SECS = 0.1
PREFIX = "failover-"


def wait(predicate, what: str, timeout: float = STUCK_SECS, interval: float = 0.02) -> float:
    """Poll until ``predicate()`` holds; return when, by ``time.monotonic()``."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return time.monotonic()
        if time.monotonic() >= deadline:
            raise RuntimeError(f"{what}: not after {timeout}s")
        time.sleep(interval)


class Writer(threading.Thread):
    """Reports an error every :data:`ERROR_EVERY_SECS`, numbered; keeps when each was written."""

    def __init__(self, conf):
        super().__init__(name="failover-writer", daemon=True)
        self.state = mk_distributed_cluster_state(conf, timeout=30)
        self.storms = mk_storm_cluster_state(self.state)
        self.written: dict[int, float] = {}
        self.stopping = threading.Event()

    def run(self):
        storm_id = self.storms.active_storms()[0]
        task_id = sorted(self.storms.task_ids(storm_id))[0]
        seq = 0
        while not self.stopping.wait(ERROR_EVERY_SECS):
            seq += 1
            self.storms.report_task_error(storm_id, task_id, f"{PREFIX}{seq}")
            self.written[seq] = time.monotonic()

    def close(self):
        self.stopping.set()
        self.join(10)
        self.storms.disconnect()
        self.state.close()


class Feed(threading.Thread):
    """An error feed socket: when it first saw the new leader's doing after ``killed_at``."""

    def __init__(self, url: str, writer: Writer):
        from websockets.sync.client import connect

        super().__init__(name="failover-feed", daemon=True)
        self.ws = connect(
            url.replace("http://", "ws://") + "/ws/errors/",
            origin=url,
            open_timeout=60,
            legacy=True,  # closed by close(), not by a with block
        )
        first = json.loads(self.ws.recv(timeout=60))
        assert first["type"] == "snapshot", first
        self.writer = writer
        self.killed_at: float | None = None
        self.seen_at: float | None = None
        self.seen = threading.Event()

    def run(self):
        try:
            while True:
                message = json.loads(self.ws.recv())
                now = time.monotonic()
                killed_at = self.killed_at
                if killed_at is None or self.seen.is_set():
                    continue
                if self._new_leaders(message, killed_at):
                    self.seen_at = now
                    self.seen.set()
        except Exception:  # closed
            pass

    def _new_leaders(self, message, killed_at: float) -> bool:
        if message["type"] == "snapshot":
            return bool(message.get("resync"))
        if message["type"] == "error" and message["error"].startswith(PREFIX):
            written = self.writer.written.get(int(message["error"][len(PREFIX) :]))
            return written is not None and written > killed_at
        return False

    def close(self):
        self.ws.close()
        self.join(10)


def one_kill(daphnes: dict, writer: Writer) -> dict:
    urls = list(daphnes)
    leader = live_servers.wait_leader(urls, timeout=STUCK_SECS)
    feeds = [Feed(url, writer) for url in urls if url != leader]
    for feed in feeds:
        feed.start()
    try:
        killed_at = time.monotonic()
        for feed in feeds:
            feed.killed_at = killed_at
        daphnes[leader].send_signal(signal.SIGKILL)
        daphnes[leader].wait()
        new = live_servers.wait_leader(urls, timeout=STUCK_SECS, exclude=leader)
        elected = time.monotonic()
        for feed in feeds:
            if not feed.seen.wait(STUCK_SECS):
                raise RuntimeError("a socket never heard from the new leader")
        seen = [feed.seen_at - killed_at for feed in feeds]
        return {
            "first_message": min(seen),
            "every_socket": max(seen),
            "metrics_says": elected - killed_at,
            "killed": leader,
            "new": new,
        }
    finally:
        for feed in feeds:
            feed.close()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=10, help="leaders killed, one at a time")
    parser.add_argument("--daphnes", type=int, default=3, help="candidates (at least 2)")
    parser.add_argument("--zk", help="host:port of a running ZooKeeper (default: start one)")
    args = parser.parse_args(argv)
    note = machine_note()
    folder = Path(tempfile.mkdtemp(prefix="stormui-failover-bench-"))
    zk = None if args.zk else start_zookeeper(str(folder / "zk"))
    connect = args.zk or zk.connect_string
    root = f"/bench-failover-{uuid.uuid4().hex[:8]}"
    conf = {
        "storm.zookeeper.servers": [connect],
        "storm.zookeeper.root": root,
        "storm.zookeeper.session.timeout": 10000,
    }
    sim = Simulator(FAULT_CLUSTER, lambda: mk_distributed_cluster_state(conf, timeout=30))
    redis = writer = None
    daphnes: dict = {}
    try:
        sim.start()
        wait(lambda: sim.counts()["tasks"] == 12, "the simulator's cluster")
        redis, redis_url = live_servers.start_redis(folder)
        env = live_servers.server_env(
            connect, root, folder / "db.sqlite3", REDIS_URL=redis_url, STORMUI_HEARTBEAT_SECS="1"
        )
        live_servers.migrate(env)
        daphnes.update({u: p for p, u in live_servers.start_daphnes(env, folder, args.daphnes)})
        writer = Writer(conf)
        writer.start()
        runs = []
        for i in range(args.kills):
            run = one_kill(daphnes, writer)
            runs.append(run)
            print(
                f"kill {i + 1}: first message {run['first_message']:.2f} s, every socket "
                f"{run['every_socket']:.2f} s, /metrics {run['metrics_says']:.2f} s",
                flush=True,
            )
            # the killed daphne stands again (on a new port) before the next kill
            del daphnes[run["killed"]]
            proc, url = live_servers.start_daphne(env, folder, name=f"daphne-again-{i}")
            daphnes[url] = proc
        result = {
            key: {
                "p50": round(statistics.median(r[key] for r in runs), 2),
                "p90": round(percentile([r[key] for r in runs], 90), 2),
                "max": round(max(r[key] for r in runs), 2),
            }
            for key in ("first_message", "every_socket", "metrics_says")
        }
        print(
            json.dumps(
                {"kills": args.kills, "daphnes": args.daphnes, "machine": note, **result},
                indent=2,
            )
        )
    finally:
        for proc in daphnes.values():
            live_servers.stop(proc)
        if writer is not None:
            writer.close()
        if redis is not None:
            live_servers.stop(redis)
        sim.stop()
        if zk is not None:
            zk.stop()


if __name__ == "__main__":
    main()
