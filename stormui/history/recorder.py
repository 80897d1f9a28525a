"""The one writer of the history: a thread that batches what the parts note.

Each kind of history is a :class:`Part`. On the mirror's thread a part only looks at
a change and :meth:`HistoryRecorder.put`\\s what it wants written (a dict lookup and
a deque append: the mirror never waits on the database). The recorder's own thread
wakes every :data:`TICK_SECS` (sooner when :data:`FLUSH_AT` items wait), lets each
part add what the clock brings (:meth:`Part.tick`: a task that died by timeout, a
time-series point), then writes everything waiting in one transaction, each part
its own items (:meth:`Part.write`).

The database may be down, locked (SQLite's write lock is held for the length of an
admin action) or far away. A pass that fails keeps its items, at the front, and the
next pass tries again after :data:`RETRY_SECS`; what waits is bounded
(:data:`MAX_BUFFERED`): past it, new items are dropped and counted per part. The
counts are kept in the run's row (:class:`~stormui.models.RecorderRun`) once the
database answers again, so every process's pages can say what was lost.

Each run of a recorder has its row: started, last alive, stopped. A run that ended
without saying so (killed) is closed by the next at its last alive time, so a time
when no dashboard recorded is a gap the parts can name, never invented points.

Old rows are deleted in batches of :data:`EXPIRE_BATCH`, each its own short
transaction (:func:`delete_before`), every :data:`EXPIRE_SECS`, after
``STORMUI_HISTORY_DAYS``.
"""

from __future__ import annotations

import importlib
import logging
import os
import socket
import threading
import time
from collections import Counter, deque

from django.conf import settings
from django.db import close_old_connections, connection, transaction

from clusterstate import precedence

from ..workers import ListeningThread, OnePerProcess

log = logging.getLogger(__name__)

#: the recorder's thread wakes this often
TICK_SECS = 1.0
#: so many items waiting wake it at once
FLUSH_AT = 5000
#: at most this many items wait for the database; past it, new ones are dropped and counted
#: (``STORMUI_HISTORY_BUFFER`` for the process's writer)
MAX_BUFFERED = 200_000
#: at most this many items are written in one transaction
MAX_BATCH = 20_000
#: after a failed write the next try waits this long
RETRY_SECS = 2.0
#: the run's row says it is alive this often
ALIVE_SECS = 10.0
#: old rows are looked for this often
EXPIRE_SECS = 600.0
#: and deleted this many per transaction
EXPIRE_BATCH = 1000

#: the parts a recorder writes by default, by module (each has a ``Part`` class)
PART_MODULES: tuple[str, ...] = (
    "stormui.history.errors",
    "stormui.history.timeline",
    "stormui.history.series",
)


def now_ms() -> int:
    return int(time.time() * 1000)


def retention_ms() -> int:
    """How long the history keeps a row, in milliseconds (``STORMUI_HISTORY_DAYS``)."""
    return int(settings.STORMUI_HISTORY_DAYS * 86_400_000)


def delete_before(queryset, field: str, cutoff, *, batch: int = EXPIRE_BATCH) -> int:
    """Delete the rows of ``queryset`` whose ``field`` is before ``cutoff``, ``batch`` at a time.

    Each batch is its own transaction (one ``DELETE ... WHERE pk IN (...)`` of at most
    ``batch`` keys found by the index on ``field``), so no lock is held for long and the
    writer's own passes interleave. Returns how many rows went.
    """
    total = 0
    old = queryset.filter(**{f"{field}__lt": cutoff})
    while True:
        keys = list(old.order_by(field).values_list("pk", flat=True)[:batch])
        if not keys:
            return total
        with transaction.atomic():
            deleted, _ = queryset.model.objects.filter(pk__in=keys).delete()
        total += deleted
        if len(keys) < batch:
            return total


