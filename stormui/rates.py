"""Tuples per second, from the change of all-time counts between a task's heartbeats.

A heartbeat carries each task's all-time counts; the process keeps, per task, the
previous heartbeat's time and counts (bounded by the tasks it sees: a task that is
gone is forgotten with it) and the rate of its last interval. A rate is the change
of a count over the change of heartbeat time; a count that went down (the task
restarted) counts from zero, never negative. Storms and components sum their alive
tasks' rates, edges their target tasks' input rates.

The storm and component pages chart those rates and the tasks alive over the last
hour: a ring buffer per storm and per component, one point per step (the heartbeat
poll's period, at least :data:`MIN_STEP_SECS`), in the process. Longer ranges come
from the history, not from here.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from typing import NamedTuple

#: how far back the charts go
CHART_SECS = 3600.0
#: a chart holds at most this many points: the step is the heartbeat period, or longer
MAX_POINTS = 720
MIN_STEP_SECS = CHART_SECS / MAX_POINTS
ALL_TIME = "all-time"


class TaskCounts(NamedTuple):
    """A task's all-time counts; ``None`` where the heartbeat's figure is not a count."""

    emitted: int | None
    acked: int | None  # a spout's own; a bolt's summed over its inputs
    failed: int | None
    inputs: dict  # a bolt's acked per (input component, stream); None values unreadable
    transferred: int | None = None


class Rates(NamedTuple):
    """Tuples per second; ``None`` where unknown (no two heartbeats yet, unreadable counts)."""

    emitted: float | None = None
    acked: float | None = None
    failed: float | None = None
    transferred: float | None = None  # last: the figures were (emitted, acked, failed) first


NO_RATES = Rates()


class TaskRate(NamedTuple):
    rates: Rates
    inputs: dict  # acked per second per (input component, stream)


NO_TASK_RATE = TaskRate(NO_RATES, {})


def _count(value) -> int | None:
    """A count as a non-negative int, or ``None`` (negative, fractional, NaN, not a number)."""
    if type(value) is int:
        return value if value >= 0 else None
    if type(value) is float and value >= 0 and value.is_integer():
        return int(value)
    return None


def _all_time(stats: dict, key: str) -> dict | None:
    per = stats.get(key)
    if type(per) is not dict:
        return None
    per = per.get(ALL_TIME)
    return per if type(per) is dict else None


def _sum(values) -> int | None:
    total = 0
    for value in values:
        n = _count(value)
        if n is None:
            return None
        total += n
    return total


def task_counts(stats) -> TaskCounts | None:
    """A task's all-time counts from its heartbeat's stats, or ``None`` when it has none."""
    if type(stats) is not dict:
        return None
    emitted_map = _all_time(stats, "emitted")
    emitted = _sum(emitted_map.values()) if emitted_map is not None else None
    transferred_map = _all_time(stats, "transferred")
    transferred = _sum(transferred_map.values()) if transferred_map is not None else None
    acked_map = _all_time(stats, "acked")
    failed_map = _all_time(stats, "failed")
    inputs: dict = {}
    if stats.get("type") == "spout":
        acked = _sum(acked_map.values()) if acked_map is not None else None
        failed = _sum(failed_map.values()) if failed_map is not None else None
    else:
        # a bolt's acked and failed are keyed by input component, then stream
        acked = 0 if acked_map is not None else None
        for component, per_stream in (acked_map or {}).items():
            if type(per_stream) is not dict:
                acked = None
                continue
            for stream, value in per_stream.items():
                n = _count(value)
                inputs[(str(component), str(stream))] = n
                if n is None or acked is None:
                    acked = None
                else:
                    acked += n
        failed = 0 if failed_map is not None else None
        for per_stream in (failed_map or {}).values():
            s = _sum(per_stream.values()) if type(per_stream) is dict else None
            failed = None if s is None or failed is None else failed + s
    return TaskCounts(emitted, acked, failed, inputs, transferred)


def _per_sec(prev: int | None, cur: int | None, dt: float) -> float | None:
    if prev is None or cur is None:
        return None
    # a count that went down: the task restarted, and counted from zero since
    return (cur if cur < prev else cur - prev) / dt


def rate_between(prev: TaskCounts, cur: TaskCounts, dt: float) -> TaskRate:
    """A task's rates between two heartbeats ``dt`` seconds apart (``dt`` > 0)."""
    rates = Rates(
        _per_sec(prev.emitted, cur.emitted, dt),
        _per_sec(prev.acked, cur.acked, dt),
        _per_sec(prev.failed, cur.failed, dt),
        _per_sec(prev.transferred, cur.transferred, dt),
    )
    inputs = {}
    for key, n in cur.inputs.items():
        # an input new since the last beat counted from zero
        inputs[key] = _per_sec(prev.inputs.get(key, 0), n, dt)
    return TaskRate(rates, inputs)


