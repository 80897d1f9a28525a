"""A simulated Storm cluster: a master, its supervisors and their tasks.

Everything is written through :class:`~clusterstate.storm.StormClusterState`,
never through raw paths, in the roles that the closing comments of Storm's
``cluster.clj`` describe:

- the **master** reads which supervisors are alive, submits storms
  (``setup_heartbeats``, ``set_task`` for each task, ``set_assignment``,
  ``activate_storm``), moves the tasks of a supervisor that has been gone for
  a while onto live slots, and, every ``churn_secs``, removes the storms it
  deactivated last time (``remove_storm``, ``teardown_heartbeats``,
  ``teardown_task_errors``), deactivates one more and submits new ones to keep
  ``storms`` active; and it takes down what an earlier run left behind, as
  nimbus does on start-up ("if a storm exists but is not taken down fully,
  ensure that storm takedown is launched"), see :meth:`Simulator._take_down_leftovers`;
- each **supervisor** heartbeats its ``SupervisorInfo`` on its own session, so
  that losing one (its session closed) makes its ephemeral node vanish for
  real; it comes back later under the same id;
- each **task** heartbeats its evolving stats, some report Java-style errors,
  and now and then one dies (its heartbeat removed or left to go stale) and
  may be restarted.

Sessions. In Storm all the tasks of a worker share the worker's cluster state,
so by default each worker (a storm's tasks on one ``(node, port)`` slot) gets a
session of its own. A large cluster would need thousands of them, so when the
estimate passes :data:`MAX_AUTO_SESSIONS` the tasks share their supervisor's
session instead (``session_per="supervisor"``): one session per supervisor
plus one for the master. Either way a lost supervisor takes its tasks'
heartbeats with it. ZooKeeper refuses more than ``maxClientCnxns`` (60 by
default) connections from one address, so a simulation of more than about 55
supervisors needs that raised (``maxClientCnxns=0`` lifts it).

Pace. Every heartbeat has its own phase, so writes are spread evenly over the
interval; a small thread pool makes them, and a task whose previous write has
not finished skips a beat rather than queueing. A write that fails (not
connected, a kazoo error) is logged and simply made again on the next beat.
One heartbeat costs about a millisecond of CPU, mostly in kazoo, under one
GIL, so the command line splits a big cluster over processes (``--processes``,
by default one per 10,000 tasks, at most one per core), each a
:class:`Simulator` playing one shard of it (``shard=(index, count)``).

Two ways to drive it: :meth:`Simulator.start` / :meth:`Simulator.stop` (or the
blocking :meth:`Simulator.run`) on background threads, or
:meth:`Simulator.step` from the caller's thread against an injected clock,
which makes every write at once, in order, and is deterministic for a seed.
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import logging
import math
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial

from kazoo.exceptions import KazooException

from .errors import NotConnectedError
from .records import WINDOWS, Assignment, StormBase, SupervisorInfo, TaskHeartbeat, TaskInfo
from .storm import mk_storm_cluster_state

log = logging.getLogger(__name__)

#: Storm's default ``supervisor.slots.ports``.
FIRST_WORKER_PORT = 6700
#: Storm's ``topology.stats.sample.rate`` is 0.05: each sampled tuple counts 20.
SAMPLE_RATE = 20
#: ``session_per="auto"`` gives each worker a session while the total stays under this.
MAX_AUTO_SESSIONS = 40
#: Storm's ``nimbus.monitor.freq.secs``; shorter when heartbeats are faster.
MONITOR_SECS = 10.0
#: Storm's ``nimbus.task.timeout.secs``: how long a supervisor is gone before
#: its tasks are moved (shorter when heartbeats are faster).
REASSIGN_SECS = 30.0
#: Tasks one process heartbeats at most when the command line picks the process count.
TASKS_PER_PROCESS = 10_000
#: Tasks per worker the master aims for when it spreads a storm.
TASKS_PER_WORKER = 8
SESSION_MODES = ("auto", "worker", "supervisor")

# Failures that come from the store or the network, logged without a traceback.
_EXPECTED_FAILURES = (NotConnectedError, KazooException, ConnectionError, TimeoutError, OSError)


# -- topologies --------------------------------------------------------------


@dataclass(frozen=True)
class _Component:
    id: str
    type: str  # "spout" or "bolt"
    weight: int  # share of the storm's tasks
    inputs: tuple = ()  # (component id, stream) pairs it subscribes to
    factor: float = 1.0  # tuples emitted per tuple received (bolts)
    streams: tuple = ("default",)  # streams it emits on; () for a sink
    package: str = "com.example"


@dataclass(frozen=True)
class _Topology:
    name: str
    components: tuple


def _spout(cid, pkg, weight=1, streams=("default",)):
    return _Component(cid, "spout", weight, (), 1.0, streams, pkg)


def _bolt(cid, pkg, weight, inputs, factor=1.0, streams=("default",)):
    inputs = tuple(i if isinstance(i, tuple) else (i, "default") for i in inputs)
    return _Component(cid, "bolt", weight, inputs, factor, streams, pkg)


TOPOLOGIES = (
    _Topology(
        "word-count",
        (
            _spout("sentence-spout", "storm.starter"),
            _bolt("split-bolt", "storm.starter", 3, ["sentence-spout"], 6.0),
            _bolt("count-bolt", "storm.starter", 2, ["split-bolt"], 1.0),
        ),
    ),
    _Topology(
        "click-stream",
        (
            _spout("click-spout", "com.example.clicks", 2),
            _bolt("parse-bolt", "com.example.clicks", 2, ["click-spout"], 1.0),
            _bolt("sessionize-bolt", "com.example.clicks", 3, ["parse-bolt"], 0.2),
            _bolt("db-bolt", "com.example.clicks", 1, ["sessionize-bolt"], 0.0, ()),
        ),
    ),
    _Topology(
        "trending-hashtags",
        (
            _spout("tweet-spout", "com.example.trends"),
            _bolt("hashtag-bolt", "com.example.trends", 2, ["tweet-spout"], 1.5),
            _bolt("rolling-count-bolt", "com.example.trends", 3, ["hashtag-bolt"], 0.5),
            _bolt("rank-bolt", "com.example.trends", 1, ["rolling-count-bolt"], 0.05),
        ),
    ),
    _Topology(
        "log-alerts",
        (
            _spout("log-spout", "com.example.logs", 2),
            _bolt("parse-bolt", "com.example.logs", 3, ["log-spout"], 1.0),
            _bolt("filter-bolt", "com.example.logs", 2, ["parse-bolt"], 0.1, ("alerts",)),
            _bolt("alert-bolt", "com.example.logs", 1, [("filter-bolt", "alerts")], 0.0, ()),
        ),
    ),
    _Topology(
        "fraud-detection",
        (
            _spout("payment-spout", "com.example.fraud"),
            _spout("account-spout", "com.example.fraud"),
            _bolt("enrich-bolt", "com.example.fraud", 2, ["payment-spout", "account-spout"]),
            _bolt("score-bolt", "com.example.fraud", 3, ["enrich-bolt"], 1.0),
            _bolt("alert-bolt", "com.example.fraud", 1, ["score-bolt"], 0.0, ()),
        ),
    ),
    _Topology(
        "etl-pipeline",
        (
            _spout("kafka-spout", "com.example.etl", 2),
            _bolt("transform-bolt", "com.example.etl", 3, ["kafka-spout"], 1.0),
            _bolt("hdfs-bolt", "com.example.etl", 2, ["transform-bolt"], 0.0, ()),
        ),
    ),
)


def _class_name(component_id: str) -> str:
    return "".join(part.capitalize() for part in component_id.split("-"))


# -- errors ------------------------------------------------------------------

_STORM_FRAMES = (
    "\tat backtype.storm.daemon.task$fn__{n1}$tuple_action_fn__{n2}.invoke(task.clj:{l1})\n"
    "\tat backtype.storm.daemon.task$mk_task_receiver$fn__{n3}.invoke(task.clj:{l2})\n"
    "\tat backtype.storm.disruptor$clojure_handler$reify__{n4}.onEvent(disruptor.clj:43)\n"
    "\tat backtype.storm.util$async_loop$fn__{n5}.invoke(util.clj:{l3})\n"
    "\tat clojure.lang.AFn.run(AFn.java:24)\n"
    "\tat java.lang.Thread.run(Thread.java:662)"
)
_SPOUT_FRAMES = (
    "\tat backtype.storm.daemon.task$fn__{n1}$fn__{n2}.invoke(task.clj:{l1})\n"
    "\tat backtype.storm.util$async_loop$fn__{n5}.invoke(util.clj:{l3})\n"
    "\tat clojure.lang.AFn.run(AFn.java:24)\n"
    "\tat java.lang.Thread.run(Thread.java:662)"
)

_BOLT_ERRORS = (
    "java.lang.NullPointerException\n"
    "\tat {pkg}.{cls}.execute({cls}.java:{line})\n"
    "\tat backtype.storm.topology.BasicBoltExecutor.execute(BasicBoltExecutor.java:32)\n"
    + _STORM_FRAMES,
    "java.lang.RuntimeException: java.io.IOException: Broken pipe\n"
    "\tat backtype.storm.task.ShellBolt.execute(ShellBolt.java:152)\n"
    + _STORM_FRAMES
    + "\nCaused by: java.io.IOException: Broken pipe\n"
    "\tat java.io.FileOutputStream.writeBytes(Native Method)\n"
    "\tat java.io.FileOutputStream.write(FileOutputStream.java:282)\n"
    "\tat java.io.BufferedOutputStream.flush(BufferedOutputStream.java:123)\n"
    "\tat backtype.storm.utils.ShellProcess.writeMessage(ShellProcess.java:74)\n"
    "\tat backtype.storm.task.ShellBolt.execute(ShellBolt.java:150)\n"
    "\t... 6 more",
    'java.lang.NumberFormatException: For input string: "{value}"\n'
    "\tat java.lang.NumberFormatException.forInputString(NumberFormatException.java:48)\n"
    "\tat java.lang.Long.parseLong(Long.java:410)\n"
    "\tat java.lang.Long.parseLong(Long.java:468)\n"
    "\tat {pkg}.{cls}.execute({cls}.java:{line})\n"
    "\tat backtype.storm.topology.BasicBoltExecutor.execute(BasicBoltExecutor.java:32)\n"
    + _STORM_FRAMES,
    "java.lang.RuntimeException: java.sql.SQLException: "
    "Communications link failure to db{n6}.example.com:3306\n"
    "\tat {pkg}.{cls}.execute({cls}.java:{line})\n"
    + _STORM_FRAMES
    + "\nCaused by: java.sql.SQLException: Communications link failure\n"
    "\tat com.mysql.jdbc.SQLError.createCommunicationsException(SQLError.java:1074)\n"
    "\tat com.mysql.jdbc.MysqlIO.send(MysqlIO.java:3322)\n"
    "\tat com.mysql.jdbc.ConnectionImpl.execSQL(ConnectionImpl.java:2467)\n"
    "\tat {pkg}.{cls}.execute({cls}.java:{line2})\n"
    "\t... 6 more",
    "java.lang.OutOfMemoryError: GC overhead limit exceeded\n"
    "\tat java.util.HashMap.addEntry(HashMap.java:766)\n"
    "\tat java.util.HashMap.put(HashMap.java:402)\n"
    "\tat {pkg}.{cls}.execute({cls}.java:{line})\n" + _STORM_FRAMES,
    "java.lang.IllegalStateException: tuple {value} acked twice\n"
    "\tat backtype.storm.task.OutputCollectorImpl.ack(OutputCollectorImpl.java:84)\n"
    "\tat {pkg}.{cls}.execute({cls}.java:{line})\n" + _STORM_FRAMES,
)

_SPOUT_ERRORS = (
    "java.lang.RuntimeException: org.apache.thrift7.transport.TTransportException: "
    "java.net.ConnectException: Connection refused\n"
    "\tat backtype.storm.spout.KestrelThriftSpout.nextTuple(KestrelThriftSpout.java:{line})\n"
    + _SPOUT_FRAMES
    + "\nCaused by: java.net.ConnectException: Connection refused\n"
    "\tat java.net.PlainSocketImpl.socketConnect(Native Method)\n"
    "\tat java.net.Socket.connect(Socket.java:529)\n"
    "\tat org.apache.thrift7.transport.TSocket.open(TSocket.java:178)\n"
    "\t... 4 more",
    "java.lang.RuntimeException: java.util.concurrent.TimeoutException: "
    "no ack for message {value} after 30000 ms\n"
    "\tat {pkg}.{cls}.fail({cls}.java:{line})\n" + _SPOUT_FRAMES,
    "java.lang.NullPointerException\n\tat {pkg}.{cls}.nextTuple({cls}.java:{line})\n"
    + _SPOUT_FRAMES,
)


def make_error(rng: random.Random, component_id: str, component_type: str, package: str):
    """A realistic multi-line Java stack trace for a task of the given component."""
    templates = _SPOUT_ERRORS if component_type == "spout" else _BOLT_ERRORS
    numbers = {f"n{i}": rng.randint(1000, 9999) for i in range(1, 6)}
    return rng.choice(templates).format(
        pkg=package,
        cls=_class_name(component_id),
        line=rng.randint(30, 240),
        line2=rng.randint(30, 240),
        l1=rng.randint(150, 400),
        l2=rng.randint(150, 400),
        l3=rng.randint(300, 400),
        n6=rng.randint(1, 9),
        value=rng.choice(["", "NaN", "12a", "null", str(rng.getrandbits(40))]),
        **numbers,
    )


# -- sessions ----------------------------------------------------------------


class _Shut(Exception):
    """The session or storm a write needs has been shut; the write is dropped."""


class _Gate:
    """Counts the writes in flight on something that may be shut (a session, a storm)."""

    def __init__(self):
        self._cond = threading.Condition()
        self._inflight = 0
        self.closed = False

    @contextmanager
    def enter(self):
        with self._cond:
            if self.closed:
                raise _Shut()
            self._inflight += 1
        try:
            yield
        finally:
            with self._cond:
                self._inflight -= 1
                if not self._inflight:
                    self._cond.notify_all()

    def close(self, timeout: float = 30.0) -> None:
        """Refuse new writes and wait (up to ``timeout``) for those in flight."""
        with self._cond:
            self.closed = True
            if not self._cond.wait_for(lambda: not self._inflight, timeout):
                log.warning("gave up waiting for %d writes in flight", self._inflight)


class _Session:
    """One ClusterState session from the factory, opened on first use."""

    RETRY_SECS = 2.0

    def __init__(self, factory, name: str, time_fn=time.time):
        self.name = name
        self._factory = factory
        self._time = time_fn  # names the error nodes it writes
        self._gate = _Gate()
        self._open_lock = threading.Lock()
        self._state = None
        self._scs = None
        self._retry_at = 0.0

    @property
    def closed(self) -> bool:
        return self._gate.closed

    @contextmanager
    def use(self):
        """The session's StormClusterState, for one write; raises _Shut once closed."""
        with self._gate.enter():
            yield self._open()

    def _open(self):
        scs = self._scs
        if scs is not None:
            return scs
        with self._open_lock:
            if self._scs is None:
                if time.monotonic() < self._retry_at:
                    raise NotConnectedError(f"{self.name}: session not open yet")
                try:
                    state = self._factory()
                except Exception:
                    self._retry_at = time.monotonic() + self.RETRY_SECS
                    raise
                try:
                    self._scs = mk_storm_cluster_state(state, time_fn=self._time)
                except Exception:
                    state.close()
                    raise
                self._state = state
            return self._scs

    def close(self) -> None:
        """Close the session (its ephemeral nodes vanish). Harmless if repeated."""
        self._gate.close()
        with self._open_lock:
            scs, state = self._scs, self._state
            self._scs = self._state = None
        for what, fn in (("disconnect", scs and scs.disconnect), ("close", state and state.close)):
            if fn:
                try:
                    fn()
                except Exception:
                    log.warning("%s: %s failed", self.name, what, exc_info=True)


