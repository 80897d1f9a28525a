"""What the timeline's tick costs the recorder's thread on a large cluster.

    .venv/bin/python -m bench.timeline_tick --tasks 20000

Writes ``--tasks`` tasks (200 a storm, every one beating) to an in-memory store, mirrors
it with a real :class:`~clusterstate.mirror.ClusterMirror`, and drives a timeline
:class:`~stormui.history.timeline.Part` by hand with a clock of its own (no database:
what it puts is only counted). Times, each the median of ``--repeat`` runs:

- ``baseline``: the first tick, which reads every storm, supervisor and task;
- ``idle tick``: a tick with nothing due (most ticks);
- ``all due``: a tick in which every alive task's heartbeat expires and is found renewed
  (each alive task is looked at again once per ``STORMUI_TASK_TIMEOUT_SECS``, so this
  divided by the timeout is the steady cost per second).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "stormui.settings")

import django  # noqa: E402

django.setup()

from clusterstate import (  # noqa: E402
    Assignment,
    MemoryStore,
    StormBase,
    SupervisorInfo,
    TaskHeartbeat,
    TaskInfo,
    mk_memory_cluster_state,
    mk_storm_cluster_state,
)
from clusterstate.mirror import ClusterMirror  # noqa: E402
from stormui.history import timeline  # noqa: E402

TIMEOUT = 30
PER_STORM = 200


class Source:
    def __init__(self, mirror):
        self.mirror = self.reader = mirror
        self.task_timeout = TIMEOUT
        self.supervisor_timeout = 60


def write(writer, tasks: int, beat_time: int) -> None:
    for s in range(tasks // PER_STORM):
        storm_id = f"bench-{s}-{s}"
        sup = f"sup-{s}"
        writer.set_supervisor_heartbeat(sup, SupervisorInfo(beat_time, f"h{s}", [6700], 1))
        ids = range(1, PER_STORM + 1)
        writer.activate_storm(storm_id, StormBase(storm_id, beat_time))
        writer.setup_heartbeats(storm_id)
        for t in ids:
            writer.set_task(storm_id, t, TaskInfo(f"c{t % 5}", "bolt"))
            writer.set_task_heartbeat(storm_id, t, TaskHeartbeat(beat_time, 100, None))
        writer.set_assignment(
            storm_id,
            Assignment(f"/n/{storm_id}", {sup: f"h{s}"}, {t: [sup, 6700] for t in ids}, {}),
        )


def beat_all(writer, tasks: int, beat_time: int) -> None:
    for s in range(tasks // PER_STORM):
        for t in range(1, PER_STORM + 1):
            writer.set_task_heartbeat(
                f"bench-{s}-{s}", t, TaskHeartbeat(beat_time, 100 + beat_time, None)
            )


def once(tasks: int) -> dict:
    store = MemoryStore()
    writer = mk_storm_cluster_state(mk_memory_cluster_state(store))
    t0 = int(time.time())
    write(writer, tasks, t0)
    mirror = ClusterMirror(mk_memory_cluster_state(store), heartbeat_secs=0.2)
    mirror.start(wait=120)
    part = timeline.Part(Source(mirror))
    part._audit_from = None  # no database here
    put = []
    now = t0 * 1000

    started = time.perf_counter()
    part.tick(now, put.append)
    baseline = time.perf_counter() - started

    started = time.perf_counter()
    part.tick(now + 1000, put.append)
    idle = time.perf_counter() - started

    # every beat renewed, then the clock past every old beat's timeout
    renewed = t0 + TIMEOUT - 1
    beat_all(writer, tasks, renewed)
    storms = [f"bench-{s}-{s}" for s in range(tasks // PER_STORM)]
    # until the mirror's poll has read every renewed beat
    while any(
        mirror.task_heartbeat(s, t).time_secs != renewed
        for s in storms
        for t in range(1, PER_STORM + 1)
    ):
        time.sleep(0.05)
    before = len(put)
    part._supervisors_at = part._tasks_at = float("inf")  # the tasks alone
    started = time.perf_counter()
    part.tick(now + int((TIMEOUT + part._beat_lag() + 1) * 1000), put.append)
    due = time.perf_counter() - started
    assert len(put) == before, f"a renewed task must not die: {put[before : before + 3]}"
    assert len(part._deadlines) >= tasks
    mirror.stop()
    return {"baseline": baseline, "idle": idle, "due": due}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    runs = [once(args.tasks) for _ in range(args.repeat)]

    def med(key):
        values = sorted(r[key] for r in runs)
        return values[len(values) // 2]

    due = med("due")
    print(f"{args.tasks:,} tasks, {args.repeat} runs (medians):")
    print(f"  baseline (once a run)   {med('baseline') * 1000:8.1f} ms")
    print(f"  idle tick               {med('idle') * 1000:8.3f} ms")
    print(f"  all due (per timeout)   {due * 1000:8.1f} ms")
    print(
        f"  steady, per second      {due / TIMEOUT * 1000:8.2f} ms ({due / TIMEOUT:.2%} of a core)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
