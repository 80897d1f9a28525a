"""The timeline: what happened to storms, tasks, supervisors and ZooKeeper's connection,
and every admin action with its user (``docs/contract/history.md``, "Timeline").

Kinds: :data:`CHANGE_KINDS` (a change seen in ZooKeeper, or the dashboard's own start and
stop) and :data:`ACTION_KINDS` (an admin action, from the audit log, that was refused,
failed, or changed nothing the mirror saw). A storm change made by the dashboard is one
event: the mirror's change and the action's audit entry meet in :meth:`Part.write`,
whichever comes first, when they concern the same storm and are at most :data:`MATCH_MS`
apart, and the event names the action's user.

How a change becomes an event, once:

- The mirror's thread (:meth:`Part.note`) only notes what it saw (the storm's state read
  from the mirror, and when) in an inbox; the recorder's thread (:meth:`Part.tick`)
  compares it with what it saw before and puts the differences. A task dies by the clock
  (its heartbeat older than ``STORMUI_TASK_TIMEOUT_SECS`` and the time the mirror's copy
  may lag behind, or gone, after it was alive):
  each alive task is looked at again when its heartbeat would expire (a heap of deadlines),
  so a pass costs what expires, not the cluster's size.
- :meth:`Part.write` keeps the last state told of each storm, supervisor, task and the
  connection (:class:`~stormui.models.TimelineMark`) and tells only what differs from it.
  The first pass of a run puts the whole cluster as the mirror holds it (a baseline): the
  very first run only marks it; a later one tells what changed while no dashboard
  recorded, once, at the time it was seen (an event's ``after`` says since when it may
  have happened).
- A task first seen alive is marked without an event; one that was never alive (a storm
  still starting) is not a death.
"""

from __future__ import annotations

import heapq
import logging
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlencode

from django.conf import settings
from django.db import DatabaseError, transaction

from clusterstate import UnreadableNodeError

from . import recorder
from .query import DEFAULT_LIMIT, BadQuery, after, encode_cursor, paging, where

log = logging.getLogger(__name__)

#: kinds of the changes the timeline tells
CHANGE_KINDS = (
    "storm-submitted",
    "storm-activated",
    "storm-deactivated",
    "storm-removed",
    "task-died",
    "task-revived",
    "supervisor-joined",
    "supervisor-lost",
    "zookeeper-disconnected",
    "zookeeper-reconnected",
    "dashboard-stopped",
    "dashboard-started",
)
#: an admin action's event when it made no change of its own (refused, failed, nothing to do)
ACTION_KINDS = {
    "activate": "action-activate",
    "deactivate": "action-deactivate",
    "remove": "action-remove",
    "kill": "action-kill",
}
KINDS = CHANGE_KINDS + tuple(ACTION_KINDS.values())

#: the storm change each successful action makes
MAKES = {
    "activate": "storm-activated",
    "deactivate": "storm-deactivated",
    "kill": "storm-deactivated",
    "remove": "storm-removed",
}
#: an action and the change it made are seen at most this far apart (ms)
MATCH_MS = 15_000
#: a storm that appears inactive and is activated within this is one submission (ms)
SUBMIT_MS = 30_000
#: an audit entry may be committed this long after its time: each pass reads back this far
AUDIT_LATE_MS = 60_000
#: audit entries read in one pass at most
AUDIT_BATCH = 5000
#: tasks that are not alive are looked at this often (they revive by a heartbeat)
TASK_CHECK_SECS = 2.0
#: supervisors are looked at this often (one is lost when its heartbeat is too old)
SUPERVISOR_CHECK_SECS = 2.0
#: the mirror's changes waiting for the recorder's thread at most; past it, the next pass
#: compares the whole cluster instead
INBOX_MAX = 100_000
#: marks are read this many keys a query
MARK_CHUNK = 500

STORM, SUPERVISOR, TASK, ZOOKEEPER = "storm", "supervisor", "task", "zookeeper"
ACTIVE, INACTIVE, UP, LOST, ALIVE, DEAD = "active", "inactive", "up", "lost", "alive", "dead"
CONNECTED, DISCONNECTED = "connected", "disconnected"
#: the mark that says a baseline was taken once: later ones tell what differs
BASELINE_MARK = ("timeline", "baseline")


# -- what the part puts ------------------------------------------------------------------------


