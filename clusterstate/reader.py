"""The read contract of Storm's cluster state, written once.

The reads are those of ``StormClusterState`` in ``docs/contract/cluster-state.md``
("Python API").

:class:`~clusterstate.storm.StormClusterState` reads it from ZooKeeper (or
the in-memory store) on each call; :class:`~clusterstate.mirror.ClusterMirror`
answers the same calls from memory. Code that only reads (the dashboard's
figures) takes a :class:`StormReader` and works with either.

Every id is checked before anything is read: an invalid one raises
``ValueError`` and reads nothing. A node whose data does not fit its schema
raises :class:`~clusterstate.errors.UnreadableNodeError` (a ``ValueError``
that names the node's path).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, runtime_checkable

from .records import Assignment, StormBase, SupervisorInfo, TaskError, TaskHeartbeat, TaskInfo


@runtime_checkable
class StormReader(Protocol):
    """The reads both the ZooKeeper-backed state and the mirror offer."""

    def active_storms(self) -> list[str]:
        """The ids of the active storms (children of ``/storms``).

        :returns: the storm ids, sorted; ``[]`` if there are none or no
            ``/storms`` node.
        """
        ...

    def storm_base(self, storm_id: str) -> StormBase | None:
        """A storm's base record, from ``/storms/{storm-id}``.

        :param storm_id: the storm.
        :returns: the :class:`StormBase`, or ``None`` if the node is absent
            (the storm is not active).
        :raises ValueError: if ``storm_id`` is not a valid id.
        :raises UnreadableNodeError: if the node's data is not a StormBase.
        """
        ...

    def assignments(self) -> list[str]:
        """The ids of the storms that have an assignment (children of ``/assignments``).

        :returns: the storm ids, sorted; ``[]`` if there are none.
        """
        ...

    def assignment_info(self, storm_id: str) -> Assignment | None:
        """A storm's assignment, from ``/assignments/{storm-id}``.

        :param storm_id: the storm.
        :returns: the :class:`Assignment`, or ``None`` if the node is absent.
        :raises ValueError: if ``storm_id`` is not a valid id.
        :raises UnreadableNodeError: if the node's data is not an Assignment.
        """
        ...

    def task_storms(self) -> list[str]:
        """The ids of the storms that have tasks (children of ``/tasks``).

        :returns: the storm ids, sorted; ``[]`` if there are none.
        """
        ...

    def task_ids(self, storm_id: str) -> list[int]:
        """A storm's task ids (children of ``/tasks/{storm-id}``).

        :param storm_id: the storm.
        :returns: the task ids as sorted ints; ``[]`` if the node is absent.
        :raises ValueError: if ``storm_id`` is not a valid id.
        """
        ...

    def task_info(self, storm_id: str, task_id: int) -> TaskInfo | None:
        """A task's static info, from ``/tasks/{storm-id}/{task-id}``.

        :param storm_id: the storm.
        :param task_id: the task, a non-negative int.
        :returns: the :class:`TaskInfo`, or ``None`` if the node is absent.
        :raises ValueError: if an id is not valid.
        :raises UnreadableNodeError: if the node's data is not a TaskInfo.
        """
        ...

    def heartbeat_storms(self) -> list[str]:
        """The ids of the storms with a heartbeat node (children of ``/taskbeats``).

        :returns: the storm ids, sorted; ``[]`` if there are none.
        """
        ...

    def heartbeat_tasks(self, storm_id: str) -> list[int]:
        """The tasks of a storm that have a heartbeat (children of ``/taskbeats/{storm-id}``).

        :param storm_id: the storm.
        :returns: the task ids as sorted ints; ``[]`` if the node is absent.
        :raises ValueError: if ``storm_id`` is not a valid id.
        """
        ...

    def task_heartbeat(self, storm_id: str, task_id: int) -> TaskHeartbeat | None:
        """A task's last heartbeat, from ``/taskbeats/{storm-id}/{task-id}``.

        The mirror's may be up to its ``heartbeat_secs`` old.

        :param storm_id: the storm.
        :param task_id: the task, a non-negative int.
        :returns: the :class:`TaskHeartbeat`, or ``None`` if the node is absent
            (the task never beat, or its session ended).
        :raises ValueError: if an id is not valid.
        :raises UnreadableNodeError: if the node's data is not a TaskHeartbeat.
        """
        ...

    def task_error_storms(self) -> list[str]:
        """The ids of the storms with an error node (children of ``/taskerrors``).

        :returns: the storm ids, sorted; ``[]`` if there are none.
        """
        ...

    def task_errors(self, storm_id: str, task_id: int) -> list[TaskError]:
        """A task's errors, from ``/taskerrors/{storm-id}/{task-id}``.

        :param storm_id: the storm.
        :param task_id: the task, a non-negative int.
        :returns: at most the newest ten :class:`TaskError` records, oldest
            first; ``[]`` if the task has none or no error node.
        :raises ValueError: if an id is not valid.
        """
        ...

    def task_errors_many(
        self, pairs: Iterable[tuple[str, int]]
    ) -> dict[tuple[str, int], list[TaskError]]:
        """Several tasks' errors at once, each list as :meth:`task_errors` gives it.

        :param pairs: ``(storm_id, task_id)`` pairs.
        :returns: a dict from each pair, as given, to its errors, oldest first.
        :raises ValueError: if an id is not valid (nothing is read then).
        """
        ...

    def supervisors(self) -> list[str]:
        """The ids of the live supervisors (children of ``/supervisors``).

        :returns: the supervisor ids, sorted; ``[]`` if there are none.
        """
        ...

    def supervisor_info(self, supervisor_id: str) -> SupervisorInfo | None:
        """A supervisor's last heartbeat, from ``/supervisors/{supervisor-id}``.

        :param supervisor_id: the supervisor.
        :returns: the :class:`SupervisorInfo`, or ``None`` if the node is absent.
        :raises ValueError: if ``supervisor_id`` is not a valid id.
        :raises UnreadableNodeError: if the node's data is not a SupervisorInfo.
        """
        ...
