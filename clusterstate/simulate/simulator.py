"""The simulator: a master, its supervisors and their tasks, on a clock of events.

See the package's documentation (:mod:`clusterstate.simulate`) for the roles
it plays, the sessions it opens and its pace.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import random
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from kazoo.exceptions import KazooException

from ..errors import NotConnectedError
from ..records import WINDOWS, Assignment, StormBase, SupervisorInfo, TaskHeartbeat, TaskInfo
from .config import SimulationConfig
from .parts import _Storm, _Supervisor, _Task
from .sessions import _Session, _Shut
from .topologies import TOPOLOGIES, make_error

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
#: Tasks per worker the master aims for when it spreads a storm.
TASKS_PER_WORKER = 8

# Failures that come from the store or the network, logged without a traceback.
_EXPECTED_FAILURES = (NotConnectedError, KazooException, ConnectionError, TimeoutError, OSError)


class Simulator:
    """A Storm master, supervisors and tasks writing one cluster's state.

    :param config: the cluster's size and pace, a :class:`SimulationConfig`.
    :param state_factory: called with no arguments, returns a new
        :class:`~clusterstate.protocol.ClusterState` session each call.
    :param time_fn: the clock, in seconds since the epoch.
    :raises ValueError: ``config`` gives its shard no supervisor.
    """

    def __init__(self, config: SimulationConfig, state_factory, *, time_fn=time.time):
        self.config = config
        index, count = config.shard
        supervisors, storms, seed = config.supervisors, config.storms, config.seed
        error_rate, task_death_rate = config.error_rate, config.task_death_rate
        supervisor_loss_rate = config.supervisor_loss_rate
        if count > 1:
            # this process plays every count-th supervisor and storm, and its share of the rates
            supervisors = len(range(index, supervisors, count))
            storms = len(range(index, storms, count))
            error_rate, task_death_rate = error_rate / count, task_death_rate / count
            supervisor_loss_rate /= count
            seed = None if seed is None else seed * count + index
            if supervisors < 1:
                raise ValueError("need at least one supervisor, one port and one task per storm")
        tasks_per_storm, ports_per_supervisor = config.tasks_per_storm, config.ports_per_supervisor

        self._factory = state_factory
        self.target_storms = storms
        self.tasks_per_storm = tasks_per_storm
        self.heartbeat_secs = float(config.heartbeat_secs)
        self.error_rate = error_rate
        self.error_task_fraction = config.error_task_fraction
        self.churn_secs = config.churn_secs
        self.task_death_rate = task_death_rate
        self.supervisor_loss_rate = supervisor_loss_rate
        self.remove_on_stop = config.remove_on_stop
        self.monitor_secs = max(0.2, min(MONITOR_SECS, self.heartbeat_secs))
        self.reassign_secs = min(REASSIGN_SECS, 5 * self.heartbeat_secs)
        self._time = time_fn
        self._rng = random.Random(seed)
        self._n_workers = config.workers

        slots = supervisors * ports_per_supervisor
        session_per = config.session_per
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

        A ``KeyboardInterrupt`` (Ctrl-C, or SIGTERM as set up by
        :func:`~clusterstate.simulate.cli.stop_on_signals`) ends the wait; the simulator
        is stopped cleanly in every case.
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
