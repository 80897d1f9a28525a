"""Runs the removals that ``kill/<wait-secs>`` scheduled.

The schedule lives in the database (:class:`ScheduledRemoval`), so a restart
loses nothing: a small thread in the serving process, started by the ASGI
application on its first connection (:class:`StartsScheduler`, the one place
that starts the serving process's background work), runs what is due, first
thing on start and then whenever the next entry falls due. Several processes
may each run one: an entry is claimed by moving its ``due_at`` forward by a
lease, and only the process whose update took runs it. ``manage.py
run_scheduled`` runs what is due once (or, with ``--loop``, keeps running).
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

from django.conf import settings
from django.db import close_old_connections, connection
from django.db.models import F
from django.utils import timezone

from . import live
from .actions import removal_scheduled, run_scheduled_removal
from .models import Outcome, ScheduledRemoval

log = logging.getLogger(__name__)

# a claimed entry is run again after this if its runner died mid-way
LEASE = timedelta(seconds=60)
# a removal that failed (ZooKeeper unreachable) is tried again after this, times its attempts
RETRY_SECS = 5
MAX_RETRY_SECS = 300
# the thread looks for entries made by other processes at least this often
IDLE_SECS = 5.0


def run_due(now=None) -> list:
    """Run every pending removal due by ``now``; returns their :class:`~stormui.actions.Result`."""
    now = now or timezone.now()
    results = []
    due = ScheduledRemoval.objects.filter(done_at=None, due_at__lte=now)
    for pk in list(due.values_list("pk", flat=True)):
        claimed = ScheduledRemoval.objects.filter(pk=pk, done_at=None, due_at__lte=now).update(
            due_at=now + LEASE, attempts=F("attempts") + 1
        )
        if not claimed:  # another runner has it
            continue
        entry = ScheduledRemoval.objects.select_related("created_by").get(pk=pk)
        result = run_scheduled_removal(entry)
        entry.detail = result.message
        if result.outcome == Outcome.FAILED:
            # ZooKeeper unreachable or busy: keep it, try again later
            delay = min(RETRY_SECS * entry.attempts, MAX_RETRY_SECS)
            entry.due_at = timezone.now() + timedelta(seconds=delay)
            entry.save(update_fields=["due_at", "detail"])
        else:
            entry.done_at = timezone.now()
            entry.outcome = result.outcome
            entry.save(update_fields=["done_at", "outcome", "detail"])
        results.append(result)
    return results


def next_due():
    """When the next pending removal falls due, or ``None``."""
    return (
        ScheduledRemoval.objects.filter(done_at=None)
        .order_by("due_at")
        .values_list("due_at", flat=True)
        .first()
    )


class Scheduler:
    """A daemon thread that runs due removals, starting with those already due."""

    def __init__(self):
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> Scheduler:
        self._thread = threading.Thread(target=self._run, name="stormui-scheduler", daemon=True)
        self._thread.start()
        return self

    def wake(self) -> None:
        """Look at the schedule now (a new entry was made)."""
        self._wake.set()

    def stop(self, timeout: float = 10) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._wake.clear()
                wait = self._tick()
                self._wake.wait(wait)
        finally:
            connection.close()

    def _tick(self) -> float:
        """Run what is due; how long to sleep before looking again."""
        close_old_connections()
        try:
            run_due()
            upcoming = next_due()
        except Exception:
            log.exception("running scheduled removals failed")
            return IDLE_SECS
        finally:
            close_old_connections()
        if upcoming is None:
            return IDLE_SECS
        return min(max((upcoming - timezone.now()).total_seconds(), 0.05), IDLE_SECS)


_lock = threading.Lock()
_scheduler: Scheduler | None = None


def ensure_scheduler_started() -> Scheduler | None:
    """Start this process's scheduler thread if it is not running yet.

    ``STORMUI_SCHEDULER_THREAD = False`` (tests) leaves it to :func:`run_due`.
    """
    global _scheduler
    if not getattr(settings, "STORMUI_SCHEDULER_THREAD", True):
        return None
    with _lock:
        if _scheduler is None or not _scheduler.running:
            _scheduler = Scheduler().start()
        return _scheduler


def wake_scheduler() -> None:
    """Have the running scheduler look at the schedule now; a no-op if none runs here."""
    scheduler = _scheduler
    if scheduler is not None:
        scheduler.wake()


def _on_removal_scheduled(sender, **kwargs) -> None:
    wake_scheduler()


removal_scheduled.connect(_on_removal_scheduled)


class StartsScheduler:
    """ASGI middleware: the one place where the serving process starts its background work,
    on its first connection of any kind.

    - The scheduler runs before the process serves: removals scheduled before a restart run
      once it serves again.
    - The relay, with the base recorder beside it, starts in the background if this process
      relays (:func:`stormui.live.start_relay_soon`): activate needs the bases of storms that
      were active while nobody had a live page open. The request does not wait for it.
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if _scheduler is None or not _scheduler.running:
            ensure_scheduler_started()
        live.start_relay_soon()
        return await self.app(scope, receive, send)


def stop_scheduler() -> None:
    """Stop this process's scheduler thread, if any."""
    global _scheduler
    with _lock:
        if _scheduler is not None:
            _scheduler.stop()
        _scheduler = None
