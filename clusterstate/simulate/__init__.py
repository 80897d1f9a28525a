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
:class:`Simulator` playing one shard of it (:attr:`SimulationConfig.shard`).

Two ways to drive it: :meth:`Simulator.start` / :meth:`Simulator.stop` (or the
blocking :meth:`Simulator.run`) on background threads, or
:meth:`Simulator.step` from the caller's thread against an injected clock,
which makes every write at once, in order, and is deterministic for a seed.

The package's modules: :mod:`.config` (:class:`SimulationConfig`, the size
and pace), :mod:`.topologies` (the storms' shapes and their errors),
:mod:`.sessions` and :mod:`.parts` (what the simulator is made of),
:mod:`.simulator` (:class:`Simulator`) and :mod:`.cli` (the command line).
"""

from .cli import (
    add_arguments,
    config_from_args,
    main,
    simulator_from_args,
    stop_on_signals,
    zk_conf,
)
from .config import SESSION_MODES, SimulationConfig
from .simulator import Simulator
from .topologies import TOPOLOGIES, make_error

__all__ = [
    "SESSION_MODES",
    "TOPOLOGIES",
    "SimulationConfig",
    "Simulator",
    "add_arguments",
    "config_from_args",
    "main",
    "make_error",
    "simulator_from_args",
    "stop_on_signals",
    "zk_conf",
]