# -- the cluster's parts -----------------------------------------------------


@dataclass(eq=False)
class _Supervisor:
    id: str
    hostname: str
    ports: tuple
    session: _Session
    started: float = 0.0
    lost: bool = False
    return_at: float = 0.0
    epoch: int = 0  # bumped when it comes back: its workers restart
    busy: bool = False


@dataclass(eq=False)
class _Task:
    id: int
    component: _Component
    storm: _Storm
    slot: tuple  # (node id, port)
    error_prone: bool
    rates: dict  # counter key -> tuples/s while the storm is active
    latency: dict  # latency key -> current average ms
    started: float = 0.0
    last: float | None = None
    counts: dict = field(default_factory=dict)
    latency_avg: dict = field(default_factory=dict)  # (window, key) -> ms
    alive: bool = True
    revive_at: float | None = None
    epoch: int = 0
    busy: bool = False


@dataclass(eq=False)
class _Storm:
    id: str
    name: str
    launch_time_secs: int
    topology: _Topology
    tasks: dict  # task id -> _Task
    gate: _Gate = field(default_factory=_Gate)
    phase: str = "submitting"  # then "active", "inactive", "removing", "removed"
    start_times: dict = field(default_factory=dict)  # task id -> task_start_time_secs

    @property
    def live(self) -> bool:
        return self.phase in ("active", "inactive")


