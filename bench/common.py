"""What the benchmarks share: a ZooKeeper, a large simulated cluster written fast, percentiles.

A benchmark cluster is written straight to ZooKeeper in the format of
``docs/contract/cluster-state.md`` ("Tests and benchmarks may write ZooKeeper
directly in this format"), with the records' own codec and
kazoo's async calls in pipelined batches: 20,000 tasks go in a few seconds
instead of the minutes that as many sequential round trips would take.

- Persistent nodes (storms, assignments, tasks, errors) are written by
  :func:`populate` from the benchmark's process.
- Ephemeral nodes (supervisors and task heartbeats) belong to a separate
  process, :class:`HeartbeatWriters` (``python -m bench.common heartbeats``),
  which holds a few sessions open for as long as the benchmark runs and, with
  ``beat_secs`` > 0, rewrites every heartbeat once per ``beat_secs``, spread
  evenly, with growing counts, as the tasks of a real cluster would. Being
  another process, its writes do not compete with the measured one for the GIL.

The cluster is deterministic: storm ``s`` runs topology ``s % 6`` of the
simulator, on four workers; every tenth task (by default) has errors.
"""

from __future__ import annotations

import argparse
import atexit
import gc
import json
import math
import os
import random
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass

from kazoo.client import KazooClient
from kazoo.exceptions import NodeExistsError
from kazoo.retry import KazooRetry

from clusterstate.records import (
    WINDOWS,
    Assignment,
    StormBase,
    SupervisorInfo,
    TaskHeartbeat,
    TaskInfo,
    encode,
)
from clusterstate.simulate import TOPOLOGIES, SimulationConfig, make_error
from clusterstate.zkserver import ZooKeeperServer

#: Requests in flight at once in a pipelined batch (as the mirror's BATCH_SIZE).
BATCH = 2000
PORTS_PER_SUPERVISOR = 4
WORKERS_PER_STORM = 4
FIRST_PORT = 6700

#: The small cluster that outages are played against (``bench.outage``, ``tests/faults``):
#: 3 supervisors, 3 storms of 4 tasks beating every 0.5 s, an error a second, no churn.
FAULT_CLUSTER = SimulationConfig(
    supervisors=3,
    storms=3,
    tasks_per_storm=4,
    heartbeat_secs=0.5,
    error_rate=1.0,
    error_task_fraction=0.5,
    churn_secs=0,
    task_death_rate=0,
    supervisor_loss_rate=0,
    workers=4,
    seed=7,
)


# -- figures ---------------------------------------------------------------------------


