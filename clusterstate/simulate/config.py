"""The size and pace of a simulated cluster."""

from __future__ import annotations

from dataclasses import dataclass

SESSION_MODES = ("auto", "worker", "supervisor")


@dataclass(frozen=True)
class SimulationConfig:
    """Every knob of a :class:`~clusterstate.simulate.Simulator`; refuses a bad value.

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
    :param remove_on_stop: remove the simulator's storms when stopping.
    :param seed: seeds the random choices (deterministic under
        :meth:`~clusterstate.simulate.Simulator.step`).
    :param shard: ``(index, count)``: play only this share of a cluster that
        ``count`` simulators (one per process) play together: every
        ``count``-th supervisor and storm and ``1/count`` of each rate, with
        ids, hosts and names that do not collide with the other shards'.
    :raises ValueError: a value out of range.
    """

    supervisors: int = 3
    storms: int = 4
    tasks_per_storm: int = 15
    heartbeat_secs: float = 3.0
    error_rate: float = 0.5
    error_task_fraction: float = 0.1
    churn_secs: float = 60.0
    task_death_rate: float = 0.02
    supervisor_loss_rate: float = 0.003
    ports_per_supervisor: int = 4
    session_per: str = "auto"
    workers: int = 8
    remove_on_stop: bool = False
    seed: int | None = None
    shard: tuple[int, int] = (0, 1)

    def __post_init__(self):
        index, count = self.shard
        if not 0 <= index < count:
            raise ValueError("shard must be (index, count) with 0 <= index < count")
        if (
            self.supervisors < 1
            or self.storms < 0
            or self.tasks_per_storm < 1
            or self.ports_per_supervisor < 1
        ):
            raise ValueError("need at least one supervisor, one port and one task per storm")
        if self.heartbeat_secs <= 0:
            raise ValueError("heartbeat_secs must be positive")
        for name in ("error_rate", "churn_secs", "task_death_rate", "supervisor_loss_rate"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if not 0 <= self.error_task_fraction <= 1:
            raise ValueError("error_task_fraction must be between 0 and 1")
        if self.session_per not in SESSION_MODES:
            raise ValueError(f"session_per must be one of {', '.join(SESSION_MODES)}")
