"""How soon another daphne leads when the leader is killed outright, under load.

Starts a standalone ZooKeeper (or uses ``--zk``), Redis, a small simulated cluster on it
(3 supervisors, 3 storms of 4 tasks beating every 0.5 s, an error a second), a writer
reporting an error every 0.1 s, and ``--daphnes`` daphnes behind Redis (each a
candidate: stormui.leader). Then ``--kills`` times: finds the leader from /metrics
(``stormui_leader``), opens an error feed (``/ws/errors/``) on every other daphne, waits
for its snapshot, SIGKILLs the leader and times, from the kill, the new leader's first
message seen by any socket: one holding an error written after the kill, relayed alone or
in a snapshot (its resync), as only a live leader relays those or puts them in the copy
that snapshots are built from. A resync alone is not counted: under load the followers'
Redis calls time out during a take-over and they resync their sockets from the copy they
have, before the new leader relays (``first_resync_any`` in the result times any resync,
as this script counted until then). It also times when every socket has had one, and
when /metrics names the new leader. The killed daphne is started again before the next
kill, so as many candidates stand each time.

With ``--tasks N`` the same is timed under load: before the simulator starts, a cluster
of N tasks (:meth:`bench.common.ClusterSpec.for_tasks`: storms of 200 tasks, a supervisor
each) is written under the same root (:func:`bench.common.populate`), and a separate
process (:class:`bench.common.HeartbeatWriters`) owns its supervisors and rewrites every
heartbeat once per ``--heartbeat-secs`` (3 s by default), as ``bench.zk_load`` does. The
writer keeps reporting to the small cluster's first storm. Those supervisors are alive
before the simulator's first look, so it does not take the written storms down as
leftovers of an earlier run (it takes down the storms no live supervisor runs); the result
says how many it took down (``leftovers_taken_down``, 0 expected), and the requests a
second that ZooKeeper counted from the heartbeat writers' sessions (``cons``: heartbeats,
supervisor beats and pings) next to the nominal heartbeats a second (N / S). A new leader
begins with the copy it followed and reads ZooKeeper behind it (ClusterMirror.seed), so
the times grow only a little with N.

Goal (operations.md "Many processes"): another leads within 10 s: max <= 10 s; the
contract's load is a 5,000-task cluster heartbeating every 3 s.

    .venv/bin/python -m bench.failover --kills 10
    .venv/bin/python -m bench.failover --kills 10 --tasks 5000
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import tempfile
import threading
import time
from pathlib import Path

from bench import live_servers
from bench.common import (
    FAULT_CLUSTER,
    ClusterSpec,
    HeartbeatWriters,
    bench_cluster,
    machine_note,
    percentile,
    populate,
)
from bench.zk_load import sessions
from clusterstate import mk_distributed_cluster_state, mk_storm_cluster_state
from clusterstate.simulate import Simulator

STUCK_SECS = 120.0
#: the writer's errors, one this often
ERROR_EVERY_SECS = 0.1
PREFIX = "failover-"


def zk_sessions(connect: str) -> dict[str, int]:
    """Packets received from each ZooKeeper session (``cons``); empty if ZooKeeper does not
    answer the four-letter word (a ``--zk`` without it whitelisted)."""
    try:
        return sessions(connect)
    except Exception:
        return {}


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
    """Reports an error every :data:`ERROR_EVERY_SECS` to a task of ``storm_id``, numbered;
    keeps when each was written."""

    def __init__(self, conf, storm_id: str):
        super().__init__(name="failover-writer", daemon=True)
        self.storm_id = storm_id
        self.state = mk_distributed_cluster_state(conf, timeout=30)
        self.storms = mk_storm_cluster_state(self.state)
        self.written: dict[int, float] = {}
        self.stopping = threading.Event()

    def run(self):
        storm_id = self.storm_id
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
        self.resync_at: float | None = None  # the first resync after the kill, of any kind
        self.seen = threading.Event()

    def run(self):
        try:
            while True:
                message = json.loads(self.ws.recv())
                now = time.monotonic()
                killed_at = self.killed_at
                if killed_at is None or self.seen.is_set():
                    continue
                if self.resync_at is None and message.get("resync"):
                    self.resync_at = now
                if self._new_leaders(message, killed_at):
                    self.seen_at = now
                    self.seen.set()
        except Exception:  # closed
            pass

    def _new_leaders(self, message, killed_at: float) -> bool:
        """Whether ``message`` holds an error written after the kill: only a live leader
        relays those, or puts them in the copy a resync is built from. A resync alone is not
        enough: a follower whose Redis calls timed out resyncs its sockets from the copy it
        has (stormui.redislayer), which happens during a take-over under load."""
        if message["type"] == "snapshot":
            return any(self._after(e, killed_at) for e in message.get("errors", ()))
        return message["type"] == "error" and self._after(message, killed_at)

    def _after(self, error: dict, killed_at: float) -> bool:
        if not error["error"].startswith(PREFIX):
            return False
        written = self.writer.written.get(int(error["error"][len(PREFIX) :]))
        return written is not None and written > killed_at

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
        resyncs = [feed.resync_at - killed_at for feed in feeds if feed.resync_at is not None]
        return {
            "first_message": min(seen),
            "every_socket": max(seen),
            "metrics_says": elected - killed_at,
            "first_resync": min(resyncs, default=None),
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
    parser.add_argument(
        "--tasks", type=int, default=0, help="tasks of a cluster written as load (default 0: none)"
    )
    parser.add_argument(
        "--heartbeat-secs",
        type=float,
        default=3.0,
        help="with --tasks: every heartbeat of the load rewritten this often (default 3)",
    )
    args = parser.parse_args(argv)
    note = machine_note()
    folder = Path(tempfile.mkdtemp(prefix="stormui-failover-bench-"))
    print(f"logs in {folder}", flush=True)
    zk, connect, root, conf = bench_cluster(args.zk, folder, "bench-failover")
    conf["storm.zookeeper.session.timeout"] = 10000  # the simulator's and writer's, as ever
    sim = Simulator(FAULT_CLUSTER, lambda: mk_distributed_cluster_state(conf, timeout=30))
    spec = ClusterSpec.for_tasks(args.tasks) if args.tasks > 0 else None
    redis = writer = beaters = None
    load: dict = {}
    daphnes: dict = {}
    try:
        if spec is not None:
            # the load first: its supervisors alive before the simulator's first look
            populate(connect, root, spec)
            before = set(zk_sessions(connect))
            beaters = HeartbeatWriters(connect, root, spec, beat_secs=args.heartbeat_secs).start()
            beaters_sessions = set(zk_sessions(connect)) - before
            beaters_counted = zk_sessions(connect), time.monotonic()
            print(f"load: {spec.describe()}, beating every {args.heartbeat_secs:g} s", flush=True)
        sim.start()
        wait(lambda: sim.counts()["tasks"] == 12, "the simulator's cluster")
        redis, redis_url = live_servers.start_redis(folder)
        env = live_servers.server_env(
            connect, root, folder / "db.sqlite3", REDIS_URL=redis_url, STORMUI_HEARTBEAT_SECS="1"
        )
        live_servers.migrate(env)
        daphnes.update({u: p for p, u in live_servers.start_daphnes(env, folder, args.daphnes)})
        writer = Writer(conf, sorted(sim.storms)[0])
        writer.start()
        runs = []
        for i in range(args.kills):
            run = one_kill(daphnes, writer)
            runs.append(run)
            resync = run["first_resync"]
            print(
                f"kill {i + 1}: first message {run['first_message']:.2f} s, every socket "
                f"{run['every_socket']:.2f} s, /metrics {run['metrics_says']:.2f} s, first "
                f"resync {'none' if resync is None else f'{resync:.2f} s'}",
                flush=True,
            )
            # the killed daphne stands again (on a new port) before the next kill; it is ready
            # once it has read the new leader's copy, announced when the new leader has read
            # the cluster whole behind the copy it began with
            del daphnes[run["killed"]]
            started = time.monotonic()
            proc, url = live_servers.start_daphne(
                env, folder, name=f"daphne-again-{i}", ready_secs=STUCK_SECS
            )
            run["restarted_ready"] = time.monotonic() - started
            print(f"  started again: ready after {run['restarted_ready']:.1f} s", flush=True)
            daphnes[url] = proc
        result = {
            key: {
                "p50": round(statistics.median(r[key] for r in runs), 2),
                "p90": round(percentile([r[key] for r in runs], 90), 2),
                "max": round(max(r[key] for r in runs), 2),
            }
            for key in ("first_message", "every_socket", "metrics_says", "restarted_ready")
        }
        # any resync, the new leader's or a follower's own after a Redis timeout (before it)
        resyncs = [r["first_resync"] for r in runs if r["first_resync"] is not None]
        result["first_resync_any"] = {
            "runs": len(resyncs),
            "p50": round(statistics.median(resyncs), 2) if resyncs else None,
            "max": round(max(resyncs), 2) if resyncs else None,
        }
        if spec is not None:
            (counted, since), now = beaters_counted, time.monotonic()
            after = zk_sessions(connect)
            requests = sum(after.get(s, 0) - counted.get(s, 0) for s in beaters_sessions)
            load = {
                "cluster": spec.describe(),
                "tasks": spec.tasks,
                "heartbeat_secs": args.heartbeat_secs,
                "heartbeats_per_sec_nominal": round(spec.tasks / args.heartbeat_secs, 1),
                "heartbeat_writers_requests_per_sec": (
                    round(requests / (now - since), 1) if beaters_sessions else None
                ),
            }
        load["leftovers_taken_down"] = sim.counts()["leftovers_taken_down"]
        print(
            json.dumps(
                {
                    "kills": args.kills,
                    "daphnes": args.daphnes,
                    "machine": note,
                    **load,
                    **result,
                    "load_average_at_the_end": round(os.getloadavg()[0], 1),
                },
                indent=2,
            )
        )
    finally:
        for proc in daphnes.values():
            live_servers.stop(proc)
        if writer is not None:
            writer.close()
        if beaters is not None:
            beaters.stop()
        if redis is not None:
            live_servers.stop(redis)
        sim.stop()
        if zk is not None:
            zk.stop()


if __name__ == "__main__":
    main()