@dataclass
class Change:
    """A subject's new state (``None``: gone), seen at ``time`` (ms), happened after ``after``."""

    subject: str
    key: str
    state: str | None
    time: int
    after: int
    storm_id: str | None = None
    task_id: int | None = None
    supervisor_id: str | None = None
    component_id: str | None = None
    detail: str = ""
    #: only mark it (a submission's activation, a task first seen)
    quiet: bool = False
    #: tell this kind even if the state is as marked (a task restarted within the timeout)
    kind: str | None = None


@dataclass
class Baseline:
    """Everything as the mirror holds it: ``changes`` cover every subject there is."""

    changes: list[Change]
    time: int
    after: int


@dataclass
class Audit:
    id: int
    when: int
    user: str | None
    action: str
    storm_id: str
    outcome: str
    detail: str
    via: str


@dataclass
class Note:
    kind: str
    time: int
    detail: str = ""


def task_key(storm_id: str, task_id: int) -> str:
    return f"{storm_id}/{task_id}"


def ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def _datetime(ms_: int) -> datetime:
    return datetime.fromtimestamp(ms_ / 1000, tz=UTC)


# -- the part -------------------------------------------------------------------------------------


@dataclass
class _Task:
    alive: bool
    deadline: float = 0.0  # epoch secs its heartbeat expires, while alive
    uptime: int | None = None
    component_id: str | None = None


@dataclass
class _Storm:
    state: str | None
    tasks: dict = field(default_factory=dict)  # task id -> _Task


