"""What the pages show, derived once from a StormClusterState reader.

Views never compute figures themselves: they take a :class:`ClusterView` (or a
:class:`StormView` for one storm) built here, from the mirror or, with
``STORMUI_MIRROR=off``, straight from ZooKeeper.
"""

from __future__ import annotations

from dataclasses import dataclass, field

WINDOWS = ("600", "10800", "86400", "all-time")
WINDOW_LABELS = {"600": "10m 0s", "10800": "3h 0m 0s", "86400": "1d 0h 0m 0s", "all-time": "All time"}


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
    component_type: str  # "spout", "bolt" or "unknown"
    node_id: str | None
    host: str | None
    port: int | None
    start_time_secs: int | None
    uptime_secs: int | None  # from the heartbeat
    heartbeat_time_secs: int | None
    heartbeat_age_secs: int | None
    alive: bool
    stats: dict | None  # the heartbeat's raw stats
    window_stats: dict[str, WindowStats]
    errors: tuple  # TaskError records, oldest first (at most ten)
    unreadable: tuple[str, ...] = ()  # paths of this task's nodes that could not be read

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

    @property
    def last_error(self) -> ErrorView | None:
        return self.errors[0] if self.errors else None


@dataclass(frozen=True)
class StormView:
    id: str
    name: str
    status: str  # "ACTIVE" or "INACTIVE"
    launch_time_secs: int | None
    uptime_secs: int | None
    master_code_dir: str | None
    tasks: dict[int, TaskView]
    components: dict[str, ComponentView]
    workers: tuple[WorkerView, ...]
    window_stats: dict[str, WindowStats]
    unreadable: bool = False  # its /storms or /assignments node could not be read
    unreadable_paths: tuple[str, ...] = ()

    @property
    def tasks_total(self) -> int:
        return len(self.tasks)

    @property
    def tasks_alive(self) -> int:
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
    lost: bool  # node present but its time_secs older than the supervisor timeout
    workers: tuple[WorkerView, ...]
    unreadable: bool = False

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
    storms: dict[str, StormView]
    supervisors: dict[str, SupervisorView]
    slots_total: int
    slots_used: int
    errors_last_10m: int
    recent_errors: tuple[ErrorView, ...] = field(default=())  # newest first, across the cluster

    @property
    def slots_free(self) -> int:
        return max(self.slots_total - self.slots_used, 0)

    @property
    def tasks_total(self) -> int:
        return sum(s.tasks_total for s in self.storms.values())

    @property
    def tasks_alive(self) -> int:
        return sum(s.tasks_alive for s in self.storms.values())

    @property
    def tasks_dead(self) -> int:
        return self.tasks_total - self.tasks_alive
