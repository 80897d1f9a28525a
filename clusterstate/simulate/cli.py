"""``python -m clusterstate.simulate``: the simulator's command line.

:func:`add_arguments` and :func:`simulator_from_args` are shared with the
dashboard's ``simulate`` management command.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import signal
import subprocess
import sys

from .config import SESSION_MODES, SimulationConfig
from .simulator import Simulator

#: Tasks one process heartbeats at most when the command line picks the process count.
TASKS_PER_PROCESS = 10_000


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
    d = SimulationConfig()  # the defaults
    add = parser.add_argument
    add(
        "--supervisors",
        type=nonneg_int,
        default=d.supervisors,
        help=f"supervisors (default {d.supervisors})",
    )
    add(
        "--storms",
        type=nonneg_int,
        default=d.storms,
        help=f"storms kept active (default {d.storms})",
    )
    add(
        "--tasks-per-storm",
        type=nonneg_int,
        default=d.tasks_per_storm,
        help=f"tasks per storm (default {d.tasks_per_storm})",
    )
    add(
        "--heartbeat-secs",
        type=nonneg,
        default=d.heartbeat_secs,
        help=f"heartbeat interval (default {d.heartbeat_secs:g})",
    )
    add(
        "--error-rate",
        type=nonneg,
        default=d.error_rate,
        help=f"errors/s, cluster-wide (default {d.error_rate:g})",
    )
    add(
        "--error-task-fraction",
        type=nonneg,
        default=d.error_task_fraction,
        help=f"share of tasks that report errors (default {d.error_task_fraction:g})",
    )
    add(
        "--churn-secs",
        type=nonneg,
        default=d.churn_secs,
        help="seconds between deactivating/removing/submitting storms; "
        f"0 never (default {d.churn_secs:g})",
    )
    add(
        "--task-death-rate",
        type=nonneg,
        default=d.task_death_rate,
        help=f"task deaths/s (default {d.task_death_rate:g})",
    )
    add(
        "--supervisor-loss-rate",
        type=nonneg,
        default=d.supervisor_loss_rate,
        help=f"supervisor losses/s (default {d.supervisor_loss_rate:g})",
    )
    add(
        "--ports-per-supervisor",
        type=nonneg_int,
        default=d.ports_per_supervisor,
        help=f"worker ports (default {d.ports_per_supervisor})",
    )
    add(
        "--session-per",
        choices=SESSION_MODES,
        default=d.session_per,
        help=f"tasks share their worker's or their supervisor's session (default {d.session_per})",
    )
    add("--remove-on-stop", action="store_true", help="remove the storms when stopping")
    add("--seed", type=int, default=d.seed, help="random seed")
    add("--duration", type=nonneg, default=0.0, help="seconds to run; 0 until Ctrl-C")


#: The :class:`SimulationConfig` fields that :func:`add_arguments` has flags for.
_FLAGS = (
    "supervisors",
    "storms",
    "tasks_per_storm",
    "heartbeat_secs",
    "error_rate",
    "error_task_fraction",
    "churn_secs",
    "task_death_rate",
    "supervisor_loss_rate",
    "ports_per_supervisor",
    "session_per",
    "remove_on_stop",
    "seed",
)


def config_from_args(args, **overrides) -> SimulationConfig:
    """A :class:`SimulationConfig` from flags added by :func:`add_arguments`.

    :param overrides: fields to set whatever the flags say (``shard``, ``workers``).
    :raises ValueError: a value out of range.
    """
    return SimulationConfig(**{**{name: getattr(args, name) for name in _FLAGS}, **overrides})


def simulator_from_args(args, state_factory, **overrides) -> Simulator:
    """A :class:`Simulator` on ``state_factory`` from flags added by :func:`add_arguments`."""
    return Simulator(config_from_args(args, **overrides), state_factory)


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
            [sys.executable, "-m", __package__, *argv]
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
        from ..memstate import MemoryStore, mk_memory_cluster_state

        store = MemoryStore()

        def factory():
            return mk_memory_cluster_state(store, args.root)

    else:
        from ..zkstate import mk_distributed_cluster_state

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