class Part(recorder.Part):
    name = "timeline"

    def __init__(self, source):
        super().__init__(source)
        self._inbox: deque = deque()  # (what, key, state, time ms, mirror version)
        self._baselined = False
        self._after = 0  # the previous run's end (ms): what a baseline finds happened since
        self._storms: dict[str, _Storm] = {}
        self._supervisors: dict[str, str] = {}
        self._connected: bool | None = None
        self._submitted: dict[str, int] = {}  # storm -> when it appeared inactive (ms)
        self._deadlines: list = []  # heap of (deadline secs, storm, task)
        self._dirty: set[str] = set()  # storms whose tasks to look at again
        self._not_alive: set[tuple[str, int]] = set()
        self._tasks_at = 0.0
        self._supervisors_at = 0.0
        self._audit_from: int | None = None
        self._audit_seen: dict[int, int] = {}
        self._timeout = self.task_timeout
        self._overflowed = False
        self._ticked = 0  # the last pass (ms)

    @property
    def task_timeout(self) -> float:
        return float(getattr(self.source, "task_timeout", settings.STORMUI_TASK_TIMEOUT_SECS))

    def _beat_lag(self) -> float:
        """How old the mirror's copy of a heartbeat may be (it re-reads them every so often,
        and a poll of a large cluster takes a while): a task is dead only when its heartbeat
        is older than the timeout by more than that, so none dies between two polls."""
        mirror = getattr(self.source, "mirror", None)
        poll = getattr(mirror, "heartbeat_poll_secs", None) or 0.0
        return max(float(settings.STORMUI_HEARTBEAT_SECS), 2 * poll) + poll

    @property
    def supervisor_timeout(self) -> float:
        return float(
            getattr(self.source, "supervisor_timeout", settings.STORMUI_SUPERVISOR_TIMEOUT_SECS)
        )

    # -- the mirror's thread ---------------------------------------------------------------

    def note(self, change, put) -> None:
        if len(self._inbox) >= INBOX_MAX:
            # the recorder's thread is far behind (the database away): forget the details,
            # the next pass compares the whole cluster with what was told
            self._inbox.clear()
            self._overflowed = True
        kind = change.kind
        now = recorder.now_ms()
        if kind in ("storm", "assignment") and change.storm_id is not None:
            state = self._storm_state(change.storm_id)
            self._inbox.append((STORM, change.storm_id, state, now, change.version))
        elif kind in ("tasks", "heartbeats") and change.storm_id is not None:
            self._inbox.append((TASK, change.storm_id, None, now, change.version))
        elif kind == "supervisor" and change.supervisor_id is not None:
            self._inbox.append((SUPERVISOR, change.supervisor_id, None, now, change.version))
        elif kind == "connection":
            mirror = self.source.mirror
            state = CONNECTED if mirror is not None and mirror.connected else DISCONNECTED
            self._inbox.append((ZOOKEEPER, ZOOKEEPER, state, now, change.version))
        elif kind == "resync":
            self._inbox.append(("resync", None, None, now, change.version))

    def _storm_state(self, storm_id: str) -> str | None:
        reader = self.source.reader
        try:
            if reader.storm_base(storm_id) is not None:
                return ACTIVE
        except UnreadableNodeError:
            return ACTIVE  # a /storms node is there, unreadable or not
        try:
            if reader.assignment_info(storm_id) is not None:
                return INACTIVE
        except UnreadableNodeError:
            return INACTIVE
        return None

    # -- the recorder's thread ---------------------------------------------------------------

    def started(self, now: int, previous, put) -> None:
        if previous is not None:
            stopped = previous.stopped_at if previous.stopped_at is not None else previous.alive_at
            self._after = stopped
            self._audit_from = stopped
            put(Note("dashboard-stopped", stopped))
        else:
            self._after = now
            self._audit_from = now
        put(Note("dashboard-started", now))

    def tick(self, now: int, put) -> None:
        self._timeout = self.task_timeout + self._beat_lag()  # once a pass: reads are not free
        try:
            self._read_audit(now, put)
        except Exception as exc:  # the database is away: the entries are read again next pass
            log.info("timeline: reading the audit log failed (%s)", exc)
        mirror = self.source.mirror
        if mirror is None:
            return  # no mirror, no changes to compare (STORMUI_MIRROR=off)
        if self._overflowed:
            self._overflowed = False
            self._baselined = False
            self._after = self._ticked or self._after
        self._ticked = now
        if not self._baselined:
            if not mirror.connected:
                self._inbox.clear()  # the baseline, once synced, holds it all
                return
            version = mirror.version  # read first: the baseline holds every change up to it
            self._take_baseline(now, put)
            while self._inbox and self._inbox[0][4] <= version:
                self._inbox.popleft()
        self._replay(put)
        if not mirror.connected:
            return  # heartbeats are not read while disconnected: no task dies by that
        secs = now / 1000
        if secs - self._supervisors_at >= SUPERVISOR_CHECK_SECS:
            self._supervisors_at = secs
            for sid in list(self._supervisors):
                self._supervisor_changed(sid, now, put)
        self._check_tasks(now, put)

    # the cluster as the mirror holds it

    def _take_baseline(self, now: int, put) -> None:
        reader = self.source.reader
        changes = []
        storms = set(reader.active_storms()) | set(reader.assignments())
        self._storms = {}
        for storm_id in sorted(storms):
            state = self._storm_state(storm_id)
            if state is None:
                continue
            self._storms[storm_id] = _Storm(state)
            changes.append(Change(STORM, storm_id, state, now, self._after, storm_id=storm_id))
        self._supervisors = {}
        for sid in reader.supervisors():
            state = self._supervisor_state(sid, now)
            if state is not None:
                self._supervisors[sid] = state
                changes.append(Change(SUPERVISOR, sid, state, now, self._after, supervisor_id=sid))
        self._connected = True
        changes.append(Change(ZOOKEEPER, ZOOKEEPER, CONNECTED, now, self._after))
        self._deadlines = []
        self._not_alive = set()
        for storm_id in self._storms:
            for change in self._scan_storm(storm_id, now):
                changes.append(change)
        self._dirty = set()
        self._tasks_at = now / 1000
        self._baselined = True
        put(Baseline(changes, now, self._after))

    def _replay(self, put) -> None:
        while self._inbox:
            what, key, state, when, _version = self._inbox.popleft()
            if what == STORM:
                self._storm_changed(key, state, when, put)
            elif what == TASK:
                self._dirty.add(key)
            elif what == SUPERVISOR:
                self._supervisor_changed(key, when, put)
            elif what == ZOOKEEPER:
                connected = state == CONNECTED
                if connected != self._connected:
                    self._connected = connected
                    put(Change(ZOOKEEPER, ZOOKEEPER, state, when, when))
            elif what == "resync":
                # what the watches missed, the resync reported as changes; storms and
                # supervisors are few: look at them all again anyway (tasks are many)
                reader = self.source.reader
                storms = set(reader.active_storms()) | set(reader.assignments())
                for storm_id in storms | set(self._storms):
                    state = self._storm_state(storm_id)
                    self._storm_changed(storm_id, state, when, put, rescan=False)
                for sid in set(reader.supervisors()) | set(self._supervisors):
                    self._supervisor_changed(sid, when, put)

    def _storm_changed(
        self, storm_id: str, state: str | None, when: int, put, *, rescan: bool = True
    ) -> None:
        known = self._storms.get(storm_id)
        old = known.state if known is not None else None
        if state == old:
            if known is not None and rescan:
                self._dirty.add(storm_id)  # its assignment changed: its tasks may have
            return
        quiet = False
        if old is None and state == INACTIVE:
            self._submitted[storm_id] = when
        elif old == INACTIVE and state == ACTIVE:
            # Storm writes a new storm's assignment and its /storms node one after the other
            quiet = when - self._submitted.pop(storm_id, -SUBMIT_MS - 1) <= SUBMIT_MS
        if state is None:
            self._storms.pop(storm_id, None)
            self._submitted.pop(storm_id, None)
            for task_id in known.tasks:
                self._not_alive.discard((storm_id, task_id))
        elif known is None:
            self._storms[storm_id] = _Storm(state)
        else:
            known.state = state
        self._dirty.add(storm_id)
        put(Change(STORM, storm_id, state, when, when, storm_id=storm_id, quiet=quiet))

    def _supervisor_state(self, sid: str, now: int) -> str | None:
        try:
            info = self.source.reader.supervisor_info(sid)
        except UnreadableNodeError:
            return UP  # its node is there
        except ValueError:
            return None
        if info is None:
            return None
        return LOST if now / 1000 - info.time_secs > self.supervisor_timeout else UP

    def _supervisor_changed(self, sid: str, when: int, put) -> None:
        state = self._supervisor_state(sid, when)
        if state == self._supervisors.get(sid):
            return
        if state is None:
            self._supervisors.pop(sid, None)
        else:
            self._supervisors[sid] = state
        put(Change(SUPERVISOR, sid, state, when, when, supervisor_id=sid))

    # tasks, by the clock

    def _beat(self, storm_id: str, task_id: int):
        try:
            return self.source.reader.task_heartbeat(storm_id, task_id)
        except (UnreadableNodeError, ValueError):
            return None

    def _component(self, storm_id: str, task_id: int) -> str | None:
        try:
            info = self.source.reader.task_info(storm_id, task_id)
        except (UnreadableNodeError, ValueError):
            return None
        return info.component_id if info is not None else None

    def _task_ids(self, storm_id: str) -> set[int]:
        reader = self.source.reader
        ids: set[int] = set()
        try:
            ids.update(reader.task_ids(storm_id))
        except (UnreadableNodeError, ValueError):
            pass
        try:
            assignment = reader.assignment_info(storm_id)
        except (UnreadableNodeError, ValueError):
            assignment = None
        if assignment is not None:
            ids.update(t for t in assignment.task_node_port if isinstance(t, int))
        return ids

    def _look(self, storm_id: str, task_id: int, task: _Task | None, now: int):
        """Look at a task's heartbeat: the :class:`Change` it makes, or None."""
        secs = now / 1000
        beat = self._beat(storm_id, task_id)
        timeout = self._timeout
        alive = beat is not None and secs - beat.time_secs <= timeout
        storm = self._storms[storm_id]
        if task is None:
            task = storm.tasks[task_id] = _Task(
                False, component_id=self._component(storm_id, task_id)
            )
            was = None
        else:
            was = task.alive
        key = (storm_id, task_id)
        # its uptime before: what tells a restart from heartbeats that came late
        uptime = task.uptime
        restarted = alive and was and uptime is not None and beat.uptime_secs < uptime
        task.alive = alive
        if alive:
            task.deadline = beat.time_secs + timeout
            task.uptime = beat.uptime_secs
            heapq.heappush(self._deadlines, (task.deadline, storm_id, task_id))
            self._not_alive.discard(key)
        else:
            self._not_alive.add(key)  # its last uptime is kept, for when it revives
        if was == alive and not restarted:
            return None
        change = Change(
            TASK,
            task_key(storm_id, task_id),
            ALIVE if alive else DEAD,
            now,
            now,
            storm_id=storm_id,
            task_id=task_id,
            component_id=task.component_id,
        )
        if restarted:
            change.kind = "task-revived"
            change.detail = "restarted within the timeout: its uptime started again"
        elif not alive:
            change.detail = "no heartbeat" if beat is None else "heartbeat too old"
        elif was is False and uptime is not None:
            late = beat.uptime_secs >= uptime
            change.detail = "its heartbeats came late" if late else "restarted"
        return change

    def _scan_storm(self, storm_id: str, now: int):
        storm = self._storms.get(storm_id)
        if storm is None:
            return
        ids = self._task_ids(storm_id)
        for task_id in list(storm.tasks):
            if task_id not in ids:  # gone from the storm: no death, just gone
                del storm.tasks[task_id]
                self._not_alive.discard((storm_id, task_id))
                yield Change(TASK, task_key(storm_id, task_id), None, now, now, quiet=True)
        for task_id in sorted(ids):
            change = self._look(storm_id, task_id, storm.tasks.get(task_id), now)
            if change is not None:
                yield change

    def _check_tasks(self, now: int, put) -> None:
        secs = now / 1000
        for storm_id in sorted(self._dirty):
            for change in self._scan_storm(storm_id, now):
                put(change)
        self._dirty.clear()
        # alive tasks whose heartbeat has expired (or was renewed: they go back on the heap)
        heap = self._deadlines
        while heap and heap[0][0] < secs:
            deadline, storm_id, task_id = heapq.heappop(heap)
            storm = self._storms.get(storm_id)
            task = storm.tasks.get(task_id) if storm is not None else None
            if task is None or not task.alive or task.deadline != deadline:
                continue  # a stale entry
            change = self._look(storm_id, task_id, task, now)
            if change is not None:
                put(change)
        if secs - self._tasks_at >= TASK_CHECK_SECS:
            self._tasks_at = secs
            for storm_id, task_id in sorted(self._not_alive):
                storm = self._storms.get(storm_id)
                task = storm.tasks.get(task_id) if storm is not None else None
                if task is None:
                    self._not_alive.discard((storm_id, task_id))
                    continue
                change = self._look(storm_id, task_id, task, now)
                if change is not None:
                    put(change)

    # the audit log

    def _read_audit(self, now: int, put) -> None:
        from ..models import AuditEntry

        if self._audit_from is None:
            return
        since = self._audit_from - AUDIT_LATE_MS
        rows = list(
            AuditEntry.objects.filter(when__gte=_datetime(since))
            .order_by("when", "id")
            .values("id", "when", "username", "action", "storm_id", "outcome", "detail", "via")[
                :AUDIT_BATCH
            ]
        )
        for row in rows:
            if row["id"] in self._audit_seen:
                continue
            when = ms(row["when"])
            self._audit_seen[row["id"]] = when
            put(
                Audit(
                    row["id"],
                    when,
                    row["username"] or None,
                    row["action"],
                    row["storm_id"],
                    row["outcome"],
                    row["detail"],
                    row["via"],
                )
            )
        self._audit_from = ms(rows[-1]["when"]) if len(rows) >= AUDIT_BATCH else now
        horizon = self._audit_from - 2 * AUDIT_LATE_MS
        for key in [k for k, when in self._audit_seen.items() if when < horizon]:
            del self._audit_seen[key]

    # -- the write --------------------------------------------------------------------------

    def write(self, items: list, now: int) -> None:
        writer = _Writer()
        writer._load([(c.subject, c.key) for c in items if isinstance(c, Change)])
        for item in items:
            if isinstance(item, Baseline):
                writer.baseline(item)
            elif isinstance(item, Change):
                writer.change(item)
            elif isinstance(item, Audit):
                writer.audit(item)
            elif isinstance(item, Note):
                writer.add(item.kind, item.time, item.time, detail=item.detail)
        writer.flush()
        writer.insert_later()
        told = writer.told
        if told:
            transaction.on_commit(lambda: publish(told))

    def expire(self, cutoff: int) -> int:
        from ..models import TimelineEvent

        return recorder.delete_before(TimelineEvent.objects.all(), "time", cutoff)


