"""The parts of a simulated cluster: supervisors, tasks and storms."""

from __future__ import annotations

from dataclasses import dataclass, field

from .sessions import _Gate, _Session
from .topologies import _Component, _Topology


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
