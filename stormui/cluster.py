"""What the pages show, derived once from a :class:`~clusterstate.reader.StormReader`.

Views never compute figures themselves: they take a :class:`ClusterView` (or a
:class:`StormView` for one storm) built here, from the mirror or, with
``STORMUI_MIRROR=off``, straight from ZooKeeper. The figures follow the
"Derived figures" section of ``docs/contract/dashboard.md``.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from itertools import islice
from typing import NamedTuple

from clusterstate.errors import UnreadableNodeError
from clusterstate.paths import is_valid_id
from clusterstate.reader import StormReader
from clusterstate.records import (
    Assignment,
    StormBase,
    TaskError,
    TaskHeartbeat,
    TaskInfo,
)

from . import rates as _rates
from .rates import NO_RATES, Rates, RateTracker

log = logging.getLogger(__name__)

WINDOWS = ("600", "10800", "86400", "all-time")
WINDOW_LABELS = {
    "600": "10m 0s",
    "10800": "3h 0m 0s",
    "86400": "1d 0h 0m 0s",
    "all-time": "All time",
}
DEFAULT_WINDOW = "all-time"
RECENT_ERRORS = 50
ERRORS_RECENT_SECS = 600
UNKNOWN = "unknown"


def parse_window(value: str | None) -> str:
    """A window name from a query string: ``None``/empty gives all-time, ``:all-time`` is Storm's.

    :raises ValueError: for anything else.
    """
    if not value:
        return DEFAULT_WINDOW
    if value == ":all-time":
        return "all-time"
    if value in WINDOWS:
        return value
    raise ValueError(f"window must be one of {', '.join(WINDOWS)}")


def page_window(value: str | None) -> str:
    """A window name from a page's or its socket's query string: as :func:`parse_window`, but
    anything else gives all-time (a page shows its default; the API refuses it)."""
    try:
        return parse_window(value)
    except ValueError:
        return DEFAULT_WINDOW


@dataclass(frozen=True)
class WindowStats:
    window: str
    emitted: int = 0
    transferred: int = 0
    acked: int = 0
    failed: int = 0
    # complete latency for spouts and storms, process latency for bolts; None when nothing was acked
    latency_ms: float | None = None


@dataclass(frozen=True)
class ErrorView:
    storm_id: str
    task_id: int
    component_id: str | None
    time_secs: int
    error: str
    host: str | None
    port: int | None
    #: its node's sequence number (None: a bare-named node, or not from ZooKeeper); names the
    #: error across processes (:func:`stormui.live.error_key`), left out of comparisons
    seq: int | None = field(default=None, compare=False)


@dataclass(frozen=True)
class WorkerView:
    storm_id: str
    node_id: str
    host: str | None
    port: int
    task_ids: tuple[int, ...]
    supervisor_id: str


@dataclass(frozen=True)
class TaskView:
    storm_id: str
    task_id: int
    component_id: str | None  # None when the task's info is missing or unreadable
    component_type: str  # "spout", "bolt" or "unknown" (its component's type)
    node_id: str | None
    host: str | None
    port: int | None
    start_time_secs: int | None
    uptime_secs: int | None  # from the heartbeat
    heartbeat_time_secs: int | None
    heartbeat_age_secs: int | None
    alive: bool
    stats: dict | None  # the heartbeat's raw stats
    errors: tuple  # TaskError records, oldest first (at most ten)
    unreadable: tuple[str, ...] = ()  # paths of this task's nodes that could not be read

    @cached_property
    def window_stats(self) -> dict[str, WindowStats]:
        # made on demand: a large cluster has tens of thousands of tasks, few of them on a page
        return _window_stats(_stats_sums(self.stats))

    @property
    def last_error(self):
        return self.errors[-1] if self.errors else None


@dataclass(frozen=True)
class ComponentView:
    storm_id: str
    component_id: str
    component_type: str
    task_ids: tuple[int, ...]
    window_stats: dict[str, WindowStats]
    errors: tuple[ErrorView, ...]  # newest first
    tasks_alive: int = 0
    rates: Rates = NO_RATES  # its alive tasks' tuples per second (see stormui.rates)

    @property
    def last_error(self) -> ErrorView | None:
        return self.errors[0] if self.errors else None


@dataclass(frozen=True)
class StormView:
    id: str
    name: str  # falls back to the id
    status: str  # "ACTIVE" (its /storms node exists and is readable) or "INACTIVE"
    launch_time_secs: int | None
    uptime_secs: int | None
    master_code_dir: str | None
    tasks: dict[int, TaskView]  # by task id, ascending
    components: dict[str, ComponentView]  # by component id, ascending
    workers: tuple[WorkerView, ...]  # by (node, port)
    window_stats: dict[str, WindowStats]
    unreadable: bool = False  # its /storms or /assignments node could not be read
    unreadable_paths: tuple[str, ...] = ()
    errors: tuple[ErrorView, ...] = ()  # all its tasks' errors, newest first
    as_of: float = 0.0  # when the figures were computed (epoch seconds)
    # tuples per second: emitted by all its alive tasks, acked and failed by its spouts'
    rates: Rates = NO_RATES
    # acked per second on each (input component, target component, stream)
    input_rates: dict = field(default_factory=dict)

    @property
    def tasks_total(self) -> int:
        return len(self.tasks)

    @cached_property
    def tasks_alive(self) -> int:
        # views are immutable: count once, not on every page that shows it
        return sum(1 for t in self.tasks.values() if t.alive)

    @property
    def workers_total(self) -> int:
        return len(self.workers)

    @property
    def spouts(self) -> list[ComponentView]:
        return [c for c in self.components.values() if c.component_type == "spout"]

    @property
    def bolts(self) -> list[ComponentView]:
        return [c for c in self.components.values() if c.component_type != "spout"]


@dataclass(frozen=True)
class SupervisorView:
    id: str
    host: str | None
    time_secs: int | None
    uptime_secs: int | None
    worker_ports: tuple[int, ...]
    # its node is gone while an assignment still uses it, or its time_secs is older than the timeout
    lost: bool
    workers: tuple[WorkerView, ...]
    unreadable: bool = False
    present: bool = True  # its /supervisors node exists

    @property
    def slots_total(self) -> int:
        return len(self.worker_ports)

    @property
    def slots_used(self) -> int:
        return len({w.port for w in self.workers})


@dataclass(frozen=True)
class ClusterView:
    as_of: float  # when the figures were computed (epoch seconds)
    zk_connected: bool
    synced_at: float | None  # when the source was last known in sync with ZooKeeper
    storms: dict[str, StormView]  # by storm id, ascending
    supervisors: dict[str, SupervisorView]  # by supervisor id, ascending
    slots_total: int
    slots_used: int
    errors_last_10m: int
    recent_errors: tuple[ErrorView, ...] = field(default=())  # newest first, across the cluster

    @property
    def slots_free(self) -> int:
        return max(self.slots_total - self.slots_used, 0)

    @property
    def supervisors_present(self) -> int:
        """The supervisor nodes present (what Storm's ``supervisors`` counts)."""
        return sum(1 for s in self.supervisors.values() if s.present)

    @cached_property
    def tasks_total(self) -> int:
        return sum(s.tasks_total for s in self.storms.values())

    @cached_property
    def tasks_alive(self) -> int:
        return sum(s.tasks_alive for s in self.storms.values())

    @property
    def tasks_dead(self) -> int:
        return self.tasks_total - self.tasks_alive


# -- stats -------------------------------------------------------------------
#
# A task's figures for one window are summed as a list
# [emitted, transferred, acked, failed, latency * acked, acked with a latency],
# so that tasks, components and storms add up the same way and latencies stay
# weighted by the acked counts.

_ZERO_SUMS = {w: (0, 0, 0, 0, 0, 0) for w in WINDOWS}
_EMPTY: dict = {}


def _stats_sums(stats: dict | None) -> dict[str, tuple]:
    """A task's sums per window, from its heartbeat's stats."""
    if not stats:
        return _ZERO_SUMS
    get = stats.get
    spout = get("type") == "spout"
    emitted = get("emitted") or _EMPTY
    transferred = get("transferred") or _EMPTY
    acked = get("acked") or _EMPTY
    failed = get("failed") or _EMPTY
    latencies = get("complete_latencies" if spout else "process_latencies") or _EMPTY
    sums = {}
    for w in WINDOWS:
        w_acked = acked.get(w) or _EMPTY
        w_failed = failed.get(w) or _EMPTY
        w_lat = latencies.get(w) or _EMPTY
        e = emitted.get(w)
        t = transferred.get(w)
        lat_sum = lat_weight = 0
        if spout:
            n_acked = sum(w_acked.values())
            n_failed = sum(w_failed.values())
            for stream, lat in w_lat.items():
                weight = w_acked.get(stream)
                if weight:
                    lat_sum += lat * weight
                    lat_weight += weight
        else:
            # a bolt's acked, failed and latencies are keyed by input component, then stream
            n_acked = n_failed = 0
            for per_stream in w_acked.values():
                n_acked += sum(per_stream.values())
            for per_stream in w_failed.values():
                n_failed += sum(per_stream.values())
            for component, per_stream in w_lat.items():
                c_acked = w_acked.get(component) or _EMPTY
                for stream, lat in per_stream.items():
                    weight = c_acked.get(stream)
                    if weight:
                        lat_sum += lat * weight
                        lat_weight += weight
        sums[w] = (
            sum(e.values()) if e else 0,
            sum(t.values()) if t else 0,
            n_acked,
            n_failed,
            lat_sum,
            lat_weight,
        )
    return sums


# The mirror hands out the same stats object until a heartbeat changes, so a
# rebuild reuses the sums of every task that did not beat since the last one.
# Entries hold their stats object, so its id cannot be reused while cached.
_sums_cache: dict[int, tuple[dict, dict]] = {}


def _cached_sums(stats: dict, cache: dict, fresh: dict) -> dict[str, tuple]:
    key = id(stats)
    hit = cache.get(key)
    if hit is not None and hit[0] is stats:
        sums = hit[1]
    else:
        sums = _stats_sums(stats)
    fresh[key] = (stats, sums)
    return sums


def _sum_all(sums_list: list) -> dict[str, tuple]:
    """The window-by-window total of several tasks' sums."""
    if not sums_list:
        return _ZERO_SUMS
    return {w: tuple(map(sum, zip(*(sums[w] for sums in sums_list), strict=True))) for w in WINDOWS}


def _storm_sums(all_sums: list, spout_sums: list) -> dict[str, tuple]:
    # as in Storm, a storm's acked, failed and complete latency are its spouts'
    everything = _sum_all(all_sums)
    spouts = _sum_all(spout_sums)
    return {w: everything[w][:2] + spouts[w][2:] for w in WINDOWS}


def _window_stats(sums) -> dict[str, WindowStats]:
    out = {}
    for w in WINDOWS:
        emitted, transferred, acked, failed, lat_sum, lat_weight = sums[w]
        out[w] = WindowStats(
            window=w,
            emitted=round(emitted),
            transferred=round(transferred),
            acked=round(acked),
            failed=round(failed),
            latency_ms=(lat_sum / lat_weight) if lat_weight else None,
        )
    return out


# -- per-stream stats ----------------------------------------------------------
#
# Storm's UI shows a component's output per stream and a bolt's input per
# (input component, stream). A heartbeat's stats carry both (the Stats shape of
# docs/contract/cluster-state.md); they are summed here over a component's
# tasks for one window, on demand (only a component's page and API ask).


def is_system_stream(stream: str) -> bool:
    """Storm's system streams (``__ack_ack``, ``__system``...): ids starting with ``__``."""
    return stream.startswith("__")


@dataclass(frozen=True)
class OutputStreamStats:
    """A component's output on one stream, for one window, summed over its tasks."""

    stream: str
    emitted: int = 0
    transferred: int = 0
    acked: int = 0  # spouts only (a spout's acked, failed and latencies are per its own streams)
    failed: int = 0
    latency_ms: float | None = None  # spouts: complete latency, weighted by acked
    unreadable: bool = False  # some task's figure for it was no count (negative, fractional)

    @property
    def system(self) -> bool:
        return is_system_stream(self.stream)


@dataclass(frozen=True)
class InputStreamStats:
    """A bolt's input from one (component, stream), for one window, summed over its tasks."""

    component: str
    stream: str
    acked: int = 0
    failed: int = 0
    latency_ms: float | None = None  # process latency, weighted by acked
    unreadable: bool = False

    @property
    def system(self) -> bool:
        return is_system_stream(self.stream) or is_system_stream(self.component)


def _count(value) -> int | None:
    """A count as a non-negative int, or ``None`` when it is none (negative, fractional, NaN,
    not a number)."""
    if type(value) is int:
        return value if value >= 0 else None
    if type(value) is float and value >= 0 and value.is_integer():
        return int(value)
    return None


def _latency(value) -> float | None:
    if type(value) in (int, float) and value >= 0 and value == value and value != float("inf"):
        return float(value)
    return None


class _Acc:
    """Sums for one stream row: counts, latency * acked and the acked that had a latency."""

    __slots__ = ("counts", "lat_sum", "lat_weight", "bad")

    def __init__(self, n: int):
        self.counts = [0] * n
        self.lat_sum = 0.0
        self.lat_weight = 0
        self.bad = False

    def add(self, i: int, value) -> int | None:
        n = _count(value)
        if n is None:
            self.bad = True
        else:
            self.counts[i] += n
        return n

    def add_latency(self, value, weight: int | None) -> None:
        if value is None:
            return
        lat = _latency(value)
        if lat is None:
            self.bad = True
        elif weight:
            self.lat_sum += lat * weight
            self.lat_weight += weight

    @property
    def latency_ms(self) -> float | None:
        return self.lat_sum / self.lat_weight if self.lat_weight else None


def _window_map(stats: dict, key: str, window: str) -> dict:
    per = stats.get(key)
    per = per.get(window) if type(per) is dict else None
    return per if type(per) is dict else _EMPTY


def output_stream_stats(stats_list, window: str) -> list[OutputStreamStats]:
    """A component's output per stream in ``window``, from its tasks' heartbeat stats.

    Emitted and transferred are summed per stream; for spouts, acked, failed and the
    complete latency too (weighted by each task's acked count, as Storm's UI weights it).
    A bolt's acked and failed are its input's (:func:`input_stream_stats`). Streams are in
    id order; a task's stats that are missing or lack the window add nothing.
    """
    rows: dict[str, _Acc] = {}

    def acc(stream) -> _Acc:
        a = rows.get(stream)
        if a is None:
            a = rows[stream] = _Acc(4)
        return a

    for stats in stats_list:
        if type(stats) is not dict:
            continue
        for i, key in enumerate(("emitted", "transferred")):
            for stream, value in _window_map(stats, key, window).items():
                acc(str(stream)).add(i, value)
        if stats.get("type") != "spout":
            continue
        acked = _window_map(stats, "acked", window)
        for stream, value in acked.items():
            acc(str(stream)).add(2, value)
        for stream, value in _window_map(stats, "failed", window).items():
            acc(str(stream)).add(3, value)
        for stream, value in _window_map(stats, "complete_latencies", window).items():
            acc(str(stream)).add_latency(value, _count(acked.get(stream)))
    return [
        OutputStreamStats(stream, *a.counts, latency_ms=a.latency_ms, unreadable=a.bad)
        for stream, a in sorted(rows.items())
    ]


def input_stream_stats(stats_list, window: str) -> list[InputStreamStats]:
    """A bolt's input per (input component, stream) in ``window``, from its tasks' stats.

    Acked and failed are summed; the process latency is weighted by each task's acked
    count, as Storm's UI weights it. Rows are in (component, stream) order. Spouts' stats
    have no input and add nothing.
    """
    rows: dict[tuple[str, str], _Acc] = {}

    def acc(key) -> _Acc:
        a = rows.get(key)
        if a is None:
            a = rows[key] = _Acc(2)
        return a

    for stats in stats_list:
        if type(stats) is not dict or stats.get("type") != "bolt":
            continue
        acked = _window_map(stats, "acked", window)
        for i, per in enumerate((acked, _window_map(stats, "failed", window))):
            for component, streams in per.items():
                if type(streams) is not dict:
                    acc((str(component), "")).bad = True
                    continue
                for stream, value in streams.items():
                    acc((str(component), str(stream))).add(i, value)
        for component, streams in _window_map(stats, "process_latencies", window).items():
            if type(streams) is not dict:
                continue
            c_acked = acked.get(component)
            c_acked = c_acked if type(c_acked) is dict else _EMPTY
            for stream, value in streams.items():
                acc((str(component), str(stream))).add_latency(value, _count(c_acked.get(stream)))
    return [
        InputStreamStats(c, s, *a.counts, latency_ms=a.latency_ms, unreadable=a.bad)
        for (c, s), a in sorted(rows.items())
    ]


def component_stream_stats(
    storm: StormView, comp: ComponentView, window: str
) -> tuple[list[OutputStreamStats], list[InputStreamStats]]:
    """A component's output and (bolts) input per stream in ``window``, over its tasks."""
    tasks = storm.tasks
    stats_list = [tasks[t].stats for t in comp.task_ids if t in tasks and tasks[t].stats]
    inputs = input_stream_stats(stats_list, window) if comp.component_type != "spout" else []
    return output_stream_stats(stats_list, window), inputs


# -- reading -----------------------------------------------------------------


def _read(fn, *args, bad: list):
    """``fn(*args)``, or ``None`` with the node's path added to ``bad`` when it is unreadable."""
    try:
        return fn(*args)
    except UnreadableNodeError as exc:
        bad.append(exc.path)
        return None


def _errors_many(reader, pairs: list) -> dict | None:
    """Every task's errors in one call, or ``None`` to read them task by task.

    An unreadable error node fails the whole call; read one by one, it is
    recorded on its own task.
    """
    if not pairs:
        return None
    try:
        return reader.task_errors_many(pairs)
    except ValueError:
        log.warning("reading errors at once failed; reading task by task", exc_info=True)
        return None


def _newest_first(errors: list[ErrorView]) -> tuple[ErrorView, ...]:
    # each task's list comes in newest first; a stable sort keeps that order among equal times
    return tuple(sorted(errors, key=lambda e: -e.time_secs))


class TaskRecords(NamedTuple):
    """A task's raw records, as read."""

    task_id: int
    info: TaskInfo | None
    heartbeat: TaskHeartbeat | None
    errors: tuple[TaskError, ...]  # oldest first
    unreadable: tuple[str, ...] = ()  # paths of its nodes that could not be read


@dataclass(frozen=True)
class StormRecords:
    """A storm's raw records, as read: everything :func:`derive_storm` needs."""

    storm_id: str
    base: StormBase | None
    assignment: Assignment | None
    tasks: tuple[TaskRecords, ...]  # by task id, ascending
    unreadable: bool = False  # its /storms or /assignments node could not be read
    unreadable_paths: tuple[str, ...] = ()  # those, and its /tasks node if unreadable


def read_storm(reader: StormReader, storm_id: str) -> StormRecords | None:
    """A storm's records, or ``None`` when neither its /storms nor its /assignments node exists.

    Reads only: an unreadable node is recorded, never raised.
    """
    storm_bad: list[str] = []
    base = _read(reader.storm_base, storm_id, bad=storm_bad)
    assignment = _read(reader.assignment_info, storm_id, bad=storm_bad)
    unreadable = bool(storm_bad)
    if base is None and assignment is None and not unreadable:
        return None  # neither node exists (any more)

    # the assignment names the tasks; /tasks fills in while it is being written or is unreadable
    task_ids = set(assignment.task_node_port) if assignment is not None else set()
    task_ids.update(_read(reader.task_ids, storm_id, bad=storm_bad) or ())
    pairs = [(storm_id, t) for t in sorted(task_ids)]
    all_errors = _errors_many(reader, pairs)

    tasks = []
    for pair in pairs:
        t = pair[1]
        bad: list[str] = []
        info = _read(reader.task_info, storm_id, t, bad=bad)
        beat = _read(reader.task_heartbeat, storm_id, t, bad=bad)
        if all_errors is None:
            try:
                errors = reader.task_errors(storm_id, t)
            except UnreadableNodeError as exc:
                bad.append(exc.path)
                errors = ()
        else:
            errors = all_errors.get(pair) or ()
        tasks.append(TaskRecords(t, info, beat, tuple(errors), tuple(bad)))
    return StormRecords(
        storm_id=storm_id,
        base=base,
        assignment=assignment,
        tasks=tuple(tasks),
        unreadable=unreadable,
        unreadable_paths=tuple(storm_bad),
    )


def derive_storm(
    records: StormRecords,
    *,
    now: float,
    task_timeout: float,
    sums_cache: dict | None = None,
    fresh_sums: dict | None = None,
    tracker: RateTracker | None = None,
) -> StormView:
    """A storm's figures, computed from its records alone (reads nothing).

    :param now: the time the figures are for (epoch seconds): ages, uptimes, liveness.
    :param task_timeout: a task whose heartbeat is older than this is dead.
    :param sums_cache: sums of stats already computed, by the stats' id (see
        :func:`_cached_sums`); ``fresh_sums`` collects those used now.
    :param tracker: keeps each task's previous heartbeat for its rates, and the charts'
        points; without one, no rates.
    """
    sums_cache = {} if sums_cache is None else sums_cache
    fresh_sums = {} if fresh_sums is None else fresh_sums
    storm_id, base, assignment = records.storm_id, records.base, records.assignment
    if assignment is not None:
        task_node_port = assignment.task_node_port
        node_host = assignment.node_host
        start_times = assignment.task_start_time_secs
    else:
        task_node_port, node_host, start_times = {}, {}, {}

    by_component: dict[str, list[TaskRecords]] = {}
    for row in records.tasks:
        if row.info is not None:
            by_component.setdefault(row.info.component_id, []).append(row)

    # a component's type: its tasks' component_type, else their stats' type, else unknown
    component_types = {}
    for cid, crows in by_component.items():
        kind = next((r.info.component_type for r in crows if r.info.component_type), None)
        if kind is None:
            kind = next(
                (r.heartbeat.stats["type"] for r in crows if r.heartbeat and r.heartbeat.stats),
                None,
            )
        component_types[cid] = kind or UNKNOWN

    # the task views and everything summed from them
    tasks: dict[int, TaskView] = {}
    all_sums: list = []
    spout_sums: list = []
    component_sums: dict[str, list] = {cid: [] for cid in by_component}
    component_alive = dict.fromkeys(by_component, 0)
    component_errors: dict[str, list] = {cid: [] for cid in by_component}
    storm_errors: list[ErrorView] = []
    workers: dict[tuple[str, int], list[int]] = {}
    for t, info, beat, errors, bad in records.tasks:
        node_port = task_node_port.get(t)
        node, port = node_port if node_port is not None else (None, None)
        host = node_host.get(node) if node is not None else None
        if node_port is not None:
            workers.setdefault(node_port, []).append(t)
        cid = info.component_id if info is not None else None
        if cid is not None:
            kind = component_types[cid]
        elif beat is not None and beat.stats:
            kind = beat.stats["type"]
        else:
            kind = UNKNOWN
        if beat is not None:
            age = now - beat.time_secs
            alive = age <= task_timeout
            stats = beat.stats
        else:
            age, alive, stats = None, False, None
        tasks[t] = TaskView(
            storm_id=storm_id,
            task_id=t,
            component_id=cid,
            component_type=kind,
            node_id=node,
            host=host,
            port=port,
            start_time_secs=start_times.get(t),
            uptime_secs=beat.uptime_secs if beat is not None else None,
            heartbeat_time_secs=beat.time_secs if beat is not None else None,
            heartbeat_age_secs=max(int(age), 0) if age is not None else None,
            alive=alive,
            stats=stats,
            errors=errors,
            unreadable=bad,
        )
        if stats:
            sums = _cached_sums(stats, sums_cache, fresh_sums)
            all_sums.append(sums)
            if stats.get("type") == "spout":
                spout_sums.append(sums)
            if cid is not None:
                component_sums[cid].append(sums)
        if cid is not None and alive:
            component_alive[cid] += 1
        if errors:
            views = [
                ErrorView(storm_id, t, cid, e.time_secs, e.error, host, port, e.seq)
                for e in reversed(errors)
            ]
            storm_errors.extend(views)
            if cid is not None:
                component_errors[cid].extend(views)

    storm_rates, component_rates, input_rates = _storm_rates(tracker, records, tasks)
    components = {
        cid: ComponentView(
            storm_id=storm_id,
            component_id=cid,
            component_type=component_types[cid],
            task_ids=tuple(r.task_id for r in by_component[cid]),
            window_stats=_window_stats(_sum_all(component_sums[cid])),
            errors=_newest_first(component_errors[cid]),
            tasks_alive=component_alive[cid],
            rates=component_rates.get(cid, NO_RATES),
        )
        for cid in sorted(by_component)
    }
    worker_views = tuple(
        WorkerView(
            storm_id=storm_id,
            node_id=node,
            host=node_host.get(node),
            port=port,
            task_ids=tuple(workers[(node, port)]),
            supervisor_id=node,
        )
        for node, port in sorted(workers)
    )
    active = base is not None
    if tracker is not None:
        alive_total = sum(1 for t in tasks.values() if t.alive)
        charts = {None: (storm_rates, alive_total)}
        for c in components.values():
            charts[c.component_id] = (c.rates, c.tasks_alive)
        tracker.sample(storm_id, now, charts)
    return StormView(
        id=storm_id,
        name=base.storm_name if base is not None and base.storm_name else storm_id,
        status="ACTIVE" if active else "INACTIVE",
        launch_time_secs=base.launch_time_secs if active else None,
        uptime_secs=max(int(now - base.launch_time_secs), 0) if active else None,
        master_code_dir=assignment.master_code_dir if assignment is not None else None,
        tasks=tasks,
        components=components,
        workers=worker_views,
        window_stats=_window_stats(_storm_sums(all_sums, spout_sums)),
        unreadable=records.unreadable,
        unreadable_paths=records.unreadable_paths,
        errors=_newest_first(storm_errors),
        as_of=now,
        rates=storm_rates,
        input_rates=input_rates,
    )


def _storm_rates(tracker: RateTracker | None, records: StormRecords, tasks: dict) -> tuple:
    """The storm's rates, its components' and its edges' (acked per second on each (input,
    target, stream)): its alive tasks' rates summed. A storm's acked and failed are its
    spouts', as in Storm."""
    if tracker is None:
        return NO_RATES, {}, {}
    beats = [
        (r.task_id, r.heartbeat.time_secs, r.heartbeat.stats) for r in records.tasks if r.heartbeat
    ]
    per_task = tracker.storm_task_rates(records.storm_id, beats)
    storm = [None, None, None, None]
    by_component: dict[str, list] = {}
    inputs: dict[tuple[str, str, str], float | None] = {}
    for t, rate in per_task.items():
        task = tasks[t]
        if not task.alive or rate is _rates.NO_TASK_RATE:
            continue
        r = rate.rates
        cid = task.component_id
        spout = task.component_type == "spout"
        for i, value in enumerate(r):
            # emitted and transferred by every task; acked and failed by the spouts
            if value is not None and (i in (0, 3) or spout):
                storm[i] = value if storm[i] is None else storm[i] + value
        if cid is None:
            continue
        sums = by_component.get(cid)
        if sums is None:
            sums = by_component[cid] = [None, None, None, None]
        for i, value in enumerate(r):
            if value is not None:
                sums[i] = value if sums[i] is None else sums[i] + value
        for (source, stream), per_sec in rate.inputs.items():
            key = (source, cid, stream)
            known = inputs.get(key)
            if per_sec is None:
                inputs.setdefault(key, None)
            else:
                inputs[key] = per_sec if known is None else known + per_sec
    return Rates(*storm), {cid: Rates(*v) for cid, v in by_component.items()}, inputs


def _read_storm(
    reader,
    storm_id: str,
    now: float,
    task_timeout: float,
    sums_cache: dict,
    fresh_sums: dict,
    tracker: RateTracker | None,
) -> StormView | None:
    records = read_storm(reader, storm_id)
    if records is None:
        return None
    return derive_storm(
        records,
        now=now,
        task_timeout=task_timeout,
        sums_cache=sums_cache,
        fresh_sums=fresh_sums,
        tracker=tracker,
    )


def build_storm_view(
    reader,
    storm_id: str,
    *,
    now: float,
    connected: bool,
    synced_at: float | None,
    task_timeout: float,
    supervisor_timeout: float,
    tracker: RateTracker | None = _rates.TRACKER,
) -> StormView | None:
    """One storm's figures, or ``None`` when it has neither a /storms nor an /assignments node.

    An invalid id gives ``None`` too: no node is ever read for it.
    """
    if not is_valid_id(storm_id):
        return None
    return _read_storm(reader, storm_id, now, task_timeout, _sums_cache, {}, tracker)


def _read_supervisors(reader, storms, now: float, supervisor_timeout: float):
    workers_by_node: dict[str, list[WorkerView]] = {}
    hosts: dict[str, str | None] = {}
    for storm in storms.values():
        for w in storm.workers:
            workers_by_node.setdefault(w.node_id, []).append(w)
            if w.host is not None:
                hosts.setdefault(w.node_id, w.host)

    supervisors = {}
    for sid in reader.supervisors():
        if not is_valid_id(sid):
            log.warning("skipping supervisor with an invalid id %r", sid)
            continue
        bad: list[str] = []
        info = _read(reader.supervisor_info, sid, bad=bad)
        workers = tuple(workers_by_node.get(sid, ()))
        if bad:
            supervisors[sid] = SupervisorView(
                id=sid,
                host=hosts.get(sid),
                time_secs=None,
                uptime_secs=None,
                worker_ports=(),
                lost=False,
                workers=workers,
                unreadable=True,
            )
        elif info is not None:
            supervisors[sid] = SupervisorView(
                id=sid,
                host=info.hostname,
                time_secs=info.time_secs,
                uptime_secs=info.uptime_secs,
                worker_ports=info.worker_ports,
                lost=now - info.time_secs > supervisor_timeout,
                workers=workers,
            )
        # else: its node went away between listing and reading; it is lost only if assigned
    for node, workers in workers_by_node.items():
        if node not in supervisors:
            supervisors[node] = SupervisorView(
                id=node,
                host=hosts.get(node),
                time_secs=None,
                uptime_secs=None,
                worker_ports=(),
                lost=True,
                workers=tuple(workers),
                present=False,
            )
    return dict(sorted(supervisors.items()))


def build_cluster_view(
    reader: StormReader,
    *,
    now: float,
    connected: bool,
    synced_at: float | None,
    task_timeout: float,
    supervisor_timeout: float,
    tracker: RateTracker | None = _rates.TRACKER,
    reuse: dict[str, StormView] | None = None,
    between: Callable[[], object] | None = None,
) -> ClusterView:
    """The whole cluster's figures, read through ``reader``.

    An unreadable node never raises: it is recorded on the view it belongs to.

    :param reuse: storms' views known to be current (from an earlier view, by id): those
        still listed are taken as they are, not read again; the rest are read. The
        cluster's own figures (supervisors, slots, errors) are computed afresh either way.
    :param between: called before each storm is read (a background build lets news pass:
        :func:`clusterstate.precedence.Gate.step_aside`).
    """
    global _sums_cache
    storm_ids = set(reader.active_storms())
    storm_ids.update(reader.assignments())
    storms = {}
    fresh_sums: dict = {}
    for storm_id in sorted(storm_ids):
        if reuse is not None and storm_id in reuse:
            storms[storm_id] = reuse[storm_id]
            continue
        if not is_valid_id(storm_id):
            log.warning("skipping storm with an invalid id %r", storm_id)
            continue
        if between is not None:
            between()
        storm = _read_storm(reader, storm_id, now, task_timeout, _sums_cache, fresh_sums, tracker)
        if storm is not None:
            storms[storm_id] = storm
    if tracker is not None:
        tracker.forget_storms(storms.keys())
    if reuse is None:  # (a partial build leaves the cache to the whole ones)
        _sums_cache = fresh_sums  # only the tasks seen now: the cache never outgrows the cluster
    supervisors = _read_supervisors(reader, storms, now, supervisor_timeout)
    slots_total = sum(
        len(s.worker_ports)
        for s in supervisors.values()
        if s.present and not s.lost and not s.unreadable
    )
    slots_used = len({(w.node_id, w.port) for s in storms.values() for w in s.workers})
    since = now - ERRORS_RECENT_SECS
    errors_last_10m = sum(1 for s in storms.values() for e in s.errors if e.time_secs >= since)
    return ClusterView(
        as_of=now,
        zk_connected=connected,
        synced_at=synced_at,
        storms=storms,
        supervisors=supervisors,
        slots_total=slots_total,
        slots_used=slots_used,
        errors_last_10m=errors_last_10m,
        recent_errors=tuple(_merge_errors(s.errors for s in storms.values())[:RECENT_ERRORS]),
    )


def _merge_errors(lists) -> list[ErrorView]:
    # heapq.merge is stable: among equal times, earlier lists (storms by id) come first
    return list(heapq.merge(*lists, key=lambda e: -e.time_secs))


def select_errors(
    view: ClusterView,
    *,
    storm: str | None = None,
    component: str | None = None,
    since: int | None = None,
    text: str | None = None,
    limit: int | None = None,
) -> list[ErrorView]:
    """The cluster's errors newest first, filtered: the error feed's query.

    :param storm: only this storm's errors.
    :param component: only errors of components with this id.
    :param since: only errors with ``time_secs >= since``.
    :param text: only errors whose text contains this, ignoring case.
    :param limit: at most this many.
    """
    storms = [view.storms[storm]] if storm is not None and storm in view.storms else []
    if storm is None:
        storms = list(view.storms.values())
    needle = text.casefold() if text else None

    def selected():
        for e in heapq.merge(*(s.errors for s in storms), key=lambda e: -e.time_secs):
            if since is not None and e.time_secs < since:
                return  # newest first: the rest are older still
            if component is not None and e.component_id != component:
                continue
            if needle is not None and needle not in e.error.casefold():
                continue
            yield e

    return list(islice(selected(), limit))