def publish(ids) -> None:
    """Hand the events just written to the live pages (after the commit)."""
    from .. import live
    from ..models import TimelineEvent

    try:
        if len(ids) > live.TIMELINE_BATCH:
            live.resync_timeline()
        else:
            events = TimelineEvent.objects.filter(id__in=list(ids)).order_by("time", "id")
            live.publish_timeline(list(events))
    except Exception:  # the pages miss a live event; the history has it
        log.exception("timeline: telling the live pages failed")


# -- the writer's side: marks and events, in the pass's transaction -------------------------------


def _storm_kind(old: str | None, new: str | None) -> str | None:
    if old == new:
        return None
    if new is None:
        return "storm-removed"
    if old is None:
        return "storm-submitted"
    return "storm-activated" if new == ACTIVE else "storm-deactivated"


def _supervisor_kind(old, new) -> str | None:
    if (old == UP) == (new == UP):
        return None
    return "supervisor-joined" if new == UP else "supervisor-lost"


def _task_kind(old, new) -> str | None:
    if old == ALIVE and new == DEAD:
        return "task-died"
    if old == DEAD and new == ALIVE:
        return "task-revived"
    return None


def _zookeeper_kind(old, new) -> str | None:
    if old is None or old == new or new is None:
        return None
    return "zookeeper-reconnected" if new == CONNECTED else "zookeeper-disconnected"


