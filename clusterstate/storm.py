"""Storm's ``StormClusterState``: the cluster's records on top of a :class:`ClusterState`.

A port of ``mk-storm-cluster-state`` from Storm's ``backtype.storm.cluster``.
Every read and write names its node through :mod:`clusterstate.paths`, so a
bad storm, supervisor or task id raises :class:`ValueError` before ZooKeeper
is touched. Records travel as the JSON of ``docs/contract/cluster-state.md``
(:mod:`clusterstate.records`);
a node whose data does not fit raises
:class:`~clusterstate.errors.UnreadableNodeError` naming its path.

Callbacks given to :meth:`StormClusterState.assignments`,
:meth:`~StormClusterState.assignment_info`, :meth:`~StormClusterState.storm_base`
and :meth:`~StormClusterState.supervisors` are one-shot, exactly as in the
original: each read with a callback leaves a ZooKeeper watch and stores the
callback in one slot (one per storm for the per-storm reads, replacing what
was there); the next event on what it read takes the callback out of its slot
and calls it, with the storm id for the per-storm reads and with no argument
otherwise. To hear of the following change, read again with a callback.
Callbacks run on the :class:`ClusterState`'s event thread: they should hand
off and return at once. A session expiry drops every watch (as ZooKeeper
does): after one, read again with a callback.

Deviations from the original, all deliberate:

- task errors are sequential nodes, trimmed race-free to the newest ten (see
  :meth:`StormClusterState.report_task_error` and "Task errors" in
  ``docs/contract/cluster-state.md``);
- :meth:`~StormClusterState.task_errors` does not create the task's error
  node as the original's did: a read never writes;
- an event under an unknown subtree is logged, never fatal (the original
  halted the process);
- task ids come back as sorted ints; a child whose name is not a task id is
  skipped with a warning rather than failing the whole read.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Mapping

from . import paths
from .protocol import ClusterState
from .reader import StormReader
from .records import (
    Assignment,
    StormBase,
    SupervisorInfo,
    TaskError,
    TaskHeartbeat,
    TaskInfo,
    decode,
    decode_error,
    encode,
    ordered_error_names,
)

logger = logging.getLogger(__name__)

#: How many errors each task keeps, as in the original.
MAX_TASK_ERRORS = 10

# the nine operations of the original protocol, for duck typing
_CLUSTER_STATE_METHODS = (
    "set_ephemeral_node",
    "delete_node",
    "set_data",
    "get_data",
    "get_children",
    "mkdirs",
    "close",
    "register",
    "unregister",
)

# subtrees this layer writes but never watches: events there come from other
# users of a shared ClusterState and are none of our business
_UNWATCHED_ROOTS = frozenset(
    {paths.TASKS_ROOT, paths.TASKBEATS_ROOT, paths.TASKERRORS_ROOT, paths.CODE_ROOT}
)


def _is_cluster_state(obj) -> bool:
    if isinstance(obj, ClusterState):
        return True
    return all(callable(getattr(obj, name, None)) for name in _CLUSTER_STATE_METHODS)


def _stringify_error(error) -> str:
    if isinstance(error, BaseException):
        return "".join(traceback.format_exception(error))
    if isinstance(error, str):
        return error
    raise TypeError(f"error must be an exception or a string, not {type(error).__name__}")


def _encode(info, cls, what: str) -> bytes:
    if not isinstance(info, cls):
        raise TypeError(f"{what} must be a {cls.__name__}, not {type(info).__name__}")
    return encode(info)


def _task_id_names(names: Iterable[str], parent: str) -> list[int]:
    ids = []
    for name in names:
        try:
            ids.append(paths.check_task_id(name))
        except ValueError:
            logger.warning("skipping %s/%s: not a task id", parent, name)
    return sorted(ids)


def mk_storm_cluster_state(state_or_conf, time_fn: Callable[[], float] = time.time):
    """Make a :class:`StormClusterState`, as the original ``mk-storm-cluster-state``.

    :param state_or_conf: a :class:`ClusterState` to share (it stays open on
        :meth:`StormClusterState.disconnect`), or a Storm conf dict from which
        a ZooKeeper-backed state of its own is made with
        :func:`clusterstate.zkstate.mk_distributed_cluster_state` (closed on
        ``disconnect``).
    :param time_fn: the clock giving the seconds that name error nodes;
        :func:`time.time` by default, injectable for tests.
    :returns: a :class:`StormClusterState` whose subtrees all exist.
    :raises TypeError: if ``state_or_conf`` is neither.
    """
    return StormClusterState(state_or_conf, time_fn=time_fn)


class StormClusterState(StormReader):
    """Storm's cluster state: storms, assignments, tasks, supervisors, heartbeats, errors.

    Construct it with :func:`mk_storm_cluster_state` (same arguments). It
    creates every subtree (``/assignments``, ``/tasks``, ``/storms``,
    ``/supervisors``, ``/taskbeats``, ``/taskerrors``) if absent, and
    registers one callback on the :class:`ClusterState` that dispatches
    fired watches to the one-shot callbacks of its reads. All methods are
    safe to call from several threads.
    """

    def __init__(self, state_or_conf, time_fn: Callable[[], float] = time.time):
        if isinstance(state_or_conf, Mapping):
            from .zkstate import mk_distributed_cluster_state

            self._solo = True
            self._state = mk_distributed_cluster_state(dict(state_or_conf))
        elif _is_cluster_state(state_or_conf):
            self._solo = False
            self._state = state_or_conf
        else:
            raise TypeError(
                "mk_storm_cluster_state needs a ClusterState or a conf dict, "
                f"not {type(state_or_conf).__name__}"
            )
        self._time_fn = time_fn
        self._lock = threading.Lock()
        self._assignments_callback = None
        self._supervisors_callback = None
        self._assignment_info_callbacks: dict[str, Callable] = {}
        self._storm_base_callbacks: dict[str, Callable] = {}
        self._disconnected = False
        try:
            self._state_id = self._state.register(self._dispatch)
            for subtree in paths.SUBTREES:
                self._state.mkdirs(subtree)
        except BaseException:
            if self._solo:
                self._state.close()
            raise

    @property
    def cluster_state(self) -> ClusterState:
        """The :class:`ClusterState` underneath (an extension, not in the original)."""
        return self._state

    # -- callbacks ---------------------------------------------------------

    def _dispatch(self, event_type: str, path: str) -> None:
        subtree, *args = paths.tokenize_path(path) or [None]
        if subtree == paths.ASSIGNMENTS_ROOT:
            if args:
                self._issue_map_callback(self._assignment_info_callbacks, args[0])
            else:
                self._issue_callback("_assignments_callback")
        elif subtree == paths.SUPERVISORS_ROOT:
            self._issue_callback("_supervisors_callback")
        elif subtree == paths.STORMS_ROOT:
            if args:
                self._issue_map_callback(self._storm_base_callbacks, args[0])
        elif subtree in _UNWATCHED_ROOTS:
            logger.debug("ignoring %s on %s", event_type, path)
        else:
            # the original halts the process here; a dashboard must not
            logger.warning("unknown callback for %s on %s", event_type, path)

    def _issue_callback(self, slot: str) -> None:
        with self._lock:
            callback = getattr(self, slot)
            setattr(self, slot, None)
        if callback is not None:
            self._call(callback)

    def _issue_map_callback(self, slots: dict, storm_id: str) -> None:
        with self._lock:
            callback = slots.pop(storm_id, None)
        if callback is not None:
            self._call(callback, storm_id)

    @staticmethod
    def _call(callback, *args) -> None:
        try:
            callback(*args)
        except Exception:
            # a failing callback must not take the state's event thread down
            logger.exception("callback %r failed", callback)

    def _arm(self, slot: str, callback) -> None:
        if callback is not None:
            with self._lock:
                setattr(self, slot, callback)

    def _arm_map(self, slots: dict, storm_id: str, callback) -> None:
        if callback is not None:
            with self._lock:
                slots[storm_id] = callback

    # -- reads -------------------------------------------------------------

    def assignments(self, callback: Callable[[], None] | None = None) -> list[str]:
        """The ids of the storms that have an assignment.

        :param callback: if given, called once with no argument on the next
            change of ``/assignments``'s children.
        :returns: the storm ids, sorted; ``[]`` if there are none.
        """
        self._arm("_assignments_callback", callback)
        return sorted(self._state.get_children(paths.ASSIGNMENTS_SUBTREE, callback is not None))

    def assignment_info(
        self, storm_id: str, callback: Callable[[str], None] | None = None
    ) -> Assignment | None:
        """A storm's assignment, from ``/assignments/{storm-id}``.

        :param storm_id: the storm.
        :param callback: if given, called once as ``callback(storm_id)`` on the
            next change of that node (created, changed or deleted).
        :returns: the :class:`Assignment`, or ``None`` if the node is absent.
        :raises ValueError: if ``storm_id`` is not a valid id.
        :raises UnreadableNodeError: if the node's data is not an Assignment.
        """
        path = paths.assignment_path(storm_id)
        self._arm_map(self._assignment_info_callbacks, storm_id, callback)
        return decode(Assignment, self._state.get_data(path, callback is not None), path)

    def active_storms(self) -> list[str]:
        """The ids of the active storms (children of ``/storms``), sorted; ``[]`` if none."""
        return sorted(self._state.get_children(paths.STORMS_SUBTREE, False))

    def storm_base(
        self, storm_id: str, callback: Callable[[str], None] | None = None
    ) -> StormBase | None:
        """A storm's base record, from ``/storms/{storm-id}``.

        :param storm_id: the storm.
        :param callback: if given, called once as ``callback(storm_id)`` on the
            next change of that node (created, changed or deleted).
        :returns: the :class:`StormBase`, or ``None`` if the storm is not active.
        :raises ValueError: if ``storm_id`` is not a valid id.
        :raises UnreadableNodeError: if the node's data is not a StormBase.
        """
        path = paths.storm_path(storm_id)
        self._arm_map(self._storm_base_callbacks, storm_id, callback)
        return decode(StormBase, self._state.get_data(path, callback is not None), path)

    def task_storms(self) -> list[str]:
        """The ids of the storms that have tasks (children of ``/tasks``), sorted."""
        return sorted(self._state.get_children(paths.TASKS_SUBTREE, False))

    def task_ids(self, storm_id: str) -> list[int]:
        """A storm's task ids (children of ``/tasks/{storm-id}``).

        :param storm_id: the storm.
        :returns: the task ids as sorted ints; ``[]`` if the storm has no
            tasks node. A child whose name is not a task id is skipped with
            a warning.
        :raises ValueError: if ``storm_id`` is not a valid id.
        """
        path = paths.storm_task_root(storm_id)
        return _task_id_names(self._state.get_children(path, False), path)

    def task_info(self, storm_id: str, task_id: int) -> TaskInfo | None:
        """A task's static info, from ``/tasks/{storm-id}/{task-id}``.

        :param storm_id: the storm.
        :param task_id: the task, a non-negative int.
        :returns: the :class:`TaskInfo`, or ``None`` if the node is absent.
        :raises ValueError: if an id is not valid.
        :raises UnreadableNodeError: if the node's data is not a TaskInfo.
        """
        path = paths.task_path(storm_id, task_id)
        return decode(TaskInfo, self._state.get_data(path, False), path)

    def task_heartbeat(self, storm_id: str, task_id: int) -> TaskHeartbeat | None:
        """A task's last heartbeat, from ``/taskbeats/{storm-id}/{task-id}``.

        :param storm_id: the storm.
        :param task_id: the task, a non-negative int.
        :returns: the :class:`TaskHeartbeat`, or ``None`` if the node is absent
            (the task never beat, or its session ended).
        :raises ValueError: if an id is not valid.
        :raises UnreadableNodeError: if the node's data is not a TaskHeartbeat.
        """
        path = paths.taskbeat_path(storm_id, task_id)
        return decode(TaskHeartbeat, self._state.get_data(path, False), path)

    def supervisors(self, callback: Callable[[], None] | None = None) -> list[str]:
        """The ids of the live supervisors (children of ``/supervisors``).

        :param callback: if given, called once with no argument on the next
            change under ``/supervisors``.
        :returns: the supervisor ids, sorted; ``[]`` if there are none.
        """
        self._arm("_supervisors_callback", callback)
        return sorted(self._state.get_children(paths.SUPERVISORS_SUBTREE, callback is not None))

    def supervisor_info(self, supervisor_id: str) -> SupervisorInfo | None:
        """A supervisor's last heartbeat, from ``/supervisors/{supervisor-id}``.

        :param supervisor_id: the supervisor.
        :returns: the :class:`SupervisorInfo`, or ``None`` if the node is absent.
        :raises ValueError: if ``supervisor_id`` is not a valid id.
        :raises UnreadableNodeError: if the node's data is not a SupervisorInfo.
        """
        path = paths.supervisor_path(supervisor_id)
        return decode(SupervisorInfo, self._state.get_data(path, False), path)

    def heartbeat_storms(self) -> list[str]:
        """The ids of the storms with a heartbeat node (children of ``/taskbeats``), sorted."""
        return sorted(self._state.get_children(paths.TASKBEATS_SUBTREE, False))

    def task_error_storms(self) -> list[str]:
        """The ids of the storms with an error node (children of ``/taskerrors``), sorted."""
        return sorted(self._state.get_children(paths.TASKERRORS_SUBTREE, False))

    def heartbeat_tasks(self, storm_id: str) -> list[int]:
        """The tasks of a storm that have a heartbeat (children of ``/taskbeats/{storm-id}``).

        The original returned the node names; task ids are ints here.

        :param storm_id: the storm.
        :returns: the task ids as sorted ints; ``[]`` if the node is absent.
            A child whose name is not a task id is skipped with a warning.
        :raises ValueError: if ``storm_id`` is not a valid id.
        """
        path = paths.taskbeat_storm_root(storm_id)
        return _task_id_names(self._state.get_children(path, False), path)

    def task_errors(self, storm_id: str, task_id: int) -> list[TaskError]:
        """A task's errors: at most the newest ten, oldest first.

        Both this port's sequential ``{time-secs}-{sequence}`` names and the
        original's bare ``{time-secs}`` names are read, ordered by sequence
        (bare names, which have none, first, by time); other names are
        ignored. An error deleted between listing and reading is skipped.

        :param storm_id: the storm.
        :param task_id: the task, a non-negative int.
        :returns: the :class:`TaskError` records; ``[]`` if the task has none
            or no error node.
        :raises ValueError: if an id is not valid.
        """
        return self.task_errors_many([(storm_id, task_id)])[(storm_id, task_id)]

    def task_errors_many(
        self, pairs: Iterable[tuple[str, int]]
    ) -> dict[tuple[str, int], list[TaskError]]:
        """Several tasks' errors, read in two pipelined rounds.

        An extension, not in the original, for readers that load every task
        at once (the dashboard's mirror, benchmarks). Each list is what
        :meth:`task_errors` gives for that task.

        :param pairs: ``(storm_id, task_id)`` pairs.
        :returns: a dict from each pair, as given, to its errors, oldest first.
        :raises ValueError: if an id is not valid (nothing is read then).
        """
        task_paths = {pair: paths.taskerror_path(*pair) for pair in pairs}
        children = self._state.get_children_many(set(task_paths.values()), False)
        names = {
            path: ordered_error_names(children.get(path, []))[-MAX_TASK_ERRORS:]
            for path in set(task_paths.values())
        }
        data = self._state.get_data_many(
            [f"{path}/{name}" for path, ns in names.items() for name in ns], False
        )
        errors = {}
        for path, ns in names.items():
            errors[path] = [
                decode_error(name, data[node], node)
                for name in ns
                if data.get(node := f"{path}/{name}") is not None
            ]
        return {pair: list(errors[path]) for pair, path in task_paths.items()}

    # -- writes ------------------------------------------------------------

    def set_task(self, storm_id: str, task_id: int, info: TaskInfo) -> None:
        """Write a task's static info to ``/tasks/{storm-id}/{task-id}`` (persistent).

        :param storm_id: the storm.
        :param task_id: the task, a non-negative int.
        :param info: the :class:`TaskInfo`.
        :raises ValueError: if an id is not valid.
        :raises TypeError: if ``info`` is not a TaskInfo.
        """
        path = paths.task_path(storm_id, task_id)
        self._state.set_data(path, _encode(info, TaskInfo, "info"))

    def set_task_heartbeat(self, storm_id: str, task_id: int, info: TaskHeartbeat) -> None:
        """Write a task's heartbeat to ``/taskbeats/{storm-id}/{task-id}``.

        The original's ``task-heartbeat!``. The node is ephemeral: it vanishes
        when this session ends.

        :param storm_id: the storm.
        :param task_id: the task, a non-negative int.
        :param info: the :class:`TaskHeartbeat`.
        :raises ValueError: if an id is not valid.
        :raises TypeError: if ``info`` is not a TaskHeartbeat.
        """
        path = paths.taskbeat_path(storm_id, task_id)
        self._state.set_ephemeral_node(path, _encode(info, TaskHeartbeat, "info"))

    def remove_task_heartbeat(self, storm_id: str, task_id: int) -> None:
        """Delete a task's heartbeat node; nothing happens if it is absent.

        :raises ValueError: if an id is not valid.
        """
        self._state.delete_node(paths.taskbeat_path(storm_id, task_id))

    def set_supervisor_heartbeat(self, supervisor_id: str, info: SupervisorInfo) -> None:
        """Write a supervisor's heartbeat to ``/supervisors/{supervisor-id}``.

        The original's ``supervisor-heartbeat!``. The node is ephemeral: it
        vanishes when this session ends.

        :param supervisor_id: the supervisor.
        :param info: the :class:`SupervisorInfo`.
        :raises ValueError: if ``supervisor_id`` is not a valid id.
        :raises TypeError: if ``info`` is not a SupervisorInfo.
        """
        path = paths.supervisor_path(supervisor_id)
        self._state.set_ephemeral_node(path, _encode(info, SupervisorInfo, "info"))

    def activate_storm(self, storm_id: str, storm_base: StormBase) -> None:
        """Mark a storm active: write its base to ``/storms/{storm-id}`` (persistent).

        :param storm_id: the storm.
        :param storm_base: the :class:`StormBase`.
        :raises ValueError: if ``storm_id`` is not a valid id.
        :raises TypeError: if ``storm_base`` is not a StormBase.
        """
        path = paths.storm_path(storm_id)
        self._state.set_data(path, _encode(storm_base, StormBase, "storm_base"))

    def deactivate_storm(self, storm_id: str) -> None:
        """Mark a storm inactive: delete ``/storms/{storm-id}``; nothing happens if absent.

        :raises ValueError: if ``storm_id`` is not a valid id.
        """
        self._state.delete_node(paths.storm_path(storm_id))

    def set_assignment(self, storm_id: str, info: Assignment) -> None:
        """Write a storm's assignment to ``/assignments/{storm-id}`` (persistent).

        :param storm_id: the storm.
        :param info: the :class:`Assignment`.
        :raises ValueError: if ``storm_id`` is not a valid id.
        :raises TypeError: if ``info`` is not an Assignment.
        """
        path = paths.assignment_path(storm_id)
        self._state.set_data(path, _encode(info, Assignment, "info"))

    def remove_storm(self, storm_id: str) -> None:
        """Remove a storm: delete ``/tasks/{storm-id}`` first, ``/assignments/{storm-id}`` last.

        So a reader never sees an assignment without its tasks. Heartbeats
        and errors are torn down separately. Absent nodes are no error.

        :raises ValueError: if ``storm_id`` is not a valid id.
        """
        tasks = paths.storm_task_root(storm_id)
        assignment = paths.assignment_path(storm_id)
        self._state.delete_node(tasks)
        self._state.delete_node(assignment)

    def setup_heartbeats(self, storm_id: str) -> None:
        """Create ``/taskbeats/{storm-id}`` if absent.

        :raises ValueError: if ``storm_id`` is not a valid id.
        """
        self._state.mkdirs(paths.taskbeat_storm_root(storm_id))

    def teardown_heartbeats(self, storm_id: str) -> None:
        """Delete ``/taskbeats/{storm-id}`` and every heartbeat under it; no error if absent.

        :raises ValueError: if ``storm_id`` is not a valid id.
        """
        self._state.delete_node(paths.taskbeat_storm_root(storm_id))

    def teardown_task_errors(self, storm_id: str) -> None:
        """Delete ``/taskerrors/{storm-id}`` and every error under it; no error if absent.

        :raises ValueError: if ``storm_id`` is not a valid id.
        """
        self._state.delete_node(paths.taskerror_storm_root(storm_id))

    def report_task_error(self, storm_id: str, task_id: int, error: BaseException | str) -> str:
        """Record an error of a task, keeping the task's newest ten.

        Creates the persistent sequential node
        ``/taskerrors/{storm-id}/{task-id}/{time-secs}-{sequence}`` holding
        the error's UTF-8 text, then deletes all but the newest ten of the
        task's errors by sequence. Concurrent reporters, in this session or
        others, agree on which are oldest, so none of the newest ten is ever
        lost and nodes another trimmer already deleted are ignored.

        :param storm_id: the storm.
        :param task_id: the task, a non-negative int.
        :param error: an exception, whose formatted traceback is stored, or
            the text itself.
        :returns: the created node's path (an extension: the original
            returned nothing).
        :raises ValueError: if an id is not valid.
        :raises TypeError: if ``error`` is neither an exception nor a string.
        """
        path = paths.taskerror_path(storm_id, task_id)
        data = _stringify_error(error).encode("utf-8")
        time_secs = int(self._time_fn())
        self._state.mkdirs(path)
        created = self._state.create_sequential(f"{path}/{time_secs}-", data)
        names = ordered_error_names(self._state.get_children(path, False))
        for name in names[:-MAX_TASK_ERRORS]:
            self._state.delete_node(f"{path}/{name}")
        return created

    def disconnect(self) -> None:
        """Stop dispatching callbacks; close the :class:`ClusterState` if this made it.

        A shared state (one given to :func:`mk_storm_cluster_state`) stays
        open. Harmless when called again.
        """
        with self._lock:
            if self._disconnected:
                return
            self._disconnected = True
            self._assignments_callback = None
            self._supervisors_callback = None
            self._assignment_info_callbacks.clear()
            self._storm_base_callbacks.clear()
        self._state.unregister(self._state_id)
        if self._solo:
            self._state.close()