def _next(prev, beat_time, stats) -> tuple:
    """A task's (heartbeat time, counts, rate) after a heartbeat, from its previous one."""
    if prev is not None and prev[0] == beat_time:
        return prev  # the same heartbeat as before: the same rate
    counts = task_counts(stats)
    rate = NO_TASK_RATE
    if prev is not None and prev[1] is not None and counts is not None:
        dt = beat_time - prev[0]
        # a clock going backwards starts over: no rate until the next beat
        if dt > 0:
            rate = rate_between(prev[1], counts, dt)
    return (beat_time, counts, rate)


class Point(NamedTuple):
    time: float
    emitted: float | None
    acked: float | None
    failed: float | None
    alive: int
    transferred: float | None = None


class RateTracker:
    """Each task's previous heartbeat and last rate, and the charts' ring buffers."""

    def __init__(self, step: float = 5.0):
        self._lock = threading.Lock()
        # storm -> task -> (heartbeat time, its counts, the task's rate)
        self._tasks: dict[str, dict[int, tuple[float, TaskCounts | None, TaskRate]]] = {}
        self._series: dict[str, dict[str | None, deque]] = {}
        self.configure(step)

    def configure(self, step: float) -> None:
        """The charts' step: the heartbeat poll's period, but never more than MAX_POINTS."""
        self.step = max(float(step), MIN_STEP_SECS)
        self.points = math.ceil(CHART_SECS / self.step) + 1
        with self._lock:
            self._series.clear()

    def clear(self) -> None:
        with self._lock:
            self._tasks.clear()
            self._series.clear()

    def task_rate(self, storm_id: str, task_id: int, beat_time, stats) -> TaskRate:
        """The task's rate over its last two heartbeats, remembering this one."""
        with self._lock:
            tasks = self._tasks.setdefault(storm_id, {})
            entry = _next(tasks.get(task_id), beat_time, stats)
            tasks[task_id] = entry
            return entry[2]

    def storm_task_rates(self, storm_id: str, beats) -> dict[int, TaskRate]:
        """Each task's rate over its last two heartbeats, from ``beats`` (task id, heartbeat
        time, stats): the storm's tasks that have a heartbeat now. The storm's other tasks
        are forgotten. One call per storm view: the lock is taken once."""
        out = {}
        with self._lock:
            old = self._tasks.get(storm_id) or {}
            new = {}
            for task_id, beat_time, stats in beats:
                entry = _next(old.get(task_id), beat_time, stats)
                new[task_id] = entry
                out[task_id] = entry[2]
            self._tasks[storm_id] = new
        return out

    def forget_storms(self, keep) -> None:
        """Forget every storm but those in ``keep`` (ids): tasks and charts."""
        with self._lock:
            for table in (self._tasks, self._series):
                for storm_id in [s for s in table if s not in keep]:
                    del table[storm_id]

    def sample(self, storm_id: str, now: float, series: dict) -> None:
        """Add a point per chart of a storm: ``series`` maps None (the storm) or a component
        id to its (rates, tasks alive). Components not named are forgotten; a point in
        the same step as the last one replaces it; a time before the last is dropped."""
        bucket = math.floor(now / self.step)
        with self._lock:
            charts = self._series.get(storm_id)
            if charts is None:
                charts = self._series[storm_id] = {}
            for component in [c for c in charts if c not in series]:
                del charts[component]
            for component, (rates, alive) in series.items():
                ring = charts.get(component)
                if ring is None:
                    ring = charts[component] = deque(maxlen=self.points)
                point = Point(
                    now, rates.emitted, rates.acked, rates.failed, alive, rates.transferred
                )
                if ring:
                    last = ring[-1].time
                    if now < last:
                        continue
                    if math.floor(last / self.step) == bucket:
                        ring[-1] = point
                        continue
                ring.append(point)

    def recent(self, since: float) -> dict[tuple[str, str | None], tuple[Point, ...]]:
        """Every chart's points from ``since`` on, oldest first, by (storm, None or component):
        what the history's time series takes (walked from the newest, so a call costs what
        it returns, not the hour each ring holds)."""
        out = {}
        with self._lock:
            for storm_id, charts in self._series.items():
                for component, ring in charts.items():
                    points = []
                    for p in reversed(ring):
                        if p.time < since:
                            break
                        points.append(p)
                    if points:
                        points.reverse()
                        out[(storm_id, component)] = tuple(points)
        return out

    def series(self, storm_id: str, component: str | None = None, now: float | None = None):
        """A chart's points, oldest first, in the hour up to ``now`` (or up to the last)."""
        with self._lock:
            ring = self._series.get(storm_id, {}).get(component)
            points = tuple(ring) if ring else ()
        if not points:
            return ()
        until = points[-1].time if now is None else now
        since = until - CHART_SECS
        return tuple(p for p in points if since <= p.time <= until)


#: the process's tracker: the cluster views built in this process feed it
TRACKER = RateTracker()