_KIND_OF = {
    STORM: _storm_kind,
    SUPERVISOR: _supervisor_kind,
    TASK: _task_kind,
    ZOOKEEPER: _zookeeper_kind,
}


class _Writer:
    """One pass's writes: marks read once for the pass's subjects, events told in order."""

    def __init__(self):
        from ..models import TimelineEvent, TimelineMark

        self.Event, self.Mark = TimelineEvent, TimelineMark
        self.marks: dict[tuple[str, str], str | None] = {}
        self.dirty: set[tuple[str, str]] = set()
        self.told: set[int] = set()
        self.later: list = []

    # marks

    def _load(self, keys) -> None:
        wanted = [k for k in keys if k not in self.marks]
        by_subject: dict[str, list[str]] = {}
        for subject, key in wanted:
            by_subject.setdefault(subject, []).append(key)
            self.marks[(subject, key)] = None
        for subject, names in by_subject.items():
            for i in range(0, len(names), MARK_CHUNK):
                rows = self.Mark.objects.filter(subject=subject, key__in=names[i : i + MARK_CHUNK])
                for key, state in rows.values_list("key", "state"):
                    self.marks[(subject, key)] = state

    def _set(self, subject: str, key: str, state: str | None) -> None:
        self.marks[(subject, key)] = state
        self.dirty.add((subject, key))

    def flush(self) -> None:
        gone = [k for k in self.dirty if self.marks[k] is None]
        kept = [k for k in self.dirty if self.marks[k] is not None]
        by_subject: dict[str, list[str]] = {}
        for subject, key in gone + kept:
            by_subject.setdefault(subject, []).append(key)
        for subject, names in by_subject.items():
            for i in range(0, len(names), MARK_CHUNK):
                self.Mark.objects.filter(
                    subject=subject, key__in=names[i : i + MARK_CHUNK]
                ).delete()
        self.Mark.objects.bulk_create(
            [self.Mark(subject=s, key=k, state=self.marks[(s, k)]) for s, k in kept],
            batch_size=MARK_CHUNK,
        )
        self.dirty.clear()

    # events

    def add(self, kind: str, time: int, after: int, **fields):
        event = self.Event.objects.create(kind=kind, time=time, after=after, **fields)
        self.told.add(event.id)
        return event

    def add_later(self, kind: str, time: int, after: int, **fields) -> None:
        """An event nothing in this pass looks for (a task's, a supervisor's): inserted with
        the others at the end of the pass, in one statement (a storm's tasks die together)."""
        self.later.append(self.Event(kind=kind, time=time, after=after, **fields))

    def insert_later(self) -> None:
        events = self.Event.objects.bulk_create(self.later, batch_size=MARK_CHUNK)
        self.told.update(e.id for e in events)
        self.later = []

    def _tell(self, change: Change, kind: str) -> None:
        fields = {
            "storm_id": change.storm_id,
            "task_id": change.task_id,
            "supervisor_id": change.supervisor_id,
            "component_id": change.component_id,
            "detail": change.detail,
        }
        if change.subject != STORM:
            self.add_later(kind, change.time, change.after, **fields)
        elif not self._met_action(kind, change):
            self.add(kind, change.time, change.after, **fields)

    def change(self, change: Change, *, tell: bool = True) -> None:
        subject, key = change.subject, change.key
        mark_key = (subject, key)
        self._load([mark_key])
        old = self.marks[mark_key]
        new = change.state
        if subject == TASK and old is None and new == DEAD:
            new = None  # never seen alive: nothing to tell, nothing to keep
        kind = change.kind or _KIND_OF[subject](old, new)
        if old != new:
            self._set(subject, key, new)
        if subject == STORM and new is None and old is not None:
            # its tasks went with it
            self.flush()
            self.Mark.objects.filter(subject=TASK, key__startswith=f"{key}/").delete()
            self.marks = {k: v for k, v in self.marks.items() if not k[1].startswith(f"{key}/")}
        if kind is not None and tell and not change.quiet:
            self._tell(change, kind)

    def baseline(self, baseline: Baseline) -> None:
        subjects = (STORM, SUPERVISOR, TASK, ZOOKEEPER)
        tell = self.Mark.objects.filter(subject=BASELINE_MARK[0], key=BASELINE_MARK[1]).exists()
        self.flush()
        for subject, key, state in self.Mark.objects.filter(subject__in=subjects).values_list(
            "subject", "key", "state"
        ):
            self.marks[(subject, key)] = state
        seen = {(c.subject, c.key) for c in baseline.changes}
        # what was marked and is gone now: storms first (their tasks go with them)
        gone = sorted(
            (k for k, v in self.marks.items() if v is not None and k not in seen),
            key=lambda k: (k[0] != STORM, k),
        )
        for subject, key in gone:
            if self.marks.get((subject, key)) is None:
                continue  # went with its storm
            storm_id = key if subject == STORM else None
            supervisor_id = key if subject == SUPERVISOR else None
            if subject == TASK:
                self._set(subject, key, None)  # its storm is there still, without it: no death
                continue
            self.change(
                Change(
                    subject,
                    key,
                    None,
                    baseline.time,
                    baseline.after,
                    storm_id=storm_id,
                    supervisor_id=supervisor_id,
                ),
                tell=tell,
            )
        for change in baseline.changes:
            self.change(change, tell=tell)
        if not tell:
            self._set(*BASELINE_MARK, "set")
        self.flush()

    # the audit log, and the changes admin actions made

    def _action_detail(self, audit: Audit) -> str:
        text = f"{audit.action} ({audit.via}): {audit.outcome}"
        return f"{text}: {audit.detail}" if audit.detail else text

    def _met_action(self, kind: str, change: Change) -> bool:
        """A storm change seen after its action was told: the action's event becomes the
        change's (or, for a removal's deactivation, the change is the removal's part)."""
        actions = [a for a, made in MAKES.items() if made == kind]
        near = self.Event.objects.filter(
            storm_id=change.storm_id,
            audit_id__isnull=False,
            outcome="success",
            time__gte=change.after - MATCH_MS,
            time__lte=change.time + MATCH_MS,
        )
        told = near.filter(seen=False, kind__in=[ACTION_KINDS[a] for a in actions]).first()
        if told is not None:
            told.kind = kind
            told.seen = True
            told.save(update_fields=["kind", "seen"])
            self.told.add(told.id)
            if kind == "storm-removed":
                self._drop_removal_steps(change.storm_id, told.time)
            return True
        if kind == "storm-deactivated":
            # a removal deactivates first: that is part of the removal, not an event of its own
            return near.filter(kind__in=["storm-removed", ACTION_KINDS["remove"]]).exists()
        return False

    def _drop_removal_steps(self, storm_id: str, when: int) -> None:
        self.Event.objects.filter(
            storm_id=storm_id,
            kind="storm-deactivated",
            audit_id__isnull=True,
            time__gte=when - MATCH_MS,
            time__lte=when + MATCH_MS,
        ).delete()

    def audit(self, audit: Audit) -> None:
        if self.Event.objects.filter(audit_id=audit.id).exists():
            return  # told by a pass before this one
        fields = {
            "user": audit.user,
            "audit_id": audit.id,
            "outcome": audit.outcome,
            "detail": self._action_detail(audit),
        }
        made = MAKES.get(audit.action) if audit.outcome == "success" else None
        if made is not None:
            change = (
                self.Event.objects.filter(
                    storm_id=audit.storm_id,
                    kind=made,
                    audit_id__isnull=True,
                    seen=True,
                    after__lte=audit.when + MATCH_MS,
                    time__gte=audit.when - MATCH_MS,
                )
                .order_by("time", "id")
                .first()
            )
            if audit.action == "remove":
                self._drop_removal_steps(audit.storm_id, audit.when)
            if change is not None:
                for name, value in fields.items():
                    setattr(change, name, value)
                change.time = audit.when
                change.save()
                self.told.add(change.id)
                return
        self.add(
            ACTION_KINDS.get(audit.action, f"action-{audit.action}"),
            audit.when,
            audit.when,
            storm_id=audit.storm_id,
            seen=False,
            **fields,
        )


