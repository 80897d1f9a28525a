"""A known cluster written to the test ZooKeeper, and Django pointed at it.

``known_cluster`` writes, through ``StormClusterState`` (plus a few garbage
nodes written raw), a cluster whose every figure the tests can work out from
what was written. The expected figures are computed here from the written
records, independently of ``stormui.cluster``.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass, field

import pytest
import pytest_asyncio
from channels.layers import channel_layers

from bench import live_servers
from clusterstate import (
    Assignment,
    StormBase,
    SupervisorInfo,
    TaskHeartbeat,
    TaskInfo,
    mk_distributed_cluster_state,
    mk_storm_cluster_state,
)
from clusterstate.records import WINDOWS
from stormui import live
from stormui.source import get_source, reset_source
from tests.helpers import (
    delete_roots,
    redis_and_daphnes,
    storm_conf,
    storm_session,
    wait_for,
)

# Liveness goes by the clock: the known cluster's live beats are at most 5 s old when written,
# its stale ones 100 s (a task) and 120 s (a supervisor). These leave a test nearly a minute
# after the writes before a live task or supervisor would age out, on however busy a machine.
TASK_TIMEOUT = 60
SUPERVISOR_TIMEOUT = 90

HEALTHY = "healthy-1-1000"
TROUBLED = "troubled-2-2000"
PAUSED = "paused-3-3000"
BROKEN = "broken-4-4000"

MULTILINE_ERROR = (
    "java.lang.RuntimeException: boom\n"
    "\tat spout.Words.nextTuple(Words.java:42)\n"
    "\tat backtype.storm.daemon.task$fn__3.invoke(task.clj:310)\n"
    + "\tat deep.Frame.call()\n"
    * 200
)
HOSTILE_ERROR = "<script>alert(1)</script> & \"quotes\" 'too'"


def spout_stats(seed: int) -> dict:
    """A spout's stats: two output streams, acked/failed/latency per stream, varying by window."""
    stats = {"type": "spout", "rate": 20}
    for key in ("emitted", "transferred", "acked", "failed", "complete_latencies"):
        stats[key] = {}
    for i, w in enumerate(WINDOWS):
        k = i + 1
        stats["emitted"][w] = {"default": 100 * seed * k, "__ack_init": 7 * seed * k}
        stats["transferred"][w] = {"default": 90 * seed * k, "__ack_init": 7 * seed * k}
        stats["acked"][w] = {"default": 80 * seed * k, "other": 5 * k}
        stats["failed"][w] = {"default": seed * k}
        stats["complete_latencies"][w] = {"default": 10.0 * seed + k, "other": 3.5}
    return stats


def bolt_stats(seed: int, inputs=("words",)) -> dict:
    """A bolt's stats: acked/failed/latency keyed by input component, then stream."""
    stats = {"type": "bolt", "rate": 20}
    for key in ("emitted", "transferred", "acked", "failed", "process_latencies"):
        stats[key] = {}
    for i, w in enumerate(WINDOWS):
        k = i + 1
        stats["emitted"][w] = {"default": 40 * seed * k}
        stats["transferred"][w] = {"default": 30 * seed * k}
        stats["acked"][w] = {c: {"default": 20 * seed * k + j} for j, c in enumerate(inputs)}
        stats["failed"][w] = {c: {"default": seed + j} for j, c in enumerate(inputs)}
        stats["process_latencies"][w] = {
            c: {"default": 1.5 * seed + j + k} for j, c in enumerate(inputs)
        }
    return stats


