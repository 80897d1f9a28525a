"""An in-process mirror of a Storm cluster's state, kept in sync by ZooKeeper watches.

Storm's own UI read ZooKeeper on every page view and timed out on large
clusters. :class:`ClusterMirror` reads everything once (pipelined), keeps it
in memory and answers the reads of :class:`~clusterstate.reader.StormReader`
(the reads of ``docs/contract/cluster-state.md`` that
:class:`~clusterstate.storm.StormClusterState` implements too)
from there, so a page never waits on ZooKeeper.

How it stays in sync:

- Watches: children watches on every folder (``/storms``, ``/tasks/{id}``,
  ``/taskerrors/{id}/{task}``, ...) and data watches on the storm,
  assignment, task and supervisor nodes. A fired watch only enqueues its
  path; one worker thread drains the queue, coalescing a burst per path,
  re-reads what changed with a fresh watch, applies it and tells the
  subscribers.
- Heartbeat data is not watched (20,000 tasks beating every few seconds
  would be a storm of events): a heartbeat node appearing or vanishing is
  seen at once through the children watches, and the data of every
  heartbeat is re-read in pipelined batches every ``heartbeat_secs``, on a
  thread of its own (optionally on a ZooKeeper session of its own), so the
  worker never holds an event behind a heartbeat batch.
- Error nodes never change once written: each is read once.
- After every reconnect (ZooKeeper drops watches on a disconnect, and a new
  session after an expiry has none), and every ``resync_secs``, everything
  is re-read with fresh watches and diffed against the mirror; what differs
  is reported like any other change. (The heartbeats the mirror knows are
  re-read by a poll started as the resync ends, on the poller's thread.)

While disconnected the mirror keeps serving what it last knew, with
:attr:`ClusterMirror.connected` false and :attr:`ClusterMirror.synced_at`
telling since when.
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from . import paths, precedence
from .errors import NotConnectedError, UnreadableNodeError
from .protocol import (
    CONNECTED,
    NODE_CHILDREN_CHANGED,
    NODE_DATA_CHANGED,
    NODE_DELETED,
    ClusterState,
)
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
    ordered_error_names,
)

logger = logging.getLogger(__name__)

#: How many errors each task keeps, as in the original.
MAX_TASK_ERRORS = 10

#: How many paths one pipelined read asks for at most.
BATCH_SIZE = 2000

#: How many heartbeats one poll batch reads (on the poller's thread).
POLL_BATCH_SIZE = 1000

#: How many paths one pipelined read of a resync asks for at most: events that come
#: meanwhile are applied between them, so they wait for one such read at most.
RESYNC_BATCH_SIZE = 250

#: A heartbeat poll lets news pass (:mod:`clusterstate.precedence`) after decoding this
#: many heartbeats, and before each batch's read.
DECODE_STEP = 100

#: Kinds of :class:`MirrorChange`.
CHANGE_KINDS = (
    "storm",
    "assignment",
    "tasks",
    "supervisor",
    "heartbeats",
    "errors",
    "connection",
    "resync",
)


@dataclass(frozen=True)
class MirrorChange:
    """One change applied to a :class:`ClusterMirror`.

    By kind:

    - ``"storm"``, ``"assignment"``: ``/storms/{storm_id}`` or
      ``/assignments/{storm_id}`` appeared, changed or vanished;
    - ``"tasks"``: a storm's task folder appeared or vanished (``task_id``
      ``None``), or one task's info changed;
    - ``"supervisor"``: ``supervisor_id`` appeared, changed or vanished;
    - ``"heartbeats"``: with ``storm_id``, heartbeat nodes of that storm
      appeared or vanished; without, one batch of re-read heartbeat data
      held news (one change per batch, never one per task);
    - ``"errors"``: a task's errors changed; ``errors`` holds the new ones
      (empty when old ones were only trimmed or torn down; ``task_id``
      ``None`` when the storm's whole error folder went);
    - ``"connection"``: :attr:`ClusterMirror.connected` flipped;
    - ``"resync"``: a full sync ended (the cold load too, reported by this
      change alone); whatever it found different was reported just before.

    :param kind: one of :data:`CHANGE_KINDS`.
    :param storm_id: the storm it concerns, or ``None`` (cluster-wide, a
        supervisor, a heartbeat batch, the connection).
    :param task_id: the task it concerns, or ``None``.
    :param errors: for ``"errors"``: the task's errors that are new to the
        mirror, oldest first; each error is delivered once.
    :param version: the mirror's version once this change was applied.
    :param supervisor_id: for ``"supervisor"``: the supervisor (an extension).
    """

    kind: str
    storm_id: str | None = None
    task_id: int | None = None
    errors: tuple[TaskError, ...] = ()
    version: int = 0
    supervisor_id: str | None = None


# -- the layout, generically ---------------------------------------------------

# what a node at each depth under each subtree is
_LIST = "list"  # a folder: children watched
_DATA = "data"  # a record: data watched
_BEAT = "beat"  # a heartbeat record: data polled, never watched
_ERRORS = "errors"  # a task's error folder: children watched, each error read once
_ERROR = "error"  # one error node: immutable

_LAYOUT = {
    paths.STORMS_ROOT: (_LIST, _DATA),
    paths.ASSIGNMENTS_ROOT: (_LIST, _DATA),
    paths.SUPERVISORS_ROOT: (_LIST, _DATA),
    paths.TASKS_ROOT: (_LIST, _LIST, _DATA),
    paths.TASKBEATS_ROOT: (_LIST, _LIST, _BEAT),
    paths.TASKERRORS_ROOT: (_LIST, _LIST, _ERRORS, _ERROR),
}

_RECORDS = {
    paths.STORMS_ROOT: StormBase,
    paths.ASSIGNMENTS_ROOT: Assignment,
    paths.SUPERVISORS_ROOT: SupervisorInfo,
    paths.TASKS_ROOT: TaskInfo,
    paths.TASKBEATS_ROOT: TaskHeartbeat,
}

_CHANGE_KIND = {
    paths.STORMS_ROOT: "storm",
    paths.ASSIGNMENTS_ROOT: "assignment",
    paths.SUPERVISORS_ROOT: "supervisor",
    paths.TASKS_ROOT: "tasks",
    paths.TASKBEATS_ROOT: "heartbeats",
    paths.TASKERRORS_ROOT: "errors",
}

_ROOTS = tuple("/" + root for root in _LAYOUT)


def _tokens(path: str) -> list[str]:
    # paths here are ZooKeeper's own, normalised: faster than paths.tokenize_path
    return path[1:].split("/") if len(path) > 1 else []


def _rule(tokens: list[str]) -> str | None:
    layout = _LAYOUT.get(tokens[0]) if tokens else None
    if layout is None or len(tokens) > len(layout):
        return None
    return layout[len(tokens) - 1]


#: the worker's marker for a state connected again with nothing missed (``state.resumed``:
#: :class:`clusterstate.replica.ReplicaState`)
_RESUMED = object()


def _depth(path: str) -> int:
    return path.count("/")


def _child(path: str, name: str) -> str:
    return f"{path}/{name}"


def _task_id(name: str) -> int | None:
    try:
        return paths.check_task_id(name)
    except ValueError:
        return None


@functools.lru_cache(maxsize=4096)
def _checked_str_id(value: str, kind: str) -> str:
    return paths.check_id(value, kind)


def _check_id(value, kind: str = "storm id") -> str:
    """:func:`paths.check_id`, remembering the ids it accepted (pages ask per task)."""
    if type(value) is str:
        return _checked_str_id(value, kind)
    return paths.check_id(value, kind)


def _not_errors(path: str) -> bool:
    return not path.startswith(paths.TASKERRORS_SUBTREE + "/")


def _news_told(items: list) -> None:
    """The watch events among ``items`` are applied and told: their news has left the mirror."""
    precedence.NEWS.end(sum(1 for item in items if isinstance(item, tuple)))


def _chunks(items: list, size: int = BATCH_SIZE):
    for i in range(0, len(items), size):
        yield items[i : i + size]


class _Unreadable:
    """Stands in for a record whose data did not fit its schema."""

    __slots__ = ("reason",)

    def __init__(self, reason: str):
        self.reason = reason


class _Entry:
    """A data node: its raw bytes (to spot changes cheaply) and its record."""

    __slots__ = ("raw", "value")

    def __init__(self, raw: bytes, value):
        self.raw = raw
        self.value = value


class _Changes:
    """What one step changed: the changes to report."""

    def __init__(self):
        self.keys: dict[tuple, list[TaskError]] = {}

    def add(self, kind, storm_id=None, task_id=None, supervisor_id=None, errors=()):
        self.keys.setdefault((kind, storm_id, task_id, supervisor_id), []).extend(errors)

    def touch(self, path: str, tokens: list[str] | None = None, *, data_only=False) -> None:
        """Note a change at ``path`` (split in ``tokens``, if at hand).

        :param data_only: a record changed in place (not added or removed).
        """
        if tokens is None:
            tokens = _tokens(path)
        root, rest = tokens[0], tokens[1:]
        kind = _CHANGE_KIND[root]
        storm_id = rest[0] if rest else None
        if root == paths.SUPERVISORS_ROOT:
            self.add(kind, supervisor_id=storm_id)
        elif root == paths.TASKBEATS_ROOT:
            # new heartbeat data is reported once per batch; a heartbeat node
            # appearing or vanishing once per storm
            self.add(kind, None if data_only else storm_id)
        elif root == paths.TASKS_ROOT and len(rest) > 1:
            self.add(kind, storm_id, _task_id(rest[1]))
        elif root == paths.TASKERRORS_ROOT and len(rest) > 1:
            self.add(kind, storm_id, _task_id(rest[1]))
        else:
            self.add(kind, storm_id)

    def ordered(self):
        """The changes to report: a storm's task changes fold into one for the storm."""
        for (kind, storm_id, task_id, supervisor_id), errors in self.keys.items():
            if (
                kind in ("tasks", "errors")
                and task_id is not None
                and not errors
                and (kind, storm_id, None, None) in self.keys
            ):
                continue
            yield kind, storm_id, task_id, supervisor_id, tuple(errors)

    def __bool__(self):
        return bool(self.keys)


class ClusterMirror(StormReader):
    """The whole cluster state in memory, kept in sync with ZooKeeper by watches.

    Reads are :class:`~clusterstate.reader.StormReader`'s (names, return
    types and errors), and never touch ZooKeeper: they are dict lookups under
    a lock, safe from any thread. Records returned are shared: treat them
    as read-only.

    :param state: the :class:`ClusterState` to mirror (its root is the
        cluster's root). The mirror registers a watch callback and a
        connection listener on it; it never closes it.
    :param heartbeat_secs: how often heartbeat data is re-read.
    :param resync_secs: how often everything is re-read and diffed, to catch
        what the watches missed.
    :param time_fn: the clock for :attr:`synced_at`, injectable for tests.
    :param heartbeat_state: a second :class:`ClusterState` on the same
        cluster (its own ZooKeeper session) for the heartbeat polls, so that
        their replies never queue ahead of ``state``'s watch notifications;
        while it is not connected the polls go through ``state``. The mirror
        neither registers on it nor closes it.

    Heartbeat polls run on a thread of their own: a watch event (an error, a
    storm change) never waits behind a heartbeat batch being read or decoded.
    """

    def __init__(
        self,
        state: ClusterState,
        *,
        heartbeat_state: ClusterState | None = None,
        heartbeat_secs: float = 5.0,
        resync_secs: float = 60.0,
        time_fn: Callable[[], float] = time.time,
    ):
        if heartbeat_secs <= 0 or resync_secs <= 0:
            raise ValueError("heartbeat_secs and resync_secs must be positive")
        self._state = state
        self._beat_state = heartbeat_state
        self._heartbeat_secs = float(heartbeat_secs)
        self._resync_secs = float(resync_secs)
        self._time_fn = time_fn

        # the mirror; written by the worker only, under the lock
        self._lock = threading.Lock()
        self._children: dict[str, frozenset[str]] = {}
        self._listing: dict[str, tuple] = {}
        self._data: dict[str, _Entry] = {}
        self._errors: dict[str, tuple[tuple[str, TaskError], ...]] = {}

        self._subscribers: tuple[Callable[[MirrorChange], None], ...] = ()
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        # the heartbeat poller: the only other thread writing the mirror (heartbeat data only)
        self._beat_thread: threading.Thread | None = None
        self._beats_stop = threading.Event()
        # changes are numbered and told in one order, whichever thread applied them
        self._emit_lock = threading.RLock()
        self._stopping = False
        self._resumable = False  # lost while synced, nothing missed since (_sort)
        self._watch_id = None

        self._connected = False
        self._reported_connected = False
        self._connection_gen = 0
        self._synced = threading.Event()
        self._synced_at: float | None = None
        self._first_sync_done = False
        self._read_all = False  # seeded: the next sync reads every node, known or not
        self._version = 0
        #: full syncs completed, the cold load included (read from any thread)
        self.resyncs = 0
        #: how long the last complete heartbeat poll took, in seconds; ``None`` before one
        self.heartbeat_poll_secs: float | None = None
        #: during the cold load: (nodes read, nodes known); replaced whole, read from any thread
        self._progress = (0, 0)
        self._loading = False  # the cold load is running: count its reads
        self._touched: set[str] | None = None  # during a resync: paths events read
        self._deferred: list[tuple[str, str]] = []  # events for after the resync's apply

        # the worker's schedule (time.monotonic)
        self._need_resync = True
        self._retry_delay = 0.0
        self._retry_due = 0.0
        self._resync_due = 0.0
        self._beat_due = 0.0

    # -- life cycle ------------------------------------------------------------

    def start(self, wait: float | None = 30.0) -> None:
        """Start the worker thread, which loads everything and then follows the changes.

        :param wait: seconds to wait for the first complete load; ``None``
            to return at once. Returning after ``wait`` without a load is no
            error: the mirror keeps trying (see :attr:`connected`).
        :raises RuntimeError: if the mirror was stopped.
        """
        if self._stopping:
            raise RuntimeError("a stopped ClusterMirror cannot be started again")
        if self._thread is None:
            # listen first, so nothing between the load and the watches is missed
            self._watch_id = self._state.register(self._on_watch)
            self._state.add_connection_listener(self._on_connection)
            self._thread = threading.Thread(target=self._run, name="cluster-mirror", daemon=True)
            self._thread.start()
            self._beat_thread = threading.Thread(
                target=self._run_heartbeats, name="cluster-mirror-heartbeats", daemon=True
            )
            self._beat_thread.start()
        if wait is not None and not self.wait_synced(wait):
            logger.warning("cluster mirror not synced after %.1f s; still trying", wait)

    def seed(self, other: ClusterMirror) -> bool:
        """Before :meth:`start`: begin with what ``other`` (a mirror of the same cluster
        that has been synced, maybe of another copy of it: a follower's, of the leader's copy,
        which may have gone with the leader) holds, instead of nothing.

        The mirror then answers at once, as synced as ``other`` was, and its first sync
        reads everything (as a cold load does, so that a copy made of its reads is whole)
        and reports what differs from the seed as changes: an error written meanwhile is
        told once, and nothing the seed held is told again. A new leader takes over this
        way in the time of its election, not of reading a large cluster (30 s at 20,000
        tasks under load).

        :returns: False, seeding nothing, if ``other`` was never synced.
        :raises RuntimeError: if this mirror was started.
        """
        if self._thread is not None or self._stopping:
            raise RuntimeError("a mirror is seeded before it starts")
        synced_at = other.synced_at
        if synced_at is None:
            return False
        with other._lock:
            children, listing = dict(other._children), dict(other._listing)
            data, errors = dict(other._data), dict(other._errors)
        with self._lock:
            self._children, self._listing, self._data, self._errors = (
                children,
                listing,
                data,
                errors,
            )
        self._first_sync_done = True
        self._read_all = True
        self._synced_at = synced_at
        self._connected = self._reported_connected = True
        self._synced.set()
        return True

    def stopping(self) -> None:
        """Begin to stop without waiting: the worker and the heartbeat poller stop at their
        next step, and no watch is held as news any more. :meth:`stop` waits for them."""
        self._stopping = True
        self._beats_stop.set()
        self._queue.put(None)  # (wakes the worker)

    def stop(self) -> None:
        """Stop the worker and stop listening; the state stays open. Harmless if repeated.

        Reads keep answering from what the mirror last knew.
        """
        self.stopping()
        thread, self._thread = self._thread, None
        if thread is None:
            return
        for t in (thread, self._beat_thread):
            if t is not None and t is not threading.current_thread():
                t.join(30)
        try:
            self._state.unregister(self._watch_id)
            self._state.remove_connection_listener(self._on_connection)
        except Exception:
            logger.exception("could not unregister the cluster mirror")
        # the news no worker will tell is let go: background work never waits for it
        _news_told(self._take(0))

    def wait_synced(self, timeout: float | None) -> bool:
        """Wait until the mirror is connected and synced.

        :param timeout: seconds to wait at most (``None``: for ever).
        :returns: True if it is, False if ``timeout`` passed first.
        """
        return self._synced.wait(timeout)

    @property
    def connected(self) -> bool:
        """True while connected and synced; false from a suspended connection until resynced."""
        return self._connected

    @property
    def synced_at(self) -> float | None:
        """When (by ``time_fn``) the mirror was last known to be in sync; ``None`` before."""
        return self._synced_at

    @property
    def version(self) -> int:
        """Bumped on every applied change (see :meth:`subscribe`)."""
        return self._version

    def node_count(self) -> int:
        """How many nodes the mirror holds: folders, records and error nodes."""
        with self._lock:
            return (
                len(self._children)
                + len(self._data)
                + sum(len(errors) for errors in self._errors.values())
            )

    def progress(self) -> tuple[int, int]:
        """How far the first complete load has got: cheap, from any thread.

        :returns: ``(read, known)``: the nodes read so far and the nodes known
            so far (``known`` grows as folders are listed; ``read <= known``).
            After the first load both stay as it left them.
        """
        read, known = self._progress
        return min(read, known), known

    def subscribe(self, listener: Callable[[MirrorChange], None]) -> Callable[[], None]:
        """Call ``listener(change)`` for every :class:`MirrorChange` from now on.

        Listeners run on the mirror's worker thread, in order, after the
        change is applied (reads already see it): they must hand off and
        return at once. An exception in one is logged.

        :returns: a function that unsubscribes ``listener``.
        """
        with self._lock:
            self._subscribers = (*self._subscribers, listener)

        def unsubscribe() -> None:
            with self._lock:
                self._subscribers = tuple(s for s in self._subscribers if s is not listener)

        return unsubscribe

    # -- reads: the StormReader contract, from memory ---------------------------
    # (documented once, on StormReader; only what differs is noted here)

    def assignments(self) -> list[str]:
        return self._list(paths.ASSIGNMENTS_SUBTREE)

    def assignment_info(self, storm_id: str) -> Assignment | None:
        return self._read(f"{paths.ASSIGNMENTS_SUBTREE}/{_check_id(storm_id)}")

    def active_storms(self) -> list[str]:
        return self._list(paths.STORMS_SUBTREE)

    def storm_base(self, storm_id: str) -> StormBase | None:
        return self._read(f"{paths.STORMS_SUBTREE}/{_check_id(storm_id)}")

    def task_storms(self) -> list[str]:
        return self._list(paths.TASKS_SUBTREE)

    def task_ids(self, storm_id: str) -> list[int]:
        return self._list(f"{paths.TASKS_SUBTREE}/{_check_id(storm_id)}")

    def task_info(self, storm_id: str, task_id: int) -> TaskInfo | None:
        return self._read(self._task_path(paths.TASKS_SUBTREE, storm_id, task_id))

    def task_heartbeat(self, storm_id: str, task_id: int) -> TaskHeartbeat | None:
        """As :meth:`StormReader.task_heartbeat`, at most ``heartbeat_secs`` old."""
        return self._read(self._task_path(paths.TASKBEATS_SUBTREE, storm_id, task_id))

    def supervisors(self) -> list[str]:
        return self._list(paths.SUPERVISORS_SUBTREE)

    def supervisor_info(self, supervisor_id: str) -> SupervisorInfo | None:
        path = f"{paths.SUPERVISORS_SUBTREE}/{_check_id(supervisor_id, 'supervisor id')}"
        return self._read(path)

    def heartbeat_storms(self) -> list[str]:
        return self._list(paths.TASKBEATS_SUBTREE)

    def heartbeat_tasks(self, storm_id: str) -> list[int]:
        return self._list(f"{paths.TASKBEATS_SUBTREE}/{_check_id(storm_id)}")

    def task_error_storms(self) -> list[str]:
        return self._list(paths.TASKERRORS_SUBTREE)

    def task_errors(self, storm_id: str, task_id: int) -> list[TaskError]:
        path = self._task_path(paths.TASKERRORS_SUBTREE, storm_id, task_id)
        with self._lock:
            errors = self._errors.get(path, ())
        return [error for _name, error in errors]

    def task_errors_many(
        self, pairs: Iterable[tuple[str, int]]
    ) -> dict[tuple[str, int], list[TaskError]]:
        return {pair: self.task_errors(*pair) for pair in pairs}

    @staticmethod
    def _task_path(subtree: str, storm_id, task_id) -> str:
        # as paths.task_path and friends build them, ids checked the same way
        return f"{subtree}/{_check_id(storm_id)}/{paths.check_task_id(task_id)}"

    def _list(self, path: str) -> list:
        with self._lock:
            return list(self._listing.get(path, ()))

    def _read(self, path: str):
        with self._lock:
            entry = self._data.get(path)
        return self._value(entry, path)

    @staticmethod
    def _value(entry: _Entry | None, path: str):
        if entry is None:
            return None
        if type(entry.value) is _Unreadable:
            # a fresh exception per read: one instance raised in two threads
            # would share a traceback
            raise UnreadableNodeError(path, entry.value.reason)
        return entry.value

    # -- kazoo's threads: hand off and return ------------------------------------

    def _on_watch(self, event_type: str, path: str) -> None:
        if self._stopping:
            return  # no worker tells it any more
        # news: background work steps aside until the worker has told of it (precedence)
        precedence.NEWS.begin()
        self._queue.put((event_type, path))

    def _on_connection(self, state: str) -> None:
        # never call ZooKeeper here: note it and let the worker act
        self._connection_gen += 1
        if state != CONNECTED:
            self._connected = False
            self._synced.clear()
        elif getattr(self._state, "resumed", False):
            state = _RESUMED  # (asked now: the state says so as it tells)
        self._queue.put(state)

    # -- the worker ----------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping:
            try:
                self._step()
            except Exception:
                # the mirror may now be out of step with ZooKeeper: resync
                logger.exception("cluster mirror step failed; resyncing")
                self._schedule_retry()

    def _step(self) -> None:
        items = self._take(self._timeout(time.monotonic()))
        try:
            if self._stopping:
                return
            events = self._sort(items)
            now = time.monotonic()
            if self._need_resync or now >= self._resync_due:
                if events:
                    self._resumable = False  # left to a resync: it must read them
                if self._resuming():
                    return  # connected again with nothing missed: its marker is on its way
                if now >= self._retry_due and self._state.connected:
                    self._resync()  # reads everything: the events are covered
                return
            if events:
                self._apply_events(events)
        finally:
            _news_told(items)

    def _sort(self, items: list) -> dict[str, set[str]]:
        """Act on the connection markers among ``items``; return the watch events by path."""
        events: dict[str, set[str]] = {}
        for item in items:
            if isinstance(item, tuple):
                event_type, path = item
                events.setdefault(path, set()).add(event_type)
            elif item is _RESUMED and self._resumable:
                # connected again to a copy that carries on the one read, nothing of it
                # missed (a follower's, of a new leader's copy): what is held is current
                self._resumable = self._need_resync = False
                self._synced_at = self._time_fn()
                self._connected = True
                self._synced.set()
                self._report_connection()
            elif item == CONNECTED or item is _RESUMED:
                self._need_resync = True
                self._retry_due = 0.0
                self._resumable = False
            elif item is not None:
                # whether what is held stays current if the state resumes
                self._resumable = self._first_sync_done and not self._need_resync
                # the listener said so already; say it again here, in case a
                # resync that ended meanwhile had just set it back
                self._connected = False
                self._synced.clear()
                self._need_resync = True
                self._report_connection()
        return events

    def _catch_up(self) -> None:
        """Between the chunks of a long read: apply the events that came meanwhile.

        So a resync or a heartbeat poll of a large cluster never holds up the
        news (a reported error) for long.
        """
        if not self._stopping:
            items = self._take(0)
            try:
                events = self._sort(items)
                if events:
                    self._apply_events(events)
            finally:
                _news_told(items)

    def _timeout(self, now: float) -> float:
        """How long the worker may wait for events before it has something to do."""
        if self._need_resync or now >= self._resync_due:
            if not self._state.connected or self._resuming():
                return 1.0  # the connection listener's marker wakes us sooner
            due = self._retry_due
        else:
            due = self._resync_due
        return min(max(due - now, 0.0), 1.0)

    def _take(self, timeout: float) -> list:
        try:
            items = [self._queue.get(timeout=timeout)]
        except queue.Empty:
            return []
        while True:  # drain the burst, so it is handled in one go
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                return items

    def _resuming(self) -> bool:
        return self._resumable and getattr(self._state, "resumed", False)

    def _schedule_retry(self) -> None:
        self._need_resync = True
        self._resumable = False
        self._retry_delay = min(max(self._retry_delay * 2, 0.2), 5.0, self._resync_secs)
        self._retry_due = time.monotonic() + self._retry_delay

    def _resync(self) -> None:
        """Re-read everything with fresh watches, diff it against the mirror, report the diff.

        Events that come during the reads are applied between their chunks;
        what they touched is newer than the resync's reads, which skip it.
        """
        gen = self._connection_gen
        first = not self._first_sync_done
        self._need_resync = False  # a connection marker meanwhile sets it again
        changes = _Changes()
        self._touched = set()
        self._loading = first
        if first:
            self._progress = (0, len(_ROOTS))
        try:
            lists: Iterable[str] = _ROOTS
            if self._read_all:
                # a seeded mirror (a new leader) lists the error folders it knows with the
                # roots, before everything else: their watches tell of the errors written
                # while the rest of a large cluster is read
                # (the worker alone writes the mirror: it reads it without the lock)
                lists = (*_ROOTS, *self._error_folders_newest_first())
            self._refresh(lists, (), full=True, changes=changes, between=self._catch_up)
        except NotConnectedError:
            logger.info("cluster mirror resync interrupted by a disconnect; will retry")
            self._schedule_retry()
            return
        finally:
            self._touched = None
            self._loading = False
            # the cold load is a snapshot, not news: it is reported as one resync
            self._report(_Changes() if first else changes)
            deferred, self._deferred = self._deferred, []
            precedence.NEWS.begin(len(deferred))  # news again, told by a later step
            for event in deferred:
                self._queue.put(event)
        now = time.monotonic()
        self._read_all = False
        self._retry_delay = 0.0
        self._resync_due = now + self._resync_secs
        self._beat_due = now  # the known heartbeats: re-read by a poll now
        self._first_sync_done = True
        self.resyncs += 1
        if gen == self._connection_gen and self._state.connected and not self._need_resync:
            self._synced_at = self._time_fn()
            self._connected = True
            self._synced.set()
        self._emit(MirrorChange("resync"))
        self._report_connection()

    def _per_task(self, subtree: str) -> list[str]:
        """The task nodes the mirror knows under ``subtree`` (one folder per storm, one
        node per task: heartbeats, error folders). Under the lock, or on the worker."""
        return [
            _child(storm_root, name)
            for storm in self._children.get(subtree, ())
            for storm_root in (_child(subtree, storm),)
            for name in self._children.get(storm_root, ())
        ]

    def _error_folders_newest_first(self) -> list[str]:
        """The error folders the mirror knows, the one whose last error is the newest first.

        A task that erred a moment ago is the likeliest to err again: a seeded mirror's
        first read lists (and so watches) the folders in this order, so on a large cluster
        a new leader hears of the errors of the tasks failing now within its first round
        trips, not once thousands of quiet folders are listed. (On the worker.)"""

        def newest(path: str) -> int:
            errors = self._errors.get(path)
            return errors[-1][1].time_secs if errors else -1

        return sorted(self._per_task(paths.TASKERRORS_SUBTREE), key=newest, reverse=True)

    def _report_connection(self) -> None:
        if self._reported_connected != self._connected:
            self._reported_connected = self._connected
            self._emit(MirrorChange("connection"))

    def _apply_events(self, events: dict[str, set[str]]) -> None:
        changes = _Changes()
        lists: set[str] = set()
        nodes: set[str] = set()
        try:
            with self._lock:
                for path, types in events.items():
                    tokens = _tokens(path)
                    rule = _rule(tokens)
                    if rule is None or rule == _ERROR:
                        continue
                    if NODE_DELETED in types:
                        # gone: drop it, and relist its folder in case it is back already
                        parent = paths.parent_path(path) if len(tokens) > 1 else path
                        if self._attached(path):
                            self._drop(path, changes)
                            self._unlink(path, changes)
                        if self._touched is not None:
                            self._touched.update((path, parent))
                        lists.add(parent)
                    elif rule in (_LIST, _ERRORS):
                        lists.add(path)
                    else:
                        nodes.add(path)
            self._refresh(lists, nodes, full=False, changes=changes)
        except NotConnectedError:
            logger.info("cluster mirror read interrupted by a disconnect; will resync")
            self._schedule_retry()
        finally:
            self._report(changes)

    def _run_heartbeats(self) -> None:
        """The heartbeat poller's thread: a poll every ``heartbeat_secs`` once synced."""
        while not self._beats_stop.is_set():
            now = time.monotonic()
            if not self._first_sync_done or self._need_resync or now < self._beat_due:
                # (a resync reads the heartbeats of new nodes itself; the poll waits for it)
                due = self._beat_due if self._first_sync_done else now + 0.1
                self._beats_stop.wait(min(max(due - now, 0.01), 0.5))
                continue
            try:
                self._poll_heartbeats()
            except Exception:
                logger.exception("cluster mirror heartbeat poll failed")
                self._beat_due = time.monotonic() + self._heartbeat_secs

    def _poll_state(self) -> ClusterState:
        beat_state = self._beat_state
        if beat_state is not None and beat_state.connected:
            return beat_state
        return self._state

    def _poll_heartbeats(self) -> None:
        """Re-read every heartbeat's data (unwatched), in pipelined batches (the poller's thread).

        Each batch is decoded outside the lock and applied and reported as one
        ``"heartbeats"`` change. A heartbeat the worker wrote or dropped since
        the batch was read is left as the worker has it (its read is newer);
        nodes gone are left to the worker too (the folder's watch tells it).
        """
        step_aside = precedence.NEWS.step_aside
        started = time.monotonic()
        self._beat_due = started + self._heartbeat_secs
        with self._lock:
            beats = self._per_task(paths.TASKBEATS_SUBTREE)
        gen = self._connection_gen
        for batch in _chunks(beats, POLL_BATCH_SIZE):
            if self._beats_stop.is_set() or self._need_resync:
                return
            step_aside()  # news first: this poll is the dashboard's bulk work
            seen = {path: self._data.get(path) for path in batch}
            try:
                fetched = self._poll_state().get_data_many(batch, False)
            except NotConnectedError:
                logger.info("cluster mirror heartbeat read interrupted by a disconnect")
                return
            decoded = {}
            for i, (path, raw) in enumerate(fetched.items()):
                if i % DECODE_STEP == DECODE_STEP - 1:
                    step_aside()
                entry = seen.get(path)
                if raw is None or (entry is not None and entry.raw == raw):
                    continue
                try:
                    decoded[path] = _Entry(raw, decode(TaskHeartbeat, raw, path))
                except UnreadableNodeError as exc:
                    decoded[path] = _Entry(raw, _Unreadable(exc.reason))
            changes = _Changes()
            if decoded:
                with self._lock:
                    for path, entry in decoded.items():
                        old = seen[path]
                        if self._data.get(path) is not old or not self._attached(path):
                            continue
                        self._data[path] = entry
                        changes.touch(path, data_only=old is not None)
            self._report(changes)
        # on a cluster too large to re-read every heartbeat_secs, rest twice as long as a
        # poll takes, so polls never take more than a third of the time pages need too
        now = time.monotonic()
        self.heartbeat_poll_secs = now - started
        self._beat_due = now + max(self._heartbeat_secs, 2 * (now - started))
        if self._connected and gen == self._connection_gen and not self._need_resync:
            self._synced_at = self._time_fn()

    # -- reading ZooKeeper ---------------------------------------------------------

    def _get_children_many(self, items: list[str], between) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for chunk in _chunks(items, BATCH_SIZE if between is None else RESYNC_BATCH_SIZE):
            out.update(self._state.get_children_many(chunk, True))
            self._count_read(len(chunk))
            if between is not None:
                between()
        return out

    def _get_data_many(self, items: list[str], watch: bool, between) -> dict[str, bytes | None]:
        out: dict[str, bytes | None] = {}
        for chunk in _chunks(items, BATCH_SIZE if between is None else RESYNC_BATCH_SIZE):
            out.update(self._state.get_data_many(chunk, watch))
            self._count_read(len(chunk))
            if between is not None:
                between()
        return out

    def _count_read(self, read: int, known: int = 0) -> None:
        if self._loading:
            done, total = self._progress
            self._progress = (done + read, total + known)

    def _refresh(
        self, lists: Iterable[str], nodes: Iterable[str], *, full: bool, changes, between=None
    ):
        """Read folders and nodes, level by level, pipelined; then apply what was read.

        :param lists: folders to relist (their new children are read in full).
        :param nodes: data nodes to re-read.
        :param full: also re-read every known child (a resync): then paths
            that events touched meanwhile (``self._touched``) are left as
            they are, being newer.
        :param between: called between chunks of reads (a resync's catch-up).
        """
        # the mirror is written by this thread only: reading it here needs no lock
        # (the folders keep their given order within a level: the first listed are watched
        # first)
        lists, nodes = list(dict.fromkeys(lists)), set(nodes)
        if not full and self._touched is not None:
            # during a resync, a path it has read but not applied yet is not in the
            # mirror: the event is newer than that read, so read it again after the apply
            for event_type, group in ((NODE_CHILDREN_CHANGED, lists), (NODE_DATA_CHANGED, nodes)):
                self._deferred.extend((event_type, p) for p in group if not self._attached(p))
        watched: set[str] = set()
        unwatched: set[str] = set()
        for path in nodes:
            if self._attached(path):
                (watched if _rule(_tokens(path)) == _DATA else unwatched).add(path)
        listed: dict[str, list[str]] = {}
        frontier = sorted((p for p in lists if self._attached(p)), key=_depth)
        known_nodes = len(watched) + len(unwatched)
        while frontier:
            got = self._get_children_many(frontier, between)
            following = []
            for path in frontier:
                names = got.get(path, [])
                listed[path] = names
                tokens = _tokens(path)
                rule = _rule(tokens)
                if rule == _ERRORS:
                    # error nodes never change: read only the ones not yet seen (a seeded
                    # mirror's first read takes them all, so that its copy is whole)
                    known = (
                        set()
                        if full and self._read_all
                        else {name for name, _error in self._errors.get(path, ())}
                    )
                    for name in ordered_error_names(names)[-MAX_TASK_ERRORS:]:
                        if name not in known:
                            unwatched.add(_child(path, name))
                    continue
                child_rule = _LAYOUT[tokens[0]][len(tokens)]
                old = () if full else self._children.get(path, ())
                for name in names:
                    if name in old:
                        continue
                    child = _child(path, name)
                    if child_rule in (_LIST, _ERRORS):
                        if child not in listed:
                            following.append(child)
                    elif child_rule == _DATA:
                        watched.add(child)
                    elif not full or self._read_all or child not in self._data:
                        # a resync leaves the heartbeats it knows to a poll right after it,
                        # on the poller's thread: decoding them all here held up the events
                        # (a seeded mirror's first read takes them all, for its copy)
                        unwatched.add(child)
            # what this level listed is known now: its folders, its records, its errors
            self._count_read(0, len(following) + len(watched) + len(unwatched) - known_nodes)
            known_nodes = len(watched) + len(unwatched)
            # error folders first: their watches are what tells of news during a long read
            frontier = sorted(following, key=_not_errors)
        fetched = self._get_data_many(sorted(watched), True, between)
        fetched.update(self._get_data_many(sorted(unwatched), False, between))
        touched = self._touched
        if touched is not None:
            if full:  # what events read meanwhile is newer than what we read
                listed = {p: names for p, names in listed.items() if p not in touched}
                fetched = {p: raw for p, raw in fetched.items() if p not in touched}
            else:  # this read is newer than the resync's
                touched.update(listed)
                touched.update(fetched)
        decoded = self._decode_changed(fetched)
        with self._lock:
            for path in sorted(listed, key=_depth):
                if self._attached(path):
                    if _rule(_tokens(path)) == _ERRORS:
                        self._apply_errors(path, listed[path], fetched, changes)
                    else:
                        self._apply_children(path, listed[path], changes)
            self._apply_data(fetched, decoded, changes)

    def _decode_changed(self, fetched: dict[str, bytes | None]) -> dict[str, object]:
        """Decode the records whose bytes differ from the mirror's (outside the lock)."""
        decoded = {}
        for path, raw in fetched.items():
            if raw is None:
                continue
            tokens = _tokens(path)
            cls = _RECORDS.get(tokens[0])
            if cls is None or _rule(tokens) not in (_DATA, _BEAT):
                continue
            entry = self._data.get(path)
            if entry is not None and entry.raw == raw:
                continue
            try:
                decoded[path] = decode(cls, raw, path)
            except UnreadableNodeError as exc:
                decoded[path] = _Unreadable(exc.reason)
        return decoded

    # -- applying to the mirror (under the lock) -------------------------------------

    def _attached(self, path: str) -> bool:
        """True if ``path`` is in the mirror: a root, or named by its folder."""
        if path in _ROOTS:
            return True
        parent, _, name = path.rpartition("/")
        return name in self._children.get(parent, ())

    def _apply_children(self, path: str, names: list[str], changes: _Changes) -> None:
        new = frozenset(names)
        old = self._children.get(path)
        if old == new:
            return
        old = old or frozenset()
        for name in old - new:
            self._drop(_child(path, name), changes)
        if not path.startswith(paths.TASKERRORS_SUBTREE):
            # (a new error folder is no news: the errors in it will be)
            for name in new - old:
                changes.touch(_child(path, name))
        self._set_children(path, new)

    def _set_children(self, path: str, names: frozenset[str]) -> None:
        self._children[path] = names
        tokens = _tokens(path)
        if len(tokens) == 2:  # a storm's folder of tasks: task ids as ints
            self._listing[path] = tuple(sorted(t for t in map(_task_id, names) if t is not None))
        else:
            self._listing[path] = tuple(sorted(names))

    def _apply_data(self, fetched, decoded, changes: _Changes) -> None:
        for path, raw in fetched.items():
            if raw is not None and path not in decoded:
                continue  # unchanged (or an error node, applied elsewhere)
            tokens = _tokens(path)
            if _rule(tokens) not in (_DATA, _BEAT) or not self._attached(path):
                continue
            if raw is None:  # gone since its folder was listed
                self._drop(path, changes)
                self._unlink(path, changes)
            elif path in decoded:
                is_new = path not in self._data
                self._data[path] = _Entry(raw, decoded[path])
                changes.touch(path, tokens, data_only=not is_new)

    def _apply_errors(self, path, names, fetched, changes: _Changes) -> None:
        old = self._errors.get(path)
        known = dict(old or ())
        kept, fresh = [], []
        for name in ordered_error_names(names)[-MAX_TASK_ERRORS:]:
            if name in known:
                kept.append((name, known[name]))
                continue
            raw = fetched.get(_child(path, name))
            if raw is None:  # trimmed before it could be read
                continue
            error = decode_error(name, raw, _child(path, name))
            kept.append((name, error))
            fresh.append(error)
        kept = tuple(kept)
        if old is None or [n for n, _ in kept] != [n for n, _ in old]:
            self._errors[path] = kept
            self._children[path] = frozenset(n for n, _ in kept)
            if not kept and not old:
                return  # a new folder, still empty: task_errors() reads the same
            changes.touch(path)
            if fresh:
                tokens = _tokens(path)
                changes.add("errors", tokens[1], _task_id(tokens[2]), errors=fresh)

    def _drop(self, path: str, changes: _Changes) -> None:
        """Remove ``path`` and everything below it from the mirror."""
        names = self._children.pop(path, None)
        self._listing.pop(path, None)
        self._errors.pop(path, None)
        self._data.pop(path, None)
        if names and _rule(_tokens(path)) == _LIST:
            for name in names:
                self._drop(_child(path, name), changes)
        changes.touch(path)

    def _unlink(self, path: str, changes: _Changes) -> None:
        """Take ``path`` out of its folder's children."""
        parent, _, name = path.rpartition("/")
        names = self._children.get(parent)
        if names is not None and name in names:
            self._set_children(parent, names - {name})

    # -- telling others --------------------------------------------------------------

    def _report(self, changes: _Changes) -> None:
        """Report ``changes`` to the subscribers."""
        for kind, storm_id, task_id, supervisor_id, errors in changes.ordered():
            self._emit(MirrorChange(kind, storm_id, task_id, errors, 0, supervisor_id))

    def _emit(self, change: MirrorChange) -> None:
        # the worker and the heartbeat poller both tell: one at a time, in version order
        with self._emit_lock:
            self._version += 1
            change = MirrorChange(
                change.kind,
                change.storm_id,
                change.task_id,
                change.errors,
                self._version,
                change.supervisor_id,
            )
            for listener in self._subscribers:
                try:
                    listener(change)
                except Exception:
                    logger.exception("mirror subscriber %r failed", listener)