# -- the simulator -----------------------------------------------------------


class Simulator:
    """A Storm master, supervisors and tasks writing one cluster's state.

    :param state_factory: called with no arguments, returns a new
        :class:`~clusterstate.protocol.ClusterState` session each call.
    :param supervisors: how many supervisors, each on its own session.
    :param storms: how many storms the master keeps active.
    :param tasks_per_storm: tasks in each storm, spread over its components.
    :param heartbeat_secs: how often each supervisor and task heartbeats.
    :param error_rate: errors reported per second, cluster-wide.
    :param error_task_fraction: the share of each storm's tasks that report
        errors (at least one task per storm when above 0).
    :param churn_secs: how often the master removes the storms it deactivated
        last time, deactivates one and submits replacements; 0 never does.
    :param task_death_rate: task deaths per second, cluster-wide.
    :param supervisor_loss_rate: supervisor losses per second, cluster-wide.
    :param ports_per_supervisor: worker ports per supervisor, from 6700.
    :param session_per: ``"worker"`` (tasks share their worker's session, as
        in Storm), ``"supervisor"`` (their supervisor's) or ``"auto"``.
    :param workers: worker threads making the writes once started.
    :param remove_on_stop: remove this simulator's storms when stopping.
    :param seed: seeds the random choices (deterministic under :meth:`step`).
    :param time_fn: the clock, in seconds since the epoch.
    :param shard: ``(index, count)``: play only this share of a cluster that
        ``count`` simulators (one per process) play together: every
        ``count``-th supervisor and storm and ``1/count`` of each rate, with
        ids, hosts and names that do not collide with the other shards'.
    """

    def __init__(
        self,
        state_factory,
        *,
        supervisors: int = 3,
        storms: int = 4,
        tasks_per_storm: int = 15,
        heartbeat_secs: float = 3.0,
        error_rate: float = 0.5,
        error_task_fraction: float = 0.1,
        churn_secs: float = 60.0,
        task_death_rate: float = 0.02,
        supervisor_loss_rate: float = 0.003,
        ports_per_supervisor: int = 4,
        session_per: str = "auto",
        workers: int = 8,
        remove_on_stop: bool = False,
        seed: int | None = None,
        time_fn=time.time,
        shard: tuple[int, int] = (0, 1),
    ):
        index, count = shard
        if not 0 <= index < count:
            raise ValueError("shard must be (index, count) with 0 <= index < count")
        if count > 1:
            # this process plays every count-th supervisor and storm, and its share of the rates
            supervisors = len(range(index, supervisors, count))
            storms = len(range(index, storms, count))
            error_rate, task_death_rate = error_rate / count, task_death_rate / count
            supervisor_loss_rate /= count
            seed = None if seed is None else seed * count + index
        if supervisors < 1 or storms < 0 or tasks_per_storm < 1 or ports_per_supervisor < 1:
            raise ValueError("need at least one supervisor, one port and one task per storm")
        if heartbeat_secs <= 0:
            raise ValueError("heartbeat_secs must be positive")
        for name, value in (
            ("error_rate", error_rate),
            ("churn_secs", churn_secs),
            ("task_death_rate", task_death_rate),
            ("supervisor_loss_rate", supervisor_loss_rate),
        ):
            if value < 0:
                raise ValueError(f"{name} must not be negative")
        if not 0 <= error_task_fraction <= 1:
            raise ValueError("error_task_fraction must be between 0 and 1")
        if session_per not in SESSION_MODES:
            raise ValueError(f"session_per must be one of {', '.join(SESSION_MODES)}")

        self._factory = state_factory
        self.target_storms = storms
        self.tasks_per_storm = tasks_per_storm
        self.heartbeat_secs = float(heartbeat_secs)
        self.error_rate = error_rate
        self.error_task_fraction = error_task_fraction
        self.churn_secs = churn_secs
        self.task_death_rate = task_death_rate
        self.supervisor_loss_rate = supervisor_loss_rate
        self.remove_on_stop = remove_on_stop
        self.monitor_secs = max(0.2, min(MONITOR_SECS, self.heartbeat_secs))
        self.reassign_secs = min(REASSIGN_SECS, 5 * self.heartbeat_secs)
        self._time = time_fn
        self._rng = random.Random(seed)
        self._n_workers = workers

        slots = supervisors * ports_per_supervisor
        if session_per == "auto":
            per_storm = min(self._workers_for(tasks_per_storm, slots, storms), slots)
            total = supervisors + 1 + storms * per_storm
            session_per = "worker" if total <= MAX_AUTO_SESSIONS else "supervisor"
        self.session_per = session_per

        self._lock = threading.RLock()
        self._heap: list = []
        self._seq = itertools.count()
        self._shard = (index, count)
        self._storm_counter = itertools.count(index + 1, count)  # unique across shards
        self._started = False
        self._booted = False
        self._stopping = False
        self._stopped = False
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._master_pool: ThreadPoolExecutor | None = None
        self._fanout: ThreadPoolExecutor | None = None  # the master's bulk writes
        self._master_busy = False
        self._next_churn: float | None = None
        self._missing_since: dict = {}
        self._swept = False  # leftovers of an earlier run looked for at least once
        self._worker_sessions: dict = {}
        self._task_list: list | None = None
        self._failure_log: dict = {}
        self._counts = dict.fromkeys(
            (
                "task_beats",
                "supervisor_beats",
                "errors",
                "task_deaths",
                "task_restarts",
                "supervisor_losses",
                "supervisor_returns",
                "submitted",
                "deactivated",
                "removed",
                "reassigned",
                "leftovers_taken_down",
                "failures",
            ),
            0,
        )

        self.master = _Session(state_factory, "master", time_fn)
        self.supervisors: dict[str, _Supervisor] = {}
        ports = tuple(range(FIRST_WORKER_PORT, FIRST_WORKER_PORT + ports_per_supervisor))
        for i in range(supervisors):
            sid = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
            host = f"supervisor{i * count + index + 1:02d}.storm.local"
            self.supervisors[sid] = _Supervisor(sid, host, ports, self._new_session(sid))
        self.storms: dict[str, _Storm] = {}
        self.removed_storm_ids: list[str] = []

    # -- public ------------------------------------------------------------

    def start(self) -> None:
        """Run the cluster on background threads until :meth:`stop`."""
        with self._lock:
            if self._started or self._stopped:
                raise RuntimeError("a simulator starts once")
            self._started = True
            self._pool = ThreadPoolExecutor(self._n_workers, thread_name_prefix="simulate")
            self._master_pool = ThreadPoolExecutor(1, thread_name_prefix="simulate-master")
            self._fanout = ThreadPoolExecutor(self._n_workers, thread_name_prefix="simulate-fanout")
        self._thread = threading.Thread(target=self._loop, name="simulate-clock", daemon=True)
        self._thread.start()
        log.info(
            "simulating %d supervisors, %d storms of %d tasks, beating every %gs (%s sessions)",
            len(self.supervisors),
            self.target_storms,
            self.tasks_per_storm,
            self.heartbeat_secs,
            self.session_per,
        )

    def stop(self) -> None:
        """Stop every thread and close every session; harmless if repeated.

        The storms stay in the store (as when a real cluster goes down) unless
        the simulator was made with ``remove_on_stop``.
        """
        with self._lock:
            if self._stopped:
                return
            self._stopped = self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        for pool in (self._master_pool, self._fanout, self._pool):
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
        if self.remove_on_stop:
            with ThreadPoolExecutor(8, thread_name_prefix="simulate-remove") as remover:
                remove = partial(self._guarded, self._remove_storm_now)
                list(remover.map(remove, list(self.storms.values())))
        with self._lock:
            sessions = [
                *self._worker_sessions.values(),
                *(s.session for s in self.supervisors.values()),
                self.master,
            ]
            self._worker_sessions.clear()
        with ThreadPoolExecutor(8, thread_name_prefix="simulate-close") as closer:
            list(closer.map(_Session.close, sessions))
        log.info("simulator stopped: %s", self.counts())

    def run(self, duration: float | None = None, status_secs: float = 10.0) -> None:
        """Start, wait ``duration`` seconds (``None`` or 0: until interrupted), stop.

        A ``KeyboardInterrupt`` (Ctrl-C, or SIGTERM as set up by :func:`main`)
        ends the wait; the simulator is stopped cleanly in every case.
        """
        self.start()
        try:
            begin = time.monotonic()
            next_status = begin + status_secs
            while not self._stopping:
                now = time.monotonic()
                if duration and now - begin >= duration:
                    break
                if now >= next_status:
                    log.info("%s", self.counts())
                    next_status = now + status_secs
                time.sleep(0.1)
        except KeyboardInterrupt:
            log.info("interrupted")
        finally:
            self.stop()

    def step(self, now: float | None = None) -> int:
        """Do everything due by ``now`` (default: the clock), in order; return how many.

        Before :meth:`start` every write is made at once in the caller's thread.
        """
        if now is None:
            now = self._time()
        with self._lock:
            if not self._booted and not self._stopping:
                self._booted = True
                self._bootstrap(now)
        ran = 0
        while True:
            with self._lock:
                if self._stopping or not self._heap or self._heap[0][0] > now:
                    return ran
                due, _, handler, obj = heapq.heappop(self._heap)
            handler(obj, due, now)
            ran += 1

    def counts(self) -> dict:
        """Running totals: beats, errors, deaths, losses, storms submitted and removed, failures."""
        with self._lock:
            out = dict(self._counts)
            out["storms"] = sum(1 for s in self.storms.values() if s.live)
            out["tasks"] = sum(len(s.tasks) for s in self.storms.values() if s.live)
            out["supervisors"] = sum(1 for s in self.supervisors.values() if not s.lost)
        return out

    def lose_supervisor(
        self, supervisor_id: str, now: float | None = None, return_after: float | None = None
    ) -> None:
        """Close a supervisor's session: its node and its tasks' heartbeats vanish.

        :param supervisor_id: one of :attr:`supervisors`.
        :param now: the time of the loss (default: the clock).
        :param return_after: seconds until it comes back on a fresh session
            (default: 4 to 12 heartbeats).
        """
        now = self._time() if now is None else now
        if return_after is None:
            return_after = self._rng.uniform(4, 12) * self.heartbeat_secs
        with self._lock:
            sup = self.supervisors[supervisor_id]
            if sup.lost:
                return
            sup.lost = True
            sup.return_at = now + return_after
            old = [sup.session]
            sup.session = self._new_session(sup.id)
            for key in [k for k in self._worker_sessions if k[1] == sup.id]:
                old.append(self._worker_sessions.pop(key))
            self._counts["supervisor_losses"] += 1
        log.info("supervisor %s (%s) lost", sup.id, sup.hostname)
        for session in old:
            self._dispatch(session.close)

    def tasks(self) -> list[_Task]:
        """Every task of every live storm."""
        with self._lock:
            if self._task_list is None:
                self._task_list = [
                    t for s in self.storms.values() if s.live for t in s.tasks.values()
                ]
            return self._task_list

    # -- scheduling ----------------------------------------------------------

    def _at(self, due: float, handler, obj=None) -> None:
        with self._lock:
            heapq.heappush(self._heap, (due, next(self._seq), handler, obj))

    def _bootstrap(self, now: float) -> None:
        hb = self.heartbeat_secs
        n = len(self.supervisors)
        for i, sup in enumerate(self.supervisors.values()):
            sup.started = now
            # first beats at once (spread over a tenth of the interval), then every hb
            self._at(now + hb * 0.1 * i / n, self._on_supervisor_beat, sup)
        # in threads, let the supervisors' first beats land before the master looks
        self._at(now + hb * 0.1 + (0.3 if self._started else 0.0), self._on_master_tick)
        if self.churn_secs:
            self._next_churn = now + self.churn_secs
        if self.error_rate:
            self._at(now + self._rng.expovariate(self.error_rate), self._on_error)
        if self.task_death_rate:
            self._at(now + self._rng.expovariate(self.task_death_rate), self._on_task_death)
        if self.supervisor_loss_rate:
            loss_at = now + self._rng.expovariate(self.supervisor_loss_rate)
            self._at(loss_at, self._on_supervisor_loss)

    def _next_beat(self, due: float, now: float) -> float:
        # keep the phase; skip beats missed while we were behind
        nxt = due + self.heartbeat_secs
        if nxt <= now:
            nxt += math.ceil((now - nxt) / self.heartbeat_secs + 1e-9) * self.heartbeat_secs
        return nxt

    def _next_poisson(self, due: float, now: float, rate: float) -> float:
        # catch up on a short backlog only, so a long pause is not followed by a burst
        return max(due, now - 5.0) + self._rng.expovariate(rate)

    def _loop(self) -> None:
        while not self._stopping:
            try:
                self.step()
            except Exception:
                log.exception("simulator step failed")
            with self._lock:
                nxt = self._heap[0][0] if self._heap else math.inf
            self._wake.wait(min(max(nxt - self._time(), 0.0), 0.1))

    def _dispatch(self, fn, *args, master: bool = False) -> None:
        pool = self._master_pool if master else self._pool
        if pool is None:
            self._guarded(fn, *args)
            return
        try:
            pool.submit(self._guarded, fn, *args)
        except RuntimeError:  # shut down while stopping
            pass

    def _guarded(self, fn, *args) -> None:
        try:
            fn(*args)
        except _Shut:
            pass
        except Exception as exc:
            self._failed(getattr(fn, "__name__", "write"), exc)

    def _failed(self, what: str, exc: Exception) -> None:
        # a failed write is made again on the next tick; log each kind once per 10 s
        key = (what, type(exc))
        now = time.monotonic()
        with self._lock:
            self._counts["failures"] += 1
            last, suppressed = self._failure_log.get(key, (-math.inf, 0))
            if now - last < 10.0:
                self._failure_log[key] = (last, suppressed + 1)
                return
            self._failure_log[key] = (now, 0)
        more = f" (and {suppressed} more like it)" if suppressed else ""
        if isinstance(exc, _EXPECTED_FAILURES):
            log.warning("%s failed, will retry: %s: %s%s", what, type(exc).__name__, exc, more)
        else:
            log.error("%s failed, will retry%s", what, more, exc_info=exc)

    # -- sessions ------------------------------------------------------------

    def _new_session(self, supervisor_id: str) -> _Session:
        return _Session(self._factory, f"supervisor {supervisor_id}", self._time)

    def _task_session(self, task: _Task) -> _Session | None:
        """The session a task writes on, or None while its supervisor is lost."""
        node, port = task.slot
        sup = self.supervisors.get(node)
        if sup is None or sup.lost:
            return None
        if self.session_per == "supervisor":
            return sup.session
        key = (task.storm.id, node, port)
        with self._lock:
            session = self._worker_sessions.get(key)
            if session is None:
                name = f"worker {task.storm.id} {node}:{port}"
                session = _Session(self._factory, name, self._time)
                self._worker_sessions[key] = session
            return session

    # -- supervisors ---------------------------------------------------------

    def _on_supervisor_beat(self, sup: _Supervisor, due: float, now: float) -> None:
        self._at(self._next_beat(due, now), self._on_supervisor_beat, sup)
        if sup.lost:
            if now < sup.return_at:
                return
            with self._lock:
                sup.lost = False
                sup.started = now
                sup.epoch += 1
                self._counts["supervisor_returns"] += 1
            log.info("supervisor %s (%s) is back", sup.id, sup.hostname)
        if sup.busy:
            return
        sup.busy = True
        self._dispatch(self._beat_supervisor, sup, sup.session)

    def _beat_supervisor(self, sup: _Supervisor, session: _Session) -> None:
        try:
            now = self._time()
            info = SupervisorInfo(
                time_secs=int(now),
                hostname=sup.hostname,
                worker_ports=sup.ports,
                uptime_secs=int(now - sup.started),
            )
            with session.use() as scs:
                scs.set_supervisor_heartbeat(sup.id, info)
            with self._lock:
                self._counts["supervisor_beats"] += 1
        finally:
            sup.busy = False

    def _on_supervisor_loss(self, _obj, due: float, now: float) -> None:
        self._at(self._next_poisson(due, now, self.supervisor_loss_rate), self._on_supervisor_loss)
        live = [s for s in self.supervisors.values() if not s.lost]
        if len(live) > 1:
            self.lose_supervisor(self._rng.choice(live).id, now)

    # -- tasks ---------------------------------------------------------------

    def _on_task_beat(self, task: _Task, due: float, now: float) -> None:
        if not task.storm.live:
            return  # removed: its beats end here
        self._at(self._next_beat(due, now), self._on_task_beat, task)
        if task.busy:
            return
        if not task.alive:
            if task.revive_at is None or now < task.revive_at:
                return
            task.alive, task.revive_at = True, None
            self._restart_task(task, now)
            with self._lock:
                self._counts["task_restarts"] += 1
        session = self._task_session(task)
        if session is None:
            return
        task.busy = True
        self._dispatch(self._beat_task, task, session)

    def _beat_task(self, task: _Task, session: _Session) -> None:
        try:
            now = self._time()
            sup = self.supervisors[task.slot[0]]
            if task.epoch != sup.epoch:  # its machine came back: the worker restarted
                self._restart_task(task, now)
                task.epoch = sup.epoch
            beat = TaskHeartbeat(
                time_secs=int(now),
                uptime_secs=int(now - task.started),
                stats=self._advance_stats(task, now),
            )
            with task.storm.gate.enter(), session.use() as scs:
                scs.set_task_heartbeat(task.storm.id, task.id, beat)
            with self._lock:
                self._counts["task_beats"] += 1
        finally:
            task.busy = False

    def _restart_task(self, task: _Task, now: float) -> None:
        task.started = now
        task.last = None
        task.counts = {}
        task.latency_avg = {}

    def _on_task_death(self, _obj, due: float, now: float) -> None:
        self._at(self._next_poisson(due, now, self.task_death_rate), self._on_task_death)
        tasks = self.tasks()
        if not tasks:
            return
        task = self._rng.choice(tasks)
        if not task.alive or not task.storm.live:
            return
        task.alive = False
        if self._rng.random() < 0.8:
            task.revive_at = now + self._rng.uniform(2, 8) * self.heartbeat_secs
        with self._lock:
            self._counts["task_deaths"] += 1
        # a task shut down removes its heartbeat; a crashed one just stops beating
        if self._rng.random() < 0.5:
            session = self._task_session(task)
            if session is not None:
                self._dispatch(self._remove_task_heartbeat, task, session)

    def _remove_task_heartbeat(self, task: _Task, session: _Session) -> None:
        with task.storm.gate.enter(), session.use() as scs:
            scs.remove_task_heartbeat(task.storm.id, task.id)

    def _on_error(self, _obj, due: float, now: float) -> None:
        self._at(self._next_poisson(due, now, self.error_rate), self._on_error)
        candidates = [t for t in self.tasks() if t.error_prone]
        for _ in range(5):  # a few tries to find one that is running
            if not candidates:
                return
            task = self._rng.choice(candidates)
            session = self._task_session(task) if task.alive and task.storm.live else None
            if session is not None:
                comp = task.component
                text = make_error(self._rng, comp.id, comp.type, comp.package)
                self._dispatch(self._report_error, task, session, text)
                return

    def _report_error(self, task: _Task, session: _Session, text: str) -> None:
        with task.storm.gate.enter(), session.use() as scs:
            scs.report_task_error(task.storm.id, task.id, text)
        with self._lock:
            self._counts["errors"] += 1

    # -- stats ---------------------------------------------------------------

    def _advance_stats(self, task: _Task, now: float) -> dict:
        """Grow the task's counters since its last beat and render them as Stats."""
        rng = self._rng
        dt = 0.0 if task.last is None else max(0.0, now - task.last)
        task.last = now
        speed = 1.0 if task.storm.phase == "active" else 0.0  # inactive: spouts stop
        for key, rate in task.rates.items():
            grown = rate * speed * dt * rng.uniform(0.85, 1.15)
            task.counts[key] = task.counts.get(key, 0.0) + grown
        for key, ms in task.latency.items():  # latencies drift slowly
            task.latency[key] = min(max(ms * rng.uniform(0.96, 1.04), 0.05), 5000.0)

        uptime = max(now - task.started, 0.0)
        # a window holds the counts of its last w seconds: all of them while up for less
        shares = {
            w: 1.0 if w == "all-time" or uptime <= int(w) else int(w) / uptime for w in WINDOWS
        }
        smoothing = {"600": 0.5, "10800": 0.1, "86400": 0.02, "all-time": 0.01}

        def count(key, w):
            return int(task.counts.get(key, 0.0) * shares[w]) // SAMPLE_RATE * SAMPLE_RATE

        def latency(key, w):
            ms = task.latency[key]
            avg = task.latency_avg.get((w, key))
            avg = ms if avg is None else avg + smoothing[w] * (ms - avg)
            task.latency_avg[(w, key)] = avg
            return round(avg, 3) if count(("acked", *key), w) else 0.0

        comp = task.component
        stats = {"type": comp.type, "rate": SAMPLE_RATE}
        for kind in ("emitted", "transferred"):
            stats[kind] = {w: {s: count((kind, s), w) for s in comp.streams} for w in WINDOWS}
        if comp.type == "spout":
            keys = [(s,) for s in comp.streams]
            for kind in ("acked", "failed"):
                stats[kind] = {w: {k[0]: count((kind, *k), w) for k in keys} for w in WINDOWS}
            stats["complete_latencies"] = {w: {k[0]: latency(k, w) for k in keys} for w in WINDOWS}
        else:
            for kind in ("acked", "failed"):
                stats[kind] = {
                    w: _nest({k: count((kind, *k), w) for k in comp.inputs}) for w in WINDOWS
                }
            stats["process_latencies"] = {
                w: _nest({k: latency(k, w) for k in comp.inputs}) for w in WINDOWS
            }
        return stats

    # -- the master ----------------------------------------------------------

    def _on_master_tick(self, _obj, due: float, now: float) -> None:
        with self._lock:
            busy = self._master_busy
            self._master_busy = True
        if not busy:
            self._dispatch(self._master_tick, master=True)
        # tick again soon while the target is not met (at start: until supervisors show)
        wanting = self.counts()["storms"] < self.target_storms
        nxt = due + (min(1.0, self.monitor_secs) if wanting else self.monitor_secs)
        self._at(max(nxt, now), self._on_master_tick)

    def _master_tick(self) -> None:
        try:
            now = self._time()
            with self.master.use() as scs:
                slots, hosts = self._live_slots(scs)
                if not self._swept or self._shard[1] == 1:
                    self._take_down_leftovers(scs)
                self._forget_missing(hosts, now)
                if self._next_churn is not None and now >= self._next_churn:
                    self._next_churn = now + self.churn_secs
                    self._churn(scs)
                for storm in list(self.storms.values()):
                    if storm.phase == "removing":
                        self._remove_storm(scs, storm)
                    elif storm.phase == "submitting":
                        self._write_submission(scs, storm, now)
                self._reassign(scs, slots, hosts, now)
                self._top_up(scs, slots, hosts, now)
        finally:
            with self._lock:
                self._master_busy = False

    def _live_slots(self, scs) -> tuple[list, dict]:
        """The live supervisors' slots and hosts, as the master reads them."""
        slots, hosts = [], {}
        for sid in sorted(scs.supervisors()):
            if sid not in self.supervisors:
                continue  # not one of ours: its tasks could not beat
            try:
                info = scs.supervisor_info(sid)
            except ValueError:
                continue  # unreadable: skip it, as nimbus would
            if info is None:
                continue
            hosts[sid] = info.hostname
            slots.extend((sid, port) for port in info.worker_ports)
        return slots, hosts

    def _forget_missing(self, hosts: dict, now: float) -> None:
        for sid in self.supervisors:
            if sid in hosts:
                self._missing_since.pop(sid, None)
            else:
                self._missing_since.setdefault(sid, now)

    def _churn(self, scs) -> None:
        for storm in list(self.storms.values()):
            if storm.phase == "inactive":
                self._remove_storm(scs, storm)
        active = [s for s in self.storms.values() if s.phase == "active"]
        if active:
            storm = self._rng.choice(active)
            scs.deactivate_storm(storm.id)
            storm.phase = "inactive"
            with self._lock:
                self._counts["deactivated"] += 1
            log.info("deactivated %s", storm.id)

    def _remove_storm(self, scs, storm: _Storm) -> None:
        """Remove a storm as Storm's master does: tasks, then assignment, then the rest."""
        with self._lock:
            storm.phase = "removing"
            self._task_list = None
        storm.gate.close()  # no heartbeat or error of it lands after its teardown
        scs.remove_storm(storm.id)
        scs.teardown_heartbeats(storm.id)
        scs.teardown_task_errors(storm.id)
        with self._lock:
            storm.phase = "removed"
            self.storms.pop(storm.id, None)
            self.removed_storm_ids.append(storm.id)
            self._counts["removed"] += 1
            workers = [k for k in self._worker_sessions if k[0] == storm.id]
            sessions = [self._worker_sessions.pop(k) for k in workers]
        for session in sessions:
            session.close()
        log.info("removed %s", storm.id)

    def _take_down_leftovers(self, scs) -> None:
        """Take down the storms in the store that no live supervisor runs and that are not ours.

        The simulator plays the whole of a cluster: a storm it did not submit
        is one an earlier run left (its master stopped between deactivating
        and removing, or was stopped while the storm ran, the storm staying
        ACTIVE with every task dead). A storm is such a leftover when it has a
        storm node or an assignment, is not one of this simulator's, and none
        of the supervisors its assignment names is alive, leaving out this
        simulator's own: they run nothing of an earlier run, even when a seed
        gives them its ids. Its tasks can never beat again, so the master
        takes it down as it removes its own storms: deactivate, remove, tear
        down heartbeats and errors. On its first tick it also tears down the
        remains of takedowns cut short (heartbeats, errors or tasks of a storm
        with neither storm node nor assignment).

        A simulator playing the whole cluster looks on every tick, so that a
        storm whose supervisors outlived a killed run by a session timeout is
        taken down once they are gone; a shard looks on its first tick only,
        before the other shards' supervisors could be lost, and leaves
        remains alone, which may be another shard's submission under way.
        """
        whole = self._shard[1] == 1
        first = not self._swept
        with self._lock:
            ours = set(self.storms)
        found = (set(scs.active_storms()) | set(scs.assignments())) - ours
        doomed = []
        if found:
            alive = set(scs.supervisors()) - set(self.supervisors)
            for storm_id in sorted(found):
                try:
                    assignment = scs.assignment_info(storm_id)
                except ValueError:
                    continue  # unreadable: not ours to judge, as nimbus would skip it
                nodes = {n for n, _ in assignment.task_node_port.values()} if assignment else ()
                if not alive.intersection(nodes):
                    doomed.append(storm_id)
        if first and whole:
            rest = set(scs.heartbeat_storms()) | set(scs.task_error_storms())
            doomed += sorted((rest | set(scs.task_storms())) - ours - found)
        if doomed:
            self._take_down(scs, doomed)
        self._swept = True  # not before: a failed look is made again on the next tick

    def _take_down(self, scs, doomed: list) -> None:
        """Take storms down in Storm's order, side by side; absent nodes are no error."""

        def take_down(storm_id):
            scs.deactivate_storm(storm_id)
            scs.remove_storm(storm_id)
            scs.teardown_heartbeats(storm_id)
            scs.teardown_task_errors(storm_id)

        list((self._fanout.map if self._fanout else map)(take_down, doomed))
        with self._lock:
            self._counts["leftovers_taken_down"] += len(doomed)
        log.info("took down %d storms left by an earlier run: %s", len(doomed), ", ".join(doomed))

    def _remove_storm_now(self, storm: _Storm) -> None:
        with self.master.use() as scs:
            scs.deactivate_storm(storm.id)
            self._remove_storm(scs, storm)

    def _top_up(self, scs, slots: list, hosts: dict, now: float) -> None:
        while not self._stopping and slots:
            with self._lock:
                wanted = sum(1 for s in self.storms.values() if s.phase in ("submitting", "active"))
            if wanted >= self.target_storms:
                return
            self._submit(scs, slots, hosts, now)

    def _submit(self, scs, slots: list, hosts: dict, now: float) -> None:
        rng = self._rng
        topology = rng.choice(TOPOLOGIES)
        with self._lock:
            names = {s.name for s in self.storms.values()}
        # names are unique across shards too: shard i of n takes the suffixes equal to i mod n
        index, count = self._shard
        first = index + count * max(0, math.ceil((2 - index) / count))
        suffixes = itertools.count(first, count)
        name = topology.name if index == 0 else f"{topology.name}-{next(suffixes)}"
        while name in names:
            name = f"{topology.name}-{next(suffixes)}"
        launch = int(now)
        storm_id = f"{name}-{next(self._storm_counter)}-{launch}"
        storm = _Storm(storm_id, name, launch, topology, {})

        # the components' shares of the tasks, and the tuples each emits per second
        comps = list(topology.components)[: self.tasks_per_storm]
        counts = _apportion(self.tasks_per_storm, [c.weight for c in comps])
        parallelism = {c.id: n for c, n in zip(comps, counts, strict=True)}
        emit = {}  # (component, stream) -> tuples/s, whole component
        for c in comps:
            if c.type == "spout":
                total = parallelism[c.id] * rng.uniform(50, 400)
            else:
                total = sum(emit.get(i, 0.0) for i in c.inputs) * c.factor
            for stream in c.streams:
                emit[(c.id, stream)] = total
        subscribers = {key: 0 for key in emit}
        for c in comps:
            for i in c.inputs:
                if i in subscribers:
                    subscribers[i] += 1
        error_tasks = round(self.tasks_per_storm * self.error_task_fraction)
        if self.error_task_fraction and not error_tasks:
            error_tasks = 1
        error_ids = set(rng.sample(range(1, self.tasks_per_storm + 1), error_tasks))

        task_id = 0
        for c in comps:
            n = parallelism[c.id]
            for _ in range(n):
                task_id += 1
                rates, latency = {}, {}
                fail = rng.uniform(0.0, 0.01)
                if c.type == "spout":
                    for s in c.streams:
                        r = emit[(c.id, s)] / n * rng.uniform(0.8, 1.2)
                        rates[("emitted", s)] = r
                        rates[("transferred", s)] = r * max(subscribers[(c.id, s)], 1)
                        rates[("acked", s)] = r * (1 - fail)
                        rates[("failed", s)] = r * fail
                        latency[(s,)] = rng.uniform(5, 300)
                else:
                    received = 0.0
                    for i in c.inputs:
                        r = emit.get(i, 0.0) / n * rng.uniform(0.8, 1.2)
                        received += r
                        rates[("acked", *i)] = r * (1 - fail)
                        rates[("failed", *i)] = r * fail
                        latency[i] = rng.uniform(0.1, 40)
                    for s in c.streams:
                        rates[("emitted", s)] = received * c.factor
                        rates[("transferred", s)] = received * c.factor * subscribers[(c.id, s)]
                storm.tasks[task_id] = _Task(
                    task_id, c, storm, ("", 0), task_id in error_ids, rates, latency
                )

        # spread the tasks round-robin over the least-loaded live slots
        workers = self._pick_slots(slots, self._workers_for(self.tasks_per_storm, len(slots)))
        for i, task in enumerate(storm.tasks.values()):
            task.slot = workers[i % len(workers)]
            task.epoch = self.supervisors[task.slot[0]].epoch
            storm.start_times[task.id] = launch
        with self._lock:
            self.storms[storm_id] = storm
        self._write_submission(scs, storm, now, hosts)

    def _workers_for(self, tasks: int, slots: int, storms: int | None = None) -> int:
        storms = self.target_storms if storms is None else storms
        share = max(1, slots // max(storms, 1))
        return max(1, min(math.ceil(tasks / TASKS_PER_WORKER), share))

    def _pick_slots(self, slots: list, n: int, avoid=()) -> list:
        """The ``n`` least-used slots, one per node before a second on any node."""
        with self._lock:
            load = {}
            for storm in self.storms.values():
                for slot in {t.slot for t in storm.tasks.values()}:
                    load[slot] = load.get(slot, 0) + 1
            rotate = next(self._seq)
        nodes = sorted({node for node, _ in slots})
        rank = {node: (i - rotate) % len(nodes) for i, node in enumerate(nodes)}
        ports = {}
        for node, port in sorted(slots):
            ports.setdefault(node, []).append(port)
        order = sorted(
            (s for s in slots if s not in avoid),
            key=lambda s: (load.get(s, 0), ports[s[0]].index(s[1]), rank[s[0]]),
        )
        return order[: max(1, min(n, len(order)))] or list(slots)[:1]

    def _assignment(self, storm: _Storm, hosts: dict) -> Assignment:
        tasks = storm.tasks.values()
        return Assignment(
            master_code_dir=f"/var/storm/nimbus/stormdist/{storm.id}",
            node_host={t.slot[0]: hosts.get(t.slot[0], t.slot[0]) for t in tasks},
            task_node_port={t.id: t.slot for t in tasks},
            task_start_time_secs=dict(storm.start_times),
        )

    def _write_submission(self, scs, storm: _Storm, now: float, hosts: dict | None = None):
        """Submit in Storm's order: heartbeats root, tasks, assignment, then activate."""
        if hosts is None:
            hosts = {sid: s.hostname for sid, s in self.supervisors.items()}
        scs.setup_heartbeats(storm.id)

        def set_task(task):
            scs.set_task(storm.id, task.id, TaskInfo(task.component.id, task.component.type))

        # hundreds of tasks: write them side by side (ZooKeeper commits them together)
        list((self._fanout.map if self._fanout else map)(set_task, storm.tasks.values()))
        scs.set_assignment(storm.id, self._assignment(storm, hosts))
        # each task's first heartbeat comes with the submission, so that a new storm (the
        # first ones of a demo too) shows alive at once; the later beats spread over the interval
        for task in storm.tasks.values():
            task.started = now

        def first_beat(task):
            session = self._task_session(task)
            if session is not None:
                self._guarded(self._beat_task, task, session)

        list((self._fanout.map if self._fanout else map)(first_beat, storm.tasks.values()))
        scs.activate_storm(storm.id, StormBase(storm.name, storm.launch_time_secs))
        n = len(storm.tasks)
        with self._lock:
            storm.phase = "active"
            self._task_list = None
            self._counts["submitted"] += 1
            for i, task in enumerate(storm.tasks.values()):
                offset = (i + self._rng.random()) / n * self.heartbeat_secs
                self._at(now + offset, self._on_task_beat, task)
        workers = len({t.slot for t in storm.tasks.values()})
        log.info("submitted %s: %d tasks on %d workers", storm.id, n, workers)

    def _reassign(self, scs, slots: list, hosts: dict, now: float) -> None:
        """Move the tasks of supervisors gone longer than ``reassign_secs`` onto live slots."""
        gone = {
            sid for sid, since in self._missing_since.items() if now - since >= self.reassign_secs
        }
        if not gone or not slots:
            return
        for storm in list(self.storms.values()):
            if not storm.live:
                continue
            lost = sorted({t.slot for t in storm.tasks.values() if t.slot[0] in gone})
            if not lost:
                continue
            kept = {t.slot for t in storm.tasks.values() if t.slot[0] not in gone}
            targets = self._pick_slots(slots, len(lost), avoid=kept)
            moves = {old: targets[i % len(targets)] for i, old in enumerate(lost)}
            moved = [t for t in storm.tasks.values() if t.slot in moves]
            slot_of = {t.id: t.slot for t in storm.tasks.values()}
            starts = dict(storm.start_times)
            for t in moved:
                slot_of[t.id] = moves[t.slot]
                starts[t.id] = int(now)
            assignment = Assignment(
                master_code_dir=f"/var/storm/nimbus/stormdist/{storm.id}",
                node_host={node: hosts.get(node, node) for node, _ in slot_of.values()},
                task_node_port=slot_of,
                task_start_time_secs=starts,
            )
            scs.set_assignment(storm.id, assignment)
            with self._lock:
                storm.start_times = starts
                for t in moved:
                    t.slot = slot_of[t.id]
                    t.epoch = self.supervisors[t.slot[0]].epoch
                    self._restart_task(t, now)
                self._counts["reassigned"] += len(moved)
            log.info("moved %d tasks of %s off lost supervisors", len(moved), storm.id)


def _nest(flat: dict) -> dict:
    """``{(component, stream): v}`` as ``{component: {stream: v}}``."""
    out = {}
    for (component, stream), value in flat.items():
        out.setdefault(component, {})[stream] = value
    return out


def _apportion(total: int, weights: list) -> list:
    """Split ``total`` by ``weights``, at least one each (weights outnumber total: 1s)."""
    counts = [1] * len(weights)
    for _ in range(total - len(weights)):
        # give the next task to the component furthest below its share
        i = min(range(len(weights)), key=lambda j: counts[j] / weights[j])
        counts[i] += 1
    return counts


# -- command line ------------------------------------------------------------


def _positive(kind):
    def parse(text):
        value = kind(text)
        if value < 0:
            raise argparse.ArgumentTypeError(f"must not be negative: {text}")
        return value

    return parse


def add_arguments(parser) -> None:
    """Add the simulator's size and pace flags to an argparse (or Django) parser."""
    nonneg_int, nonneg = _positive(int), _positive(float)
    add = parser.add_argument
    add("--supervisors", type=nonneg_int, default=3, help="supervisors (default 3)")
    add("--storms", type=nonneg_int, default=4, help="storms kept active (default 4)")
    add("--tasks-per-storm", type=nonneg_int, default=15, help="tasks per storm (default 15)")
    add("--heartbeat-secs", type=nonneg, default=3.0, help="heartbeat interval (default 3)")
    add("--error-rate", type=nonneg, default=0.5, help="errors/s, cluster-wide (default 0.5)")
    add(
        "--error-task-fraction",
        type=nonneg,
        default=0.1,
        help="share of tasks that report errors (default 0.1)",
    )
    add(
        "--churn-secs",
        type=nonneg,
        default=60.0,
        help="seconds between deactivating/removing/submitting storms; 0 never (default 60)",
    )
    add("--task-death-rate", type=nonneg, default=0.02, help="task deaths/s (default 0.02)")
    add(
        "--supervisor-loss-rate",
        type=nonneg,
        default=0.003,
        help="supervisor losses/s (default 0.003)",
    )
    add("--ports-per-supervisor", type=nonneg_int, default=4, help="worker ports (default 4)")
    add(
        "--session-per",
        choices=SESSION_MODES,
        default="auto",
        help="tasks share their worker's or their supervisor's session (default auto)",
    )
    add("--remove-on-stop", action="store_true", help="remove the storms when stopping")
    add("--seed", type=int, default=None, help="random seed")
    add("--duration", type=nonneg, default=0.0, help="seconds to run; 0 until Ctrl-C")


def simulator_from_args(args, state_factory, **overrides) -> Simulator:
    """A :class:`Simulator` on ``state_factory`` from flags added by :func:`add_arguments`."""
    kwargs = dict(
        supervisors=args.supervisors,
        storms=args.storms,
        tasks_per_storm=args.tasks_per_storm,
        heartbeat_secs=args.heartbeat_secs,
        error_rate=args.error_rate,
        error_task_fraction=args.error_task_fraction,
        churn_secs=args.churn_secs,
        task_death_rate=args.task_death_rate,
        supervisor_loss_rate=args.supervisor_loss_rate,
        ports_per_supervisor=args.ports_per_supervisor,
        session_per=args.session_per,
        remove_on_stop=args.remove_on_stop,
        seed=args.seed,
    )
    kwargs.update(overrides)
    return Simulator(state_factory, **kwargs)


def zk_conf(servers: str, root: str) -> dict:
    """A Storm conf dict for a ``host:port,...`` connect string and a root."""
    hosts = [s.strip() for s in servers.split(",") if s.strip()]
    return {
        "storm.zookeeper.servers": hosts,
        "storm.zookeeper.port": 2181,
        "storm.zookeeper.root": root,
    }


def _interrupt(signum, frame):
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the stop short
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


def stop_on_signals() -> None:
    """Make SIGINT and SIGTERM end :meth:`Simulator.run` cleanly, its sessions closed.

    A simulator killed by a signal's default action leaves its supervisors and
    their tasks in ZooKeeper until their sessions time out.
    """
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)


