"""Keeps each active storm's base in the database, for activate to write back.

Deactivate deletes a storm's ``/storms`` node, and its ``StormBase`` (name and
launch time) with it: Storm's Nimbus keeps it, this dashboard must keep its
own. The :class:`BaseRecorder` stores the base of every active storm whenever
it differs from what is stored (:class:`~stormui.models.SeenStormBase`).

One process records: the relaying process (:func:`stormui.live.ensure_relay`
starts it beside the relay, on the process's first connection), so that
several dashboards on one database do not each write every base.

The writes are a database's, which may wait: SQLite's write lock is held for
the length of any admin action (``StormLock``), and PostgreSQL may be far
away. So nothing here runs on the event loop or on the mirror's thread: the
mirror's listener only notes which storms changed and wakes the recorder's
own thread, which lets a burst settle for :data:`BATCH_SECS`, then reads the
bases (dict lookups in the mirror) and writes every one that differs in one
transaction. A resync (or, without the mirror, every :data:`POLL_SECS`) looks
at every active storm, and forgets the storms that have no assignment left.
"""

from __future__ import annotations

import json
import logging
import threading

from django.db import close_old_connections, connection, transaction
from django.utils import timezone

from clusterstate import NotConnectedError, UnreadableNodeError

from .models import SeenStormBase
from .workers import ListeningThread, OnePerProcess

log = logging.getLogger(__name__)

#: a burst of changes is written once, this long after its first
BATCH_SECS = 0.25
#: without the mirror nothing tells of changes: every active storm is read this often
POLL_SECS = 5.0
#: after a failed pass (the database or ZooKeeper unreachable), the next one waits this long
RETRY_SECS = 2.0


def _encode(base) -> str:
    # sorted keys: one base is always one text, so what is stored compares as text
    return json.dumps(base.to_json(), sort_keys=True)


class BaseRecorder(ListeningThread):
    """Stores the active storms' bases from ``source`` as they change, on a thread of its own.

    :param source: a :class:`stormui.source.Source`.
    """

    thread_name = "stormui-bases"

    def __init__(self, source, *, batch_secs: float = BATCH_SECS, poll_secs: float = POLL_SECS):
        super().__init__(source)
        self.batch_secs = batch_secs
        self.poll_secs = poll_secs
        self._lock = threading.Lock()
        self._dirty: set[str] = set()
        self._everything = True  # the first pass looks at every storm
        self._wake.set()  # the first pass comes at once
        #: storm id -> its base as stored (``_encode``d); read from the database on the first pass
        self._stored: dict[str, str] | None = None
        #: passes completed, and bases written (for tests and logs)
        self.passes = 0
        self.written = 0

    # -- the mirror's thread: note and return ---------------------------------------------------

    def _on_change(self, change) -> None:
        kind = change.kind
        if kind == "storm" and change.storm_id is not None:
            with self._lock:
                self._dirty.add(change.storm_id)
        elif kind in ("resync", "connection"):
            with self._lock:
                self._everything = True
        else:
            return
        self._wake.set()

    # -- the recorder's thread -----------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                # without the mirror, nothing wakes us: look again every poll
                polling = self.source.mirror is None
                woken = self._wake.wait(self.poll_secs if polling else None)
                if self._stop.is_set():
                    return
                if woken:
                    self._stop.wait(self.batch_secs)  # let the burst settle
                if polling:
                    with self._lock:
                        self._everything = True
                self._wake.clear()
                close_old_connections()
                try:
                    recorded = self.record()
                finally:
                    close_old_connections()
                if not recorded:
                    self._stop.wait(RETRY_SECS)
        finally:
            connection.close()

    def record(self, *, everything: bool = False) -> bool:
        """One pass: store the bases of the storms noted since the last one (``everything``:
        of every active storm) that differ from what is stored. ``False`` if it could not
        (tried again on the next pass)."""
        with self._lock:
            everything, dirty = self._everything or everything, self._dirty
            self._everything, self._dirty = False, set()
        try:
            if self._stored is None:
                self._stored = dict(SeenStormBase.objects.values_list("storm_id", "base"))
            seen, present = self._read(everything, dirty)
            self._write(seen, present)
        except Exception as exc:
            if isinstance(exc, NotConnectedError):
                log.debug("storm bases: ZooKeeper unreachable; trying again")
            else:
                log.exception("storm bases: recording failed; trying again")
            with self._lock:  # nothing is lost: the next pass looks again
                self._everything |= everything
                self._dirty |= dirty
            self._wake.set()
            return False
        self.passes += 1
        return True

    def _read(self, everything: bool, dirty: set[str]) -> tuple[dict[str, str], set | None]:
        """The bases to store, by storm; and, for a pass over everything, the storms that still
        have an assignment or a base (the others are forgotten), else ``None``."""
        source = self.source
        if source.storm_state is None or not source.zk_connected:
            raise NotConnectedError("not connected")
        reader = source.reader
        present = None
        # forget storms only from a whole picture: not from a mirror still loading
        if everything and source.synced_at is not None:
            active = reader.active_storms()
            present = set(active) | set(reader.assignments())
            dirty = dirty | set(active)
        elif everything:
            dirty = dirty | set(reader.active_storms())
        seen = {}
        for storm_id in sorted(dirty):
            if "\x00" in storm_id:
                continue  # no database column holds it; nor could activate be asked for it
            try:
                base = reader.storm_base(storm_id)
            except (UnreadableNodeError, ValueError):
                continue  # garbage: what was stored before stays
            if base is None:
                continue  # inactive: what was seen while it was active stays
            text = _encode(base)
            if self._stored.get(storm_id) != text:
                seen[storm_id] = text
        return seen, present

    def _write(self, seen: dict[str, str], present: set | None) -> None:
        gone = [] if present is None else [s for s in self._stored if s not in present]
        if not seen and not gone:
            return
        now = timezone.now()
        with transaction.atomic():
            if seen:
                SeenStormBase.objects.bulk_create(
                    [SeenStormBase(storm_id=s, base=b, seen_at=now) for s, b in seen.items()],
                    update_conflicts=True,
                    unique_fields=["storm_id"],
                    update_fields=["base", "seen_at"],
                )
            if gone:
                SeenStormBase.objects.filter(storm_id__in=gone).delete()
        self._stored.update(seen)
        for storm_id in gone:
            del self._stored[storm_id]
        self.written += len(seen)
        log.debug("storm bases: stored %d, forgot %d", len(seen), len(gone))


#: ``STORMUI_BASE_RECORDER = False`` (tests that do not ask for it) records nothing
_one = OnePerProcess("STORMUI_BASE_RECORDER", lambda source: BaseRecorder(source).start())
#: start recording ``source``'s bases in this process, unless it does already
ensure_recorder = _one.ensure
stop_recorder = _one.stop


def current_recorder() -> BaseRecorder | None:
    return _one.current