class Part:
    """One kind of history. A part overrides what it needs; every method but :meth:`note`
    runs on the recorder's thread."""

    #: names the part in the drop counts
    name = "part"

    def __init__(self, source):
        self.source = source

    def note(self, change, put) -> None:
        """The mirror's thread: ``put(item)`` what ``change`` means to this part. Look at the
        change and the mirror's dicts only; never the database, never block."""

    def started(self, now: int, previous, put) -> None:
        """The recorder starts (``now`` in epoch ms); ``previous`` is the run before it (a
        :class:`~stormui.models.RecorderRun` with ``alive_at`` and ``stopped_at``), or
        ``None`` if none ran before."""

    def stopping(self, now: int, put) -> None:
        """The recorder stops: put what a clean stop should leave."""

    def tick(self, now: int, put) -> None:
        """Every pass, before the write: put what the clock brings."""

    def write(self, items: list, now: int) -> None:
        """Write ``items`` (as ``put``, oldest first) inside the pass's transaction. Raise to
        have the whole pass tried again: write idempotently."""

    def expire(self, cutoff: int) -> int:
        """Delete what is older than ``cutoff`` (epoch ms) with :func:`delete_before`;
        return how many rows went."""
        return 0


class HistoryRecorder(ListeningThread):
    """Writes the ``parts``' history of ``source`` on a thread of its own.

    :param source: a :class:`stormui.source.Source`.
    :param parts: the :class:`Part` instances, in the order they write.
    """

    thread_name = "stormui-history"

    def __init__(
        self,
        source,
        parts,
        *,
        tick_secs: float = TICK_SECS,
        max_buffered: int = MAX_BUFFERED,
        retry_secs: float = RETRY_SECS,
    ):
        super().__init__(source)
        self.parts = list(parts)
        self.tick_secs = tick_secs
        self.max_buffered = max_buffered
        self.retry_secs = retry_secs
        self._lock = threading.Lock()
        self._buffer: deque = deque()
        self.run = None  # this run's RecorderRun row, once the database answered
        self._alive_written = 0.0
        self._expired_at = 0.0
        #: items dropped because too many waited, by part name; not yet in the run's row
        self.dropped: Counter = Counter()
        self._dropped_saved: Counter = Counter()
        #: passes written, items written, failed passes, the last failure
        self.passes = 0
        self.written = 0
        self.faults = 0
        self.last_error: str | None = None
        #: set after each pass that wrote (tests wait on it)
        self.wrote = threading.Event()
        self._putters = {part: self._putter(part) for part in self.parts}

    # -- either thread ---------------------------------------------------------------------

    def _putter(self, part):
        buffer, lock, bound, dropped = self._buffer, self._lock, self.max_buffered, self.dropped
        wake = self._wake

        def put(item) -> bool:
            with lock:
                if len(buffer) >= bound:
                    dropped[part.name] += 1
                    return False
                buffer.append((part, item))
                if len(buffer) >= FLUSH_AT:
                    wake.set()
            return True

        return put

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def status(self) -> dict:
        """What the pages say about the writer of this process."""
        with self._lock:
            dropped = dict(self.dropped)
        return {
            "buffered": len(self._buffer),
            "dropped": dropped,
            "faults": self.faults,
            "lastError": self.last_error,
            "written": self.written,
        }

    # -- the mirror's thread -----------------------------------------------------------------

    def _on_change(self, change) -> None:
        for part in self.parts:
            try:
                part.note(change, self._putters[part])
            except Exception:  # one part's bug must not stop the mirror or the others
                self.faults += 1
                log.exception("history: %s could not note a change", part.name)

    # -- the recorder's thread ---------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._wake.wait(self.tick_secs)
                self._wake.clear()
                if self._stop.is_set():
                    break
                close_old_connections()
                if not self.record():
                    self._stop.wait(self.retry_secs)
                else:
                    self._expire()
            self._finish()
        finally:
            connection.close()

    def _finish(self) -> None:
        if self.run is None:
            return
        now = now_ms()
        for part in self.parts:
            self._call(part, "stopping", now, self._putters[part])
        self.record(stopped=now)

    def _call(self, part, method: str, *args) -> None:
        try:
            getattr(part, method)(*args)
        except Exception:
            self.faults += 1
            log.exception("history: %s.%s failed", part.name, method)

    def _open_run(self, now: int, first: list):
        from ..models import RecorderRun

        previous = RecorderRun.objects.order_by("-started_at", "-id").first()
        if previous is not None and previous.stopped_at is None:
            # it ended without saying so: it stopped when it was last alive
            previous.stopped_at = previous.alive_at
            previous.save(update_fields=["stopped_at"])
        run = RecorderRun.objects.create(
            started_at=now, alive_at=now, host=socket.gethostname()[:255], pid=os.getpid()
        )
        for part in self.parts:
            self._call(part, "started", now, previous, lambda item, p=part: first.append((p, item)))
        return run

    def record(self, *, stopped: int | None = None) -> bool:
        """One pass: the parts' ticks, then everything waiting (up to :data:`MAX_BATCH`)
        written in one transaction. ``False`` if the database refused (the items wait)."""
        now = now_ms()
        if self.run is not None and stopped is None:
            for part in self.parts:
                precedence.NEWS.step_aside()  # news first: the history is nobody's wait
                self._call(part, "tick", now, self._putters[part])
        precedence.NEWS.step_aside()
        with self._lock:
            n = min(len(self._buffer), MAX_BATCH)
            batch = [self._buffer.popleft() for _ in range(n)]
            dropped = self.dropped.copy()
        first: list = []
        try:
            with transaction.atomic():
                run = self.run
                if run is None:
                    # what the parts say as the run starts comes first, in this pass
                    run = self._open_run(now, first)
                by_part: dict = {}
                for part, item in first + batch:
                    by_part.setdefault(part, []).append(item)
                for part in self.parts:
                    items = by_part.get(part)
                    if items:
                        part.write(items, now)
                self._save_run(run, now, dropped, stopped)
            self.run = run
        except Exception as exc:
            self.faults += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.warning("history: writing %d items failed (%s); trying again", len(batch), exc)
            # the run's start is said again by the next try; the rest waits
            self._put_back(batch)
            return False
        self.passes += 1
        self.written += len(first) + len(batch)
        self._dropped_saved = dropped
        if first or batch:
            self.wrote.set()
        with self._lock:
            more = bool(self._buffer)
        if more:
            self._wake.set()
        return True

    def _save_run(self, run, now: int, dropped: Counter, stopped: int | None) -> None:
        from ..models import RecorderRun

        fields = {}
        if stopped is not None:
            fields["stopped_at"] = stopped
            fields["alive_at"] = stopped
        elif now - self._alive_written >= ALIVE_SECS * 1000:
            fields["alive_at"] = now
        if dropped != self._dropped_saved:
            fields["dropped"] = dict(dropped)
        if fields:
            RecorderRun.objects.filter(pk=run.pk).update(**fields)
            if "alive_at" in fields:
                self._alive_written = now

    def _put_back(self, batch: list) -> None:
        """Put a failed pass's items back in front, keeping the bound: the newest that do not
        fit are dropped and counted."""
        with self._lock:
            room = self.max_buffered - len(self._buffer)
            keep, lost = (batch, []) if room >= len(batch) else (batch[:room], batch[room:])
            for part, _item in lost:
                self.dropped[part.name] += 1
            self._buffer.extendleft(reversed(keep))

    def _expire(self) -> None:
        mono = time.monotonic()
        if mono - self._expired_at < EXPIRE_SECS:
            return
        self._expired_at = mono
        cutoff = now_ms() - retention_ms()
        for part in self.parts:
            try:
                gone = part.expire(cutoff)
            except Exception as exc:
                self.faults += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("history: expiring %s failed (%s)", part.name, exc)
                self._expired_at = mono - EXPIRE_SECS + self.retry_secs * 10
                continue
            if gone:
                log.info(
                    "history: %s: %d rows past %s days deleted",
                    part.name,
                    gone,
                    settings.STORMUI_HISTORY_DAYS,
                )


def default_parts(source) -> list[Part]:
    return [importlib.import_module(name).Part(source) for name in PART_MODULES]


#: ``STORMUI_HISTORY = False`` (tests that do not ask for it) records nothing
_one = OnePerProcess(
    "STORMUI_HISTORY",
    lambda source: HistoryRecorder(
        source, default_parts(source), max_buffered=settings.STORMUI_HISTORY_BUFFER
    ).start(),
)
#: start recording ``source``'s history in this process, unless it does already
ensure_recorder = _one.ensure
stop_recorder = _one.stop


def current_recorder() -> HistoryRecorder | None:
    return _one.current
