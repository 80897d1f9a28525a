"""Comparing a ClusterMirror with a fresh read through StormClusterState, node by node.

Shared by the mirror's own tests and the fault tests: ``assert_mirror_equals``
fails naming every read that differs; ``wait_mirror_equals`` waits (with a
timeout) for the mirror to catch up, as it does asynchronously.
"""

from __future__ import annotations

import threading

from clusterstate import paths
from clusterstate.errors import UnreadableNodeError
from tests.helpers import WAIT, wait_for


def _read(fn, *args):
    """A read's result, or a comparable stand-in for the error it raised."""
    try:
        return fn(*args)
    except UnreadableNodeError as exc:
        return ("unreadable", exc.path)
    except ValueError as exc:
        return ("invalid", type(exc).__name__)


def mirror_diff(mirror, storm_state, *, heartbeats: bool = True) -> list[str]:
    """Every read on which ``mirror`` and ``storm_state`` (a StormClusterState) disagree.

    Lists are compared as returned; then, for every storm and supervisor id
    either side names, each per-storm, per-task and per-supervisor read.

    :param heartbeats: also compare heartbeat data (the mirror re-reads it
        only every ``heartbeat_secs``; which tasks have one is always compared).
    :returns: one line per difference, ``[]`` when they agree.
    """
    diffs = []

    def check(what, mine, theirs):
        if mine != theirs:
            diffs.append(f"{what}: mirror {mine!r} != zookeeper {theirs!r}")

    lists = {}
    for name in (
        "assignments",
        "active_storms",
        "task_storms",
        "supervisors",
        "heartbeat_storms",
        "task_error_storms",
    ):
        mine, theirs = _read(getattr(mirror, name)), _read(getattr(storm_state, name))
        check(f"{name}()", mine, theirs)
        lists[name] = set(mine) | set(theirs)

    storm_ids = set().union(*(v for k, v in lists.items() if k != "supervisors"))
    state = storm_state.cluster_state
    for storm_id in sorted(storm_ids):
        for name in ("assignment_info", "storm_base", "task_ids", "heartbeat_tasks"):
            check(
                f"{name}({storm_id!r})",
                _read(getattr(mirror, name), storm_id),
                _read(getattr(storm_state, name), storm_id),
            )
        task_ids = set(_read(storm_state.task_ids, storm_id)) | set(
            _read(mirror.task_ids, storm_id)
        )
        for task_id in sorted(task_ids):
            check(
                f"task_info({storm_id!r}, {task_id})",
                _read(mirror.task_info, storm_id, task_id),
                _read(storm_state.task_info, storm_id, task_id),
            )
        beat_ids = set(_read(storm_state.heartbeat_tasks, storm_id)) | set(
            _read(mirror.heartbeat_tasks, storm_id)
        )
        for task_id in sorted(beat_ids):
            mine = _read(mirror.task_heartbeat, storm_id, task_id)
            theirs = _read(storm_state.task_heartbeat, storm_id, task_id)
            if heartbeats:
                check(f"task_heartbeat({storm_id!r}, {task_id})", mine, theirs)
            else:
                check(
                    f"task_heartbeat({storm_id!r}, {task_id}) is None",
                    mine is None,
                    theirs is None,
                )
        # StormClusterState cannot list a storm's error tasks: ask the state
        error_tasks = {
            int(name)
            for name in state.get_children(paths.taskerror_storm_root(storm_id))
            if name.isdigit()
        }
        for task_id in sorted(error_tasks | task_ids | beat_ids):
            check(
                f"task_errors({storm_id!r}, {task_id})",
                _read(mirror.task_errors, storm_id, task_id),
                _read(storm_state.task_errors, storm_id, task_id),
            )
    for supervisor_id in sorted(lists["supervisors"]):
        check(
            f"supervisor_info({supervisor_id!r})",
            _read(mirror.supervisor_info, supervisor_id),
            _read(storm_state.supervisor_info, supervisor_id),
        )
    return diffs


def assert_mirror_equals(mirror, storm_state, *, heartbeats: bool = True) -> None:
    """Fail, naming every difference, unless every read of ``mirror`` equals ``storm_state``'s.

    :param heartbeats: also compare heartbeat data (see :func:`mirror_diff`).
    """
    diffs = mirror_diff(mirror, storm_state, heartbeats=heartbeats)
    assert not diffs, "mirror differs from ZooKeeper:\n" + "\n".join(diffs)


def wait_mirror_equals(mirror, storm_state, timeout: float = WAIT, *, heartbeats=True) -> None:
    """Wait until :func:`assert_mirror_equals` passes; fail with the last differences."""
    last = []

    def equal():
        last[:] = mirror_diff(mirror, storm_state, heartbeats=heartbeats)
        return not last

    try:
        wait_for(equal, timeout=timeout, interval=0.05)
    except AssertionError:
        raise AssertionError(
            f"mirror still differs after {timeout}s:\n" + "\n".join(last)
        ) from None


class ChangeLog:
    """A mirror subscriber that records every MirrorChange and lets a test wait on them."""

    def __init__(self):
        self.changes: list = []
        self._cond = threading.Condition()

    def __call__(self, change) -> None:
        with self._cond:
            self.changes.append(change)
            self._cond.notify_all()

    def of(self, kind: str, **fields) -> list:
        """The recorded changes of ``kind`` whose attributes equal ``fields``."""
        with self._cond:
            return [
                c
                for c in self.changes
                if c.kind == kind and all(getattr(c, k) == v for k, v in fields.items())
            ]

    def wait(self, kind: str, timeout: float = WAIT, **fields):
        """Wait for a change of ``kind`` matching ``fields``; returns the first such."""
        with self._cond:
            if not self._cond.wait_for(lambda: self.of(kind, **fields), timeout):
                raise AssertionError(
                    f"no {kind} change with {fields} after {timeout}s; got {self.changes}"
                )
        return self.of(kind, **fields)[0]

    def clear(self) -> None:
        with self._cond:
            self.changes.clear()