def _parse_shard(text: str) -> tuple[int, int]:
    index, _, count = text.partition("/")
    try:
        return int(index), int(count)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not INDEX/COUNT: {text}") from None


def _run_shards(argv: list, count: int) -> int:
    """Run ``count`` child processes, one shard each; forward a stop to all of them."""
    children = [
        subprocess.Popen(
            [sys.executable, "-m", __spec__.name, *argv]
            + ["--processes", "1", "--shard", f"{i}/{count}"]
        )
        for i in range(count)
    ]
    try:
        for child in children:
            child.wait()
    except KeyboardInterrupt:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout=120)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
    return 0 if all(child.returncode == 0 for child in children) else 1


def main(argv=None) -> int:
    """``python -m clusterstate.simulate``: run a simulated cluster until done."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(
        prog="python -m clusterstate.simulate",
        description="Play a Storm master, its supervisors and tasks against ZooKeeper.",
    )
    add_arguments(parser)
    parser.add_argument(
        "--zk",
        default=os.environ.get("STORMUI_ZK_SERVERS") or "127.0.0.1:2181",
        help="ZooKeeper host:port list (default $STORMUI_ZK_SERVERS or 127.0.0.1:2181)",
    )
    parser.add_argument(
        "--root",
        default=os.environ.get("STORMUI_ZK_ROOT") or "/storm",
        help="Storm's root in ZooKeeper (default $STORMUI_ZK_ROOT or /storm)",
    )
    parser.add_argument("--memory", action="store_true", help="use an in-memory store")
    parser.add_argument(
        "--processes",
        type=int,
        default=0,
        help=f"processes sharing the work; 0: one per {TASKS_PER_PROCESS} tasks, "
        "at most one per core (default 0)",
    )
    parser.add_argument("--shard", type=_parse_shard, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    args = parser.parse_args(argv)
    shard = args.shard or (0, 1)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s"
        + (f" [{shard[0] + 1}/{shard[1]}]" if shard[1] > 1 else "")
        + ": %(message)s",
    )

    processes = args.processes or min(
        os.cpu_count() or 1, math.ceil(args.storms * args.tasks_per_storm / TASKS_PER_PROCESS)
    )
    # an in-memory store lives in one process; each process needs a supervisor of its own
    processes = 1 if args.memory else max(1, min(processes, args.supervisors))
    if args.shard is None and processes > 1:
        signal.signal(signal.SIGINT, _interrupt)
        signal.signal(signal.SIGTERM, _interrupt)
        return _run_shards(argv, processes)

    if args.memory:
        from .memstate import MemoryStore, mk_memory_cluster_state

        store = MemoryStore()

        def factory():
            return mk_memory_cluster_state(store, args.root)

    else:
        from .zkstate import mk_distributed_cluster_state

        conf = zk_conf(args.zk, args.root)

        def factory():
            return mk_distributed_cluster_state(conf)

    try:
        sim = simulator_from_args(args, factory, shard=shard)
    except ValueError as exc:
        parser.error(str(exc))

    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    sim.run(args.duration or None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