def expected_window(stats_list: list[dict], window: str, counts_only=False) -> dict:
    """The figures the dashboard should show for these tasks' stats, worked out plainly."""
    out = {"emitted": 0, "transferred": 0, "acked": 0, "failed": 0}
    lat_sum = lat_weight = 0.0
    for stats in stats_list:
        out["emitted"] += sum(stats["emitted"][window].values())
        out["transferred"] += sum(stats["transferred"][window].values())
        if counts_only:
            continue
        if stats["type"] == "spout":
            acked = stats["acked"][window]
            out["acked"] += sum(acked.values())
            out["failed"] += sum(stats["failed"][window].values())
            for stream, lat in stats["complete_latencies"][window].items():
                lat_sum += lat * acked.get(stream, 0)
                lat_weight += acked.get(stream, 0)
        else:
            acked = stats["acked"][window]
            for per in acked.values():
                out["acked"] += sum(per.values())
            for per in stats["failed"][window].values():
                out["failed"] += sum(per.values())
            for comp, per in stats["process_latencies"][window].items():
                for stream, lat in per.items():
                    lat_sum += lat * acked[comp][stream]
                    lat_weight += acked[comp][stream]
    out["latency"] = lat_sum / lat_weight if lat_weight else None
    return out


@dataclass
class KnownTask:
    storm_id: str
    task_id: int
    component_id: str | None  # None: its /tasks node is garbage
    node: str
    port: int
    start_time_secs: int
    beat: TaskHeartbeat | None = None  # None: no heartbeat node (dead)
    errors: list = field(default_factory=list)  # (time_secs, text), oldest first

    def alive(self, now) -> bool:
        return self.beat is not None and now - self.beat.time_secs <= TASK_TIMEOUT


@dataclass
class KnownCluster:
    """What was written, and the figures worked out from it."""

    root: str
    written_at: int
    storms: dict  # storm id -> {"name", "launch", "active", "node_host", "unreadable"}
    tasks: dict  # (storm id, task id) -> KnownTask
    supervisors: dict  # id -> SupervisorInfo (present nodes only)
    lost_supervisor: str
    stale_supervisor: str
    unreadable_task: tuple
    writer: object = None

    def storm_tasks(self, storm_id) -> list[KnownTask]:
        return sorted(
            (t for t in self.tasks.values() if t.storm_id == storm_id), key=lambda t: t.task_id
        )

    def component_tasks(self, storm_id, component_id) -> list[KnownTask]:
        return [t for t in self.storm_tasks(storm_id) if t.component_id == component_id]

    def workers(self, storm_id) -> set:
        return {(t.node, t.port) for t in self.storm_tasks(storm_id)}

    @property
    def slots_total(self) -> int:
        return sum(
            len(s.worker_ports)
            for sid, s in self.supervisors.items()
            if self.written_at - s.time_secs <= SUPERVISOR_TIMEOUT
        )

    @property
    def slots_used(self) -> int:
        return len({(t.node, t.port) for t in self.tasks.values()})

    def tasks_alive(self, now) -> int:
        return sum(1 for t in self.tasks.values() if t.alive(now))

    def errors(self, storm_id=None, component_id=None) -> list[tuple]:
        """``(time_secs, task_id, text, storm_id)`` newest first.

        A stable sort over each task's newest-first list, as docs/contract/cluster-state.md
        ("Task errors") says.
        """
        rows = []
        for storm in sorted(self.storms):
            if storm_id is not None and storm != storm_id:
                continue
            for task in self.storm_tasks(storm):
                if component_id is not None and task.component_id != component_id:
                    continue
                rows.extend((tm, task.task_id, text, storm) for tm, text in reversed(task.errors))
        return sorted(rows, key=lambda r: -r[0])


class _Clock:
    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now