def percentile(values, p: float) -> float:
    """The ``p``-th percentile (0-100) of ``values``, linearly interpolated."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = (len(ordered) - 1) * p / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values) -> float:
    return statistics.median(values)


def time_gets(
    client, cases: dict, requests: int, *, warmup: int = 0, max_secs=None, seen=None
) -> dict:
    """Seconds taken by each GET through Django's test ``client``, by case.

    ``cases`` maps a name to ``(url, before)``: every round GETs each case's url once, in
    turn (a busy machine slows them all alike), after ``before()`` if it is not None
    (untimed: it may point the views at the case's source). ``url`` may be a function
    giving each round's url (untimed). ``warmup`` rounds come first, unmeasured, then a
    garbage collection, then ``requests`` measured rounds, fewer if ``max_secs`` pass (at
    least one). Every GET must answer 200; ``seen(name, response)``, if given, is called
    with each measured answer (untimed).
    """
    times: dict = {name: [] for name in cases}
    deadline = None
    for i in range(warmup + requests):
        if i == warmup:
            gc.collect()
            deadline = time.monotonic() + max_secs if max_secs is not None else None
        for name, (url, before) in cases.items():
            if before is not None:
                before()
            if callable(url):
                url = url()
            started = time.perf_counter()
            response = client.get(url)
            elapsed = time.perf_counter() - started
            if response.status_code != 200:
                raise RuntimeError(f"GET {url} answered {response.status_code}")
            if i >= warmup:
                times[name].append(elapsed)
                if seen is not None:
                    seen(name, response)
        if deadline is not None and time.monotonic() > deadline:
            break
    return times


def machine_note() -> str:
    """One line about where the figures were taken."""
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    load = os.getloadavg()[0]
    return (
        f"{os.cpu_count()} cores ({cpu}), Python {sys.version.split()[0]}, "
        f"load average {load:.1f} at the start"
    )


# -- ZooKeeper -------------------------------------------------------------------------


def start_zookeeper(data_dir: str | None = None) -> ZooKeeperServer:
    """A real standalone ZooKeeper on a free loopback port, stopped when this process exits."""
    if data_dir is None:
        data_dir = tempfile.mkdtemp(prefix="stormui-bench-zk-")
        # registered before the server's own stop, so it runs after it
        atexit.register(shutil.rmtree, data_dir, ignore_errors=True)
    return ZooKeeperServer(data_dir).start()


def zk_conf(connect: str, root: str) -> dict:
    """A Storm conf for ``host:port`` and a root."""
    return {
        "storm.zookeeper.servers": [connect],
        "storm.zookeeper.root": root,
        "storm.zookeeper.session.timeout": 20000,
    }


def bench_cluster(zk: str | None, folder, prefix: str):
    """ZooKeeper for a benchmark: ``zk`` if given (``host:port``), else one started in ``folder``.

    :returns: ``(server or None, connect string, a fresh root, its Storm conf)``.
    """
    server = None
    if zk:
        connect = zk
    else:
        server = start_zookeeper(str(folder / "zk"))
        connect = server.connect_string
    root = f"/{prefix}-{uuid.uuid4().hex[:8]}"
    return server, connect, root, zk_conf(connect, root)


def kazoo_client(connect: str, root: str = "/") -> KazooClient:
    """A started kazoo client chrooted at ``root`` (created if absent)."""
    if root != "/":
        boot = KazooClient(hosts=connect, timeout=20)
        boot.start(timeout=30)
        boot.ensure_path(root)
        boot.stop()
        boot.close()
    client = KazooClient(
        hosts=connect + ("" if root == "/" else root),
        timeout=20,
        connection_retry=KazooRetry(max_tries=-1, delay=0.1, max_delay=1.0),
    )
    client.start(timeout=30)
    return client


def pipelined(calls, batch: int = BATCH, tolerate=()) -> list:
    """Run ``(method, args, kwargs)`` calls, ``batch`` in flight at a time; their results.

    An exception of a type in ``tolerate`` stands in for its result.
    """
    results = []
    calls = list(calls)
    for start in range(0, len(calls), batch):
        pending = [m(*a, **k) for m, a, k in calls[start : start + batch]]
        for async_result in pending:
            try:
                results.append(async_result.get(timeout=60))
            except tolerate as exc:
                results.append(exc)
    return results


def delete_tree(connect: str, root: str) -> None:
    """Delete ``root`` and everything below it, pipelined, level by level."""
    client = kazoo_client(connect)
    try:
        levels = [[root]]
        while levels[-1]:
            kids = pipelined(
                [(client.get_children_async, (p,), {}) for p in levels[-1]],
                tolerate=(Exception,),
            )
            below = []
            for parent, names in zip(levels[-1], kids, strict=True):
                if isinstance(names, list):
                    below += [f"{parent}/{name}" for name in names]
            levels.append(below)
        for level in reversed(levels):
            pipelined([(client.delete_async, (p,), {}) for p in level], tolerate=(Exception,))
    finally:
        client.stop()
        client.close()


# -- the cluster -----------------------------------------------------------------------


@dataclass(frozen=True)
class ClusterSpec:
    """The size of a benchmark cluster."""

    storms: int
    tasks_per_storm: int
    supervisors: int
    error_task_every: int = 10  # every n-th task of a storm has errors
    errors_per_task: int = 3
    sessions: int = 4  # heartbeat sessions of the writer process
    launch_time_secs: int = 1_700_000_000

    @classmethod
    def for_tasks(cls, tasks: int) -> ClusterSpec:
        """200 tasks a storm, one supervisor (four slots) a storm: 2,000 is 10 x 200."""
        storms = max(tasks // 200, 1)
        return cls(storms=storms, tasks_per_storm=tasks // storms, supervisors=storms)

    @property
    def tasks(self) -> int:
        return self.storms * self.tasks_per_storm

    def describe(self) -> str:
        return (
            f"{self.tasks:,} tasks: {self.storms} storms x {self.tasks_per_storm} tasks, "
            f"{self.supervisors} supervisors x {PORTS_PER_SUPERVISOR} slots, "
            f"errors on 1 task in {self.error_task_every} ({self.errors_per_task} each)"
        )

    def args(self) -> list[str]:
        return [
            f"--storms={self.storms}",
            f"--tasks-per-storm={self.tasks_per_storm}",
            f"--supervisors={self.supervisors}",
            f"--sessions={self.sessions}",
        ]


def storm_id(spec: ClusterSpec, s: int) -> str:
    return f"{TOPOLOGIES[s % len(TOPOLOGIES)].name}-{s + 1}-{spec.launch_time_secs + s}"


def supervisor_id(i: int) -> str:
    return f"sup-{i:04d}"


def task_components(spec: ClusterSpec, s: int) -> list:
    """The simulator's component of each task of storm ``s``, apportioned by weight."""
    comps = TOPOLOGIES[s % len(TOPOLOGIES)].components
    total = sum(c.weight for c in comps)
    out = []
    for i, c in enumerate(comps):
        n = (
            spec.tasks_per_storm - len(out)
            if i == len(comps) - 1
            else max(round(spec.tasks_per_storm * c.weight / total), 1)
        )
        out.extend([c] * n)
    return out[: spec.tasks_per_storm]


def task_slot(spec: ClusterSpec, s: int, t: int) -> tuple[str, int]:
    slots = spec.supervisors * PORTS_PER_SUPERVISOR
    k = (s * WORKERS_PER_STORM + t % WORKERS_PER_STORM) % slots
    return supervisor_id(k // PORTS_PER_SUPERVISOR), FIRST_PORT + k % PORTS_PER_SUPERVISOR


def stats(component, seed: int, beats: int) -> dict:
    """A heartbeat's stats, shaped as the simulator's: counts grow with ``beats``."""
    base = (seed % 97 + 10) * (beats + 1)

    def counts(n):
        return {w: n * (i + 1) // 20 * 20 for i, w in enumerate(WINDOWS)}

    out = {"type": component.type, "rate": 20}
    for kind, factor in (("emitted", 100), ("transferred", 90)):
        by_window = counts(base * factor)
        out[kind] = {w: {st: by_window[w] for st in component.streams} for w in WINDOWS}
    if component.type == "spout":
        acked, failed = counts(base * 80), counts(base)
        out["acked"] = {w: {"default": acked[w]} for w in WINDOWS}
        out["failed"] = {w: {"default": failed[w]} for w in WINDOWS}
        out["complete_latencies"] = {w: {"default": 10.0 + seed % 13} for w in WINDOWS}
    else:
        acked, failed = counts(base * 40), counts(base // 4)
        inputs = {}
        for comp, stream in component.inputs:
            inputs.setdefault(comp, []).append(stream)
        out["acked"] = {
            w: {c: dict.fromkeys(ss, acked[w]) for c, ss in inputs.items()} for w in WINDOWS
        }
        out["failed"] = {
            w: {c: dict.fromkeys(ss, failed[w]) for c, ss in inputs.items()} for w in WINDOWS
        }
        out["process_latencies"] = {
            w: {c: dict.fromkeys(ss, 1.5 + seed % 7) for c, ss in inputs.items()} for w in WINDOWS
        }
    return out


def populate(connect: str, root: str, spec: ClusterSpec, now: int | None = None) -> int:
    """Write the persistent part of the cluster under ``root``: storms, assignments, tasks
    and errors, pipelined. Heartbeats and supervisors come from :class:`HeartbeatWriters`.

    :returns: the number of nodes written.
    """
    now = int(time.time()) if now is None else now
    rng = random.Random(7)
    client = kazoo_client(connect, root)
    try:
        folders = [
            f"/{r}"
            for r in ("storms", "assignments", "supervisors", "tasks", "taskbeats", "taskerrors")
        ]
        level1, level2, errors = [], [], []
        for s in range(spec.storms):
            sid = storm_id(spec, s)
            comps = task_components(spec, s)
            tnp = {t: task_slot(spec, s, t) for t in range(spec.tasks_per_storm)}
            hosts = {node: f"host-{node[4:]}.example" for node, _port in tnp.values()}
            assignment = Assignment(
                f"/var/storm/nimbus/stormdist/{sid}",
                hosts,
                tnp,
                dict.fromkeys(tnp, spec.launch_time_secs + s),
            )
            level1 += [
                (
                    f"/storms/{sid}",
                    encode(StormBase(sid.rsplit("-", 2)[0], spec.launch_time_secs + s)),
                ),
                (f"/assignments/{sid}", encode(assignment)),
                (f"/tasks/{sid}", b""),
                (f"/taskerrors/{sid}", b""),
            ]
            for t, comp in enumerate(comps):
                level2.append((f"/tasks/{sid}/{t}", encode(TaskInfo(comp.id, comp.type))))
                if t % spec.error_task_every == 0 and spec.errors_per_task:
                    level2.append((f"/taskerrors/{sid}/{t}", b""))
                    for e in range(spec.errors_per_task):
                        text = make_error(rng, comp.id, comp.type, comp.package)
                        when = now - 60 * (spec.errors_per_task - e) - rng.randint(0, 59)
                        errors.append((f"/taskerrors/{sid}/{t}/{when}-", text.encode()))
        written = 0
        for level in ([(f, b"") for f in folders], level1, level2):
            pipelined(
                [(client.create_async, (p, d), {}) for p, d in level], tolerate=(NodeExistsError,)
            )
            written += len(level)
        # sequential: ZooKeeper appends the 10-digit sequence the readers order by
        pipelined([(client.create_async, (p, d), {"sequence": True}) for p, d in errors])
        return written + len(errors)
    finally:
        client.stop()
        client.close()


# -- the heartbeat writer process ------------------------------------------------------


class HeartbeatWriters:
    """A child process that owns the cluster's ephemeral nodes and keeps them beating.

    ``with HeartbeatWriters(connect, root, spec, beat_secs=30):`` returns once
    every supervisor and heartbeat node exists; the process exits when the
    block ends (or when this process dies: it watches its stdin).
    """

    def __init__(
        self,
        connect: str,
        root: str,
        spec: ClusterSpec,
        beat_secs: float = 0.0,
        errors_per_sec: float = 0.0,
    ):
        self.command = [
            sys.executable,
            "-m",
            "bench.common",
            "heartbeats",
            f"--zk={connect}",
            f"--root={root}",
            f"--beat-secs={beat_secs}",
            f"--errors-per-sec={errors_per_sec}",
            *spec.args(),
        ]
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 180) -> HeartbeatWriters:
        self.process = subprocess.Popen(
            self.command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        )
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        line = self.process.stdout.readline() if ready else ""
        if not line.startswith("ready"):
            self.stop()
            raise RuntimeError(f"the heartbeat writers did not start: {line!r}")
        return self

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        process.stdin.close()  # the child's signal to close its sessions and exit
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()


def _heartbeats_main(args) -> int:
    spec = ClusterSpec(args.storms, args.tasks_per_storm, args.supervisors, sessions=args.sessions)
    clients = [kazoo_client(args.zk, args.root) for _ in range(spec.sessions)]
    stop = threading.Event()
    # the parent closes our stdin when done, or dies: either way, stop
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    started = time.time()
    try:
        now = int(started)
        sups = [
            (
                supervisor_id(i),
                encode(
                    SupervisorInfo(
                        now, f"host-{i:04d}.example", tuple(range(FIRST_PORT, FIRST_PORT + 4)), 3600
                    )
                ),
            )
            for i in range(spec.supervisors)
        ]
        tasks = []  # (client, path, component, seed)
        folders = []
        for s in range(spec.storms):
            sid = storm_id(spec, s)
            folders.append(f"/taskbeats/{sid}")
            client = clients[s % len(clients)]
            for t, comp in enumerate(task_components(spec, s)):
                tasks.append((client, f"/taskbeats/{sid}/{t}", comp, s * 1000 + t))
        head = clients[0]
        pipelined(
            [(head.create_async, (p, b""), {}) for p in ["/supervisors", "/taskbeats", *folders]],
            tolerate=(NodeExistsError,),
        )
        pipelined(
            [
                (
                    clients[i % len(clients)].create_async,
                    (f"/supervisors/{sid}", data),
                    {"ephemeral": True},
                )
                for i, (sid, data) in enumerate(sups)
            ]
        )
        beats = [0] * len(tasks)

        def beat_data(i):
            _client, _path, comp, seed = tasks[i]
            return encode(
                TaskHeartbeat(
                    int(time.time()), int(time.time() - started) + 600, stats(comp, seed, beats[i])
                )
            )

        pipelined(
            [
                (c, (p, beat_data(i)), {"ephemeral": True})
                for i, (c, p) in enumerate((t[0].create_async, t[1]) for t in tasks)
            ]
        )
        print(f"ready {len(tasks)} heartbeats, {len(sups)} supervisors", flush=True)

        if args.errors_per_sec > 0:
            threading.Thread(
                target=_write_errors, args=(args, spec, stop), name="errors", daemon=True
            ).start()
        if args.beat_secs <= 0:
            stop.wait()
            return 0
        # rewrite every heartbeat once per beat_secs, in slices every tick
        tick = min(0.25, args.beat_secs / 4)
        per_tick = len(tasks) * tick / args.beat_secs
        done = 0.0
        next_i = 0
        due = time.monotonic()
        while not stop.is_set():
            due += tick
            done += per_tick
            calls = []
            first = next_i
            while next_i < int(done):
                i = next_i % len(tasks)
                beats[i] += 1
                calls.append((tasks[i][0].set_async, (tasks[i][1], beat_data(i)), {}))
                next_i += 1
            if next_i // len(tasks) != first // len(tasks):  # a round done: supervisors beat
                now = int(time.time())
                calls += [
                    (
                        clients[i % len(clients)].set_async,
                        (
                            f"/supervisors/{sid}",
                            encode(
                                SupervisorInfo(
                                    now,
                                    f"host-{i:04d}.example",
                                    tuple(range(FIRST_PORT, FIRST_PORT + 4)),
                                    3600,
                                )
                            ),
                        ),
                        {},
                    )
                    for i, (sid, _data) in enumerate(sups)
                ]
            pipelined(calls, tolerate=(Exception,))
            stop.wait(max(due - time.monotonic(), 0))
        return 0
    finally:
        for client in clients:
            client.stop()
            client.close()


def _write_errors(args, spec: ClusterSpec, stop: threading.Event) -> None:
    """Report ``--errors-per-sec`` task errors, spread over the storms and tasks, as Storm's
    workers do (the port's writer: a sequential node each, the task's newest ten kept)."""
    from clusterstate import mk_storm_cluster_state

    state = mk_storm_cluster_state(zk_conf(args.zk, args.root))
    interval = 1.0 / args.errors_per_sec
    n = 0
    due = time.monotonic()
    try:
        while not stop.is_set():
            s = n % spec.storms
            t = (n // spec.storms * 7) % spec.tasks_per_storm
            host = f"10.0.{n % 250}.{n % 97}:{6700 + n % 4}"
            state.report_task_error(
                storm_id(spec, s), t, f"java.net.ConnectException: Connection refused to {host}"
            )
            n += 1
            due += interval
            stop.wait(max(due - time.monotonic(), 0))
    finally:
        state.disconnect()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.common")
    commands = parser.add_subparsers(dest="command", required=True)
    beats = commands.add_parser("heartbeats", help="own and refresh the ephemeral nodes")
    beats.add_argument("--zk", required=True)
    beats.add_argument("--root", required=True)
    beats.add_argument("--storms", type=int, required=True)
    beats.add_argument("--tasks-per-storm", type=int, required=True)
    beats.add_argument("--supervisors", type=int, required=True)
    beats.add_argument("--sessions", type=int, default=4)
    beats.add_argument("--beat-secs", type=float, default=0.0)
    beats.add_argument("--errors-per-sec", type=float, default=0.0)
    args = parser.parse_args(argv)
    return _heartbeats_main(args)


def print_json(obj) -> None:
    print(json.dumps(obj, indent=1, sort_keys=True))


if __name__ == "__main__":
    sys.exit(main())