# -- reads: the API, the pages -------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    storm: str | None = None
    kind: str | None = None
    since: int | None = None
    until: int | None = None
    limit: int = DEFAULT_LIMIT
    cursor: tuple[int, int] | None = None


def parse_query(params, *, cursor_name: str = "cursor", limit: int = DEFAULT_LIMIT) -> Query:
    """A timeline query from a request's ``GET``; raises :class:`BadQuery`."""
    from clusterstate.paths import check_id

    storm, kind = (params.get(name, "").strip() or None for name in ("storm", "kind"))
    if storm is not None:
        try:
            check_id(storm, "storm")
        except ValueError as exc:
            raise BadQuery(str(exc)) from None
    if kind is not None and kind not in KINDS:
        raise BadQuery(f"kind: one of {', '.join(KINDS)}")
    page = paging(params, cursor_name=cursor_name, limit=limit)
    return Query(storm, kind, page.since, page.until, page.limit, page.cursor)


def select(query: Query):
    """The events ``query`` asks for, newest first, and the cursor of the next page (None at
    the end)."""
    from ..models import TimelineEvent

    rows = where(
        TimelineEvent.objects.all(),
        storm_id=query.storm,
        kind=query.kind,
        time__gte=query.since,
        time__lte=query.until,
    )
    rows = after(rows, "time", query.cursor)
    events = list(rows.order_by("-time", "-id")[: query.limit + 1])
    more = len(events) > query.limit
    events = events[: query.limit]
    return events, (encode_cursor(events[-1].time, events[-1].id) if more else None)


HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS


def restart_counts(storm_id: str, now: int) -> dict:
    """A storm's task restarts (``task-revived``) in the last hour and day: ``{"hour",
    "day", "components": {component: {"hour", "day"}}}``."""
    from ..models import TimelineEvent

    times = TimelineEvent.objects.filter(
        storm_id=storm_id, kind="task-revived", time__gte=now - DAY_MS
    ).values_list("component_id", "time")
    return count_restarts(times, now)


def count_restarts(times, now: int) -> dict:
    """``(component, time)`` pairs of revivals, counted per hour and day."""
    out = {"hour": 0, "day": 0, "components": {}}
    for component_id, time in times:
        if time < now - DAY_MS:
            continue
        per = out["components"].setdefault(component_id or "", {"hour": 0, "day": 0})
        for counts in (out, per):
            counts["day"] += 1
            if time >= now - HOUR_MS:
                counts["hour"] += 1
    return out


def recent(storm_id: str, limit: int = 10) -> list:
    events, _next = select(Query(storm=storm_id, limit=limit))
    return events


# -- the pages' contexts -------------------------------------------------------------------------

#: a storm page lists this many of its newest events
RECENT_EVENTS = 10


def storm_history_context(storm) -> dict:
    """A storm page's recent events and task restarts (none when the database is away: the
    page's figures come from ZooKeeper and are worth showing without them)."""
    try:
        return {
            "recent_events": recent(storm.id, RECENT_EVENTS),
            "restarts": restart_counts(storm.id, int(storm.as_of * 1000)),
        }
    except DatabaseError:
        log.warning("timeline: the history of %s could not be read", storm.id, exc_info=True)
        return {"recent_events": [], "restarts": None}


def component_history_context(storm, component_id: str) -> dict:
    try:
        counts = restart_counts(storm.id, int(storm.as_of * 1000))
    except DatabaseError:
        log.warning("timeline: the restarts of %s could not be read", storm.id, exc_info=True)
        return {"restarts": None}
    return {"restarts": counts["components"].get(component_id, {"hour": 0, "day": 0})}


def timeline_context(query, st: dict) -> dict:
    """The timeline page: one page of the events ``query`` asks for, newest first."""
    events, next_cursor = select(query)
    filters = {"storm": query.storm or "", "kind": query.kind or ""}
    kept = [(name, value) for name, value in filters.items() if value]
    return {
        "status": st,
        "now": st["as_of"],
        "events": events,
        "filters": filters,
        "kinds": KINDS,
        "cursor": query.cursor,
        "newest_query": urlencode(kept),
        "next_query": urlencode([*kept, ("before", next_cursor)]) if next_cursor else "",
        # what the page's socket asks for: the same filters (a later page is not live)
        "live_query": urlencode(kept),
    }