def write_known_cluster(zk_conf) -> KnownCluster:
    state = mk_distributed_cluster_state(zk_conf)
    clock = _Clock(time.time())
    writer = mk_storm_cluster_state(state, time_fn=clock)
    now = int(time.time())
    known = KnownCluster(
        root=zk_conf["storm.zookeeper.root"],
        written_at=now,
        storms={},
        tasks={},
        supervisors={},
        lost_supervisor="sup-gone",
        stale_supervisor="sup-stale",
        unreadable_task=(TROUBLED, 15),
        writer=writer,
    )

    supervisors = {
        "sup-a": SupervisorInfo(now, "host-a.example", [6700, 6701, 6702, 6703], 1000),
        "sup-b": SupervisorInfo(now - 2, "host-b.example", [6700, 6701, 6702, 6703], 2000),
        "sup-stale": SupervisorInfo(now - 120, "host-stale.example", [6700, 6701], 3000),
    }
    for sid, info in supervisors.items():
        writer.set_supervisor_heartbeat(sid, info)
    known.supervisors = supervisors
    node_host = {
        "sup-a": "host-a.example",
        "sup-b": "host-b.example",
        "sup-gone": "host-gone.example",
    }

    def storm(storm_id, name, launch, tasks, *, active=True, base_garbage=False):
        """tasks: [(task_id, component_id, component_type, node, port, beat)]"""
        if active:
            writer.activate_storm(storm_id, StormBase(name, launch))
        if base_garbage:
            state.set_data(f"/storms/{storm_id}", b"{not json")
        assignment = Assignment(
            master_code_dir=f"/nimbus/stormdist/{storm_id}",
            node_host={n: node_host[n] for _, _, _, n, _, _ in tasks},
            task_node_port={t: [n, p] for t, _, _, n, p, _ in tasks},
            task_start_time_secs={t: launch + t for t, *_ in tasks},
        )
        writer.setup_heartbeats(storm_id)
        for t, cid, ctype, n, p, beat in tasks:
            if cid is None:
                state.set_data(f"/tasks/{storm_id}/{t}", b"\xff\xfe garbage")
            else:
                writer.set_task(storm_id, t, TaskInfo(cid, ctype))
            if beat is not None:
                writer.set_task_heartbeat(storm_id, t, beat)
            known.tasks[(storm_id, t)] = KnownTask(storm_id, t, cid, n, p, launch + t, beat)
        writer.set_assignment(storm_id, assignment)
        known.storms[storm_id] = {
            "name": name,
            "launch": launch if active and not base_garbage else None,
            "active": active and not base_garbage,
            "unreadable": base_garbage,
        }

    def beat(stats, age=0, uptime=500):
        return TaskHeartbeat(now - age, uptime, stats)

    # a healthy storm: 2 spout tasks, 3 bolt tasks, 2 workers, all beating with stats
    storm(
        HEALTHY,
        "healthy",
        now - 3600,
        [
            (1, "words", "spout", "sup-a", 6700, beat(spout_stats(1), age=1, uptime=3000)),
            (2, "words", "spout", "sup-b", 6700, beat(spout_stats(2), age=2, uptime=3001)),
            (3, "count", "bolt", "sup-a", 6700, beat(bolt_stats(1), uptime=3002)),
            (4, "count", "bolt", "sup-b", 6700, beat(bolt_stats(2), uptime=3003)),
            (5, "count", "bolt", "sup-a", 6700, beat(bolt_stats(3, ("words", "other")), 3)),
        ],
    )
    # a troubled storm: a spout typed by its stats only, a dead and a stale bolt task,
    # a component of unknown type, a task whose info is garbage; on a lost supervisor
    storm(
        TROUBLED,
        "troubled",
        now - 7200,
        [
            (10, "src", None, "sup-a", 6702, beat(spout_stats(5), age=4)),
            (11, "sink", "bolt", "sup-gone", 6700, None),
            (12, "sink", "bolt", "sup-gone", 6700, beat(bolt_stats(4), age=100)),
            (13, "sink", "bolt", "sup-b", 6701, beat(bolt_stats(6, ("src",)), age=1)),
            (14, "mystery", None, "sup-b", 6701, None),
            (15, None, None, "sup-a", 6702, beat(bolt_stats(7, ("src",)), age=2)),
        ],
    )
    # an inactive storm: an assignment, no /storms node
    storm(
        PAUSED,
        "paused",
        now - 600,
        [(1, "only", "bolt", "sup-b", 6702, beat(bolt_stats(1), age=5))],
        active=False,
    )
    # a storm whose /storms node is garbage
    storm(BROKEN, "broken", now - 60, [(1, "x", "spout", "sup-b", 6703, None)], base_garbage=True)

    def error(storm_id, task_id, time_secs, text):
        clock.now = time_secs
        writer.report_task_error(storm_id, task_id, text)
        known.tasks[(storm_id, task_id)].errors.append((time_secs, text))

    error(TROUBLED, 10, now - 1000, MULTILINE_ERROR)  # older than 10 minutes
    error(TROUBLED, 12, now - 120, HOSTILE_ERROR)
    error(TROUBLED, 13, now - 60, "timeout A")
    error(TROUBLED, 13, now - 60, "timeout B")  # same second: B is the newer
    error(TROUBLED, 11, now - 60, "dead task's error")
    error(TROUBLED, 10, now - 30, "spout error, newest")
    error(HEALTHY, 4, now - 700, "healthy storm's old error")
    return known


@contextlib.contextmanager
def known_cluster_behind_redis(zk_server, folder, database: str):
    """The known cluster on a root of its own, with Redis and two daphnes on it, each a
    candidate for leader; yields ``(procs, conf)`` (``procs``: url -> process)."""
    root = f"/t/{uuid.uuid4().hex}"
    conf = storm_conf(zk_server, root)
    known = write_known_cluster(conf)
    try:
        with redis_and_daphnes(conf, folder, database) as (_, procs):
            yield procs, conf
    finally:
        known.writer.disconnect()
        known.writer.cluster_state.close()
        delete_roots(conf, root, root + "-dashboard")


@pytest.fixture
def stormui_mirror():
    """Whether the dashboard reads through the mirror; test modules parametrize this."""
    return importlib.util.find_spec("clusterstate.mirror") is not None


@pytest.fixture
def known_cluster(settings, zk_server, zk_conf, stormui_mirror):
    """The known cluster in ZooKeeper, with Django's source reading it (and synced)."""
    host, _, port = zk_server.connect_string.rpartition(":")
    settings.STORMUI_ZK_SERVERS = [f"{host}:{port}"]
    settings.STORMUI_ZK_ROOT = zk_conf["storm.zookeeper.root"]
    settings.STORMUI_STORE = "zookeeper"
    settings.STORMUI_MIRROR = stormui_mirror
    settings.STORMUI_TASK_TIMEOUT_SECS = TASK_TIMEOUT
    settings.STORMUI_SUPERVISOR_TIMEOUT_SECS = SUPERVISOR_TIMEOUT
    reset_source()
    known = write_known_cluster(zk_conf)
    try:
        expected_errors = len(known.errors())
        # pages answer at once, saying the cluster is being read, until the first read ends
        assert get_source().wait_synced(30), "the source never synced"

        def synced():
            view = get_source().cluster_view()
            return (
                set(view.storms) == set(known.storms)
                and view.tasks_total == len(known.tasks)
                and view.tasks_alive == known.tasks_alive(time.time())
                and sum(len(s.errors) for s in view.storms.values()) == expected_errors
                and view.supervisors_present == len(known.supervisors)
            )

        wait_for(synced, timeout=30, interval=0.05, message="the source never synced")
        yield known
    finally:
        reset_source()
        state = known.writer.cluster_state
        known.writer.disconnect()
        state.close()
        cleaner = mk_distributed_cluster_state({**zk_conf, "storm.zookeeper.root": "/"})
        try:
            cleaner.delete_node(zk_conf["storm.zookeeper.root"])
        finally:
            cleaner.close()


@pytest.fixture
def writer(zk_conf):
    """A second Storm session on the test root, with the real clock."""
    with storm_session(zk_conf) as storm_state:
        yield storm_state


@pytest_asyncio.fixture
async def live_cluster(known_cluster):
    """The known cluster, a fresh in-memory channel layer, and the relay stopped afterwards."""
    channel_layers.backends.clear()
    yield known_cluster
    live.stop_relay()
    await asyncio.sleep(0)
    channel_layers.backends.clear()


class RedisServer:
    """A throwaway redis-server that can be stopped and started again on its port."""

    def __init__(self, folder):
        if shutil.which("redis-server") is None:
            pytest.fail("redis-server is not installed (apt-get install redis-server)")
        self.folder = folder
        self.proc, self.url = live_servers.start_redis(folder)
        self.port = int(self.url.rsplit(":", 1)[1].split("/")[0])

    def stop(self):
        live_servers.stop(self.proc)

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
            + ["--appendonly", "no", "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path)
    yield server
    server.stop()
