"""Admin actions on storms: who may, what each does to ZooKeeper, and the audit trail.

Pages, the API and the scheduler all go through :func:`perform` (a page's
confirmation form through :func:`decide_page_action`; a removal the
scheduler runs through :func:`run_scheduled_removal`), which decides,
writes through ``get_source().storm_state`` and records an :class:`AuditEntry`
for every attempt, allowed or refused. What is there is read straight from
ZooKeeper, never from the mirror, so that two admins acting at once each get
an answer that matches what ZooKeeper holds.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.dispatch import Signal
from django.utils import timezone

from clusterstate import NotConnectedError, UnreadableNodeError, paths

from . import metrics
from .forms import MAX_KILL_WAIT_SECS, ConfirmForm, KillForm
from .models import (
    Action,
    AuditEntry,
    Outcome,
    ScheduledRemoval,
    SeenStormBase,
    StormLock,
    Via,
)
from .source import get_source

log = logging.getLogger(__name__)

PERMISSIONS = {
    Action.ACTIVATE: ("stormui.activate_storm",),
    Action.DEACTIVATE: ("stormui.deactivate_storm",),
    Action.REMOVE: ("stormui.remove_storm",),
    # kill is a deactivate and a remove
    Action.KILL: ("stormui.deactivate_storm", "stormui.remove_storm"),
}

READ_ONLY = "this dashboard is read-only: admin actions are turned off"
BUSY = "another action on this storm is still running"
ZK_UNREACHABLE = "ZooKeeper unreachable: nothing was changed, try again later"
# how long an action waits for another one on the same storm before giving up
BUSY_WAIT_SECS = 5.0

# sent once a kill/<wait-secs> has stored its removal; the scheduler listens (it imports us, we
# never import it)
removal_scheduled = Signal()

# what remove deletes, in the order it deletes them
STORM_NODES = ("/storms", "/assignments", "/tasks", "/taskbeats", "/taskerrors")


@dataclass(frozen=True)
class Result:
    action: str
    storm_id: str
    outcome: str  # an Outcome value
    status: int  # the HTTP status that answers it
    message: str

    @property
    def ok(self) -> bool:
        return self.outcome == Outcome.SUCCESS


def _storable(text) -> str:
    """``text`` with NUL characters written out as ``\\x00``: PostgreSQL's text columns
    cannot hold them, and a storm id from a URL may carry one."""
    return str(text).replace("\x00", "\\x00")


def record(user, action, storm_id, via, remote_addr, outcome, detail="") -> AuditEntry:
    """Write one audit entry."""
    authenticated = user is not None and user.is_authenticated
    metrics.admin_actions.add((str(action), str(outcome)))
    return AuditEntry.objects.create(
        user=user if authenticated else None,
        username=user.get_username() if authenticated else "",
        action=action,
        storm_id=_storable(storm_id)[:255],
        outcome=outcome,
        detail=_storable(detail),
        via=via,
        remote_addr=remote_addr or None,
    )


def refuse(user, action, storm_id, via, remote_addr, status: int, reason: str) -> Result:
    """Refuse an attempt before anything is read or written, and audit it."""
    record(user, action, storm_id, via, remote_addr, Outcome.REFUSED, reason)
    return Result(action, storm_id, Outcome.REFUSED, status, reason)


def may(user, action) -> bool:
    """Whether ``user`` holds the permissions ``action`` needs (read-only aside)."""
    return user is not None and user.is_authenticated and user.has_perms(PERMISSIONS[action])


def refusal(user, action) -> tuple[int, str] | None:
    """Why ``user`` may not attempt ``action`` at all, as ``(status, reason)``; ``None`` if
    they may."""
    if user is None or not user.is_authenticated:
        return 401, "login required"
    if settings.STORMUI_READ_ONLY:
        return 403, READ_ONLY
    if not may(user, action):
        return 403, f"permission denied: {action} needs {' and '.join(PERMISSIONS[action])}"
    return None


def perform(user, action, storm_id, via, remote_addr=None, *, wait_secs=None) -> Result:
    """Attempt ``action`` ("activate", "deactivate", "remove" or "kill") on a storm for
    ``user``.

    ``wait_secs`` is kill's wait before the removal. Refusals (not logged in,
    read-only, no permission) touch nothing; every attempt is audited.
    """
    action = Action(action)
    refused = refusal(user, action)
    if refused is not None:
        return refuse(user, action, storm_id, via, remote_addr, *refused)
    if action == Action.KILL:
        if wait_secs is None or not 0 <= wait_secs <= MAX_KILL_WAIT_SECS:
            reason = f"the wait must be 0 to {MAX_KILL_WAIT_SECS} seconds"
            return refuse(user, action, storm_id, via, remote_addr, 400, reason)
    return _carry_out(user, action, storm_id, via, remote_addr, wait_secs=wait_secs)


def _carry_out(user, action, storm_id, via, remote_addr, *, wait_secs=None) -> Result:
    """Attempt an action already authorised and validated, and audit it."""
    result = _attempt(action, storm_id, user=user, wait_secs=wait_secs)
    record(user, action, storm_id, via, remote_addr, result.outcome, result.message)
    return result


# -- a page's action: one decision, then one answer -------------------------------------------

# what a page answers with
LOGIN = "login"  # to the login page, and back to the form after it
CSRF_FAILED = "csrf-failed"  # Django's CSRF failure page
REFUSED = "refused"  # the confirmation page, saying why not
NOT_FOUND = "not-found"  # a 404
CONFIRM = "confirm"  # the confirmation form, blank or with what was wrong in it
DONE = "done"  # the action ran: its result


@dataclass(frozen=True)
class PageDecision:
    """What a page action came to; the view answers it once."""

    answer: str  # one of LOGIN, CSRF_FAILED, REFUSED, NOT_FOUND, CONFIRM, DONE
    action: str
    storm_id: str
    status: int  # the HTTP status that answers it
    reason: str = ""  # why it was refused, or what was done
    storm_name: str = ""  # for CONFIRM and DONE
    form: ConfirmForm | None = None  # for CONFIRM
    result: Result | None = None  # for DONE


def decide_page_action(
    user, action, storm_id, remote_addr=None, *, data=None, csrf_failure=lambda: None
) -> PageDecision:
    """Decide a storm page's action: authorise, validate, then perform or refuse.

    ``data`` is the posted confirmation form, ``None`` for a GET (which asks
    for the form and changes nothing); ``csrf_failure()`` says why Django's
    CSRF check refuses the post, ``None`` if it passes (asked only once the
    user is known). Every post is audited, whatever comes of it; a GET is not.
    """
    action = Action(action)
    posted = data is not None

    def refused(answer, status, reason, audited_reason=None):
        if posted:
            refuse(user, action, storm_id, Via.PAGE, remote_addr, status, audited_reason or reason)
        return PageDecision(answer, action, storm_id, status, reason)

    if user is None or not user.is_authenticated:
        return refused(LOGIN, 401, "login required")
    if posted and (reason := csrf_failure()):
        return refused(CSRF_FAILED, 403, reason, f"CSRF check failed: {reason}")
    denied = refusal(user, action)
    if denied is not None:
        return refused(REFUSED, *denied)
    try:
        paths.check_id(storm_id, "storm id")
    except ValueError:
        if posted:
            _carry_out(user, action, storm_id, Via.PAGE, remote_addr)  # audited as not found
        return PageDecision(NOT_FOUND, action, storm_id, 404, "no such storm")

    # kill's form asks for the wait as well as the name
    form_class = KillForm if action == Action.KILL else ConfirmForm
    name = storm_name(storm_id)
    if not posted:
        if name is None:
            return PageDecision(NOT_FOUND, action, storm_id, 404, "no such storm")
        form = form_class(storm_name=name, storm_id=storm_id)
        return PageDecision(CONFIRM, action, storm_id, 200, storm_name=name, form=form)

    # a storm gone since the form was shown is confirmed by its id: the action says it is gone
    name = name or storm_id
    form = form_class(data, storm_name=name, storm_id=storm_id)
    if not form.is_valid():
        if "confirm" in form.errors:
            typed = data.get("confirm", "")
            reason = f"the typed name {typed[:100]!r} did not match the storm's name"
        else:
            reason = f"the wait must be 0 to {MAX_KILL_WAIT_SECS} seconds"
        refuse(user, action, storm_id, Via.PAGE, remote_addr, 400, reason)
        return PageDecision(CONFIRM, action, storm_id, 400, reason, storm_name=name, form=form)
    wait_secs = form.cleaned_data.get("wait")
    result = _carry_out(user, action, storm_id, Via.PAGE, remote_addr, wait_secs=wait_secs)
    return PageDecision(
        DONE, action, storm_id, result.status, result.message, storm_name=name, result=result
    )


def storm_name(storm_id: str) -> str | None:
    """The storm's name as its page shows it, or ``None`` if the dashboard knows no such storm.

    Reads the storm's base, and its assignment only when it has no base, never a
    whole view: an inactive storm's name went with its base, so its page shows
    its id, as does a storm whose nodes cannot be read.
    """
    source = get_source()
    if source.storm_state is None:
        return None  # ZooKeeper never reached
    reader = source.reader
    try:
        base = reader.storm_base(storm_id)
        if base is None and reader.assignment_info(storm_id) is None:
            return None
    except UnreadableNodeError:
        return storm_id
    except (NotConnectedError, ValueError):
        return None
    return base.storm_name if base is not None and base.storm_name else storm_id


def run_scheduled_removal(entry: ScheduledRemoval) -> Result:
    """Remove the storm of a due :class:`ScheduledRemoval` and audit it (via "schedule").

    The permission was checked when the kill was asked for; read-only mode
    still refuses. A ZooKeeper outage answers ``failed`` with status 503: the
    caller keeps the entry to try again.
    """
    user = entry.created_by
    if settings.STORMUI_READ_ONLY:
        result = Result(Action.REMOVE, entry.storm_id, Outcome.REFUSED, 403, READ_ONLY)
    else:
        result = _attempt(Action.REMOVE, entry.storm_id)
    detail = f"scheduled by {entry.created_by_username or 'unknown'}: {result.message}"
    record(user, Action.REMOVE, entry.storm_id, Via.SCHEDULE, None, result.outcome, detail)
    return result


# -- the writes ------------------------------------------------------------------------------

_locks_guard = threading.Lock()
_locks: dict[str, threading.Lock] = {}


def _storm_lock(storm_id: str) -> threading.Lock:
    # actions on one storm run one at a time in this process, so the second of two
    # concurrent removes reads what the first left: nothing, a clear 404
    with _locks_guard:
        return _locks.setdefault(storm_id, threading.Lock())


def _attempt(action, storm_id, *, user=None, wait_secs=None) -> Result:
    def answer(outcome, status, message):
        return Result(action, storm_id, outcome, status, message)

    try:
        paths.check_id(storm_id, "storm id")
    except ValueError:
        return answer(Outcome.NOT_FOUND, 404, "no such storm")
    lock = _storm_lock(storm_id)
    if not lock.acquire(timeout=BUSY_WAIT_SECS):
        return answer(Outcome.FAILED, 409, BUSY)
    try:
        with transaction.atomic():
            if not _lock_row(storm_id):
                return answer(Outcome.FAILED, 409, BUSY)
            # connected, or NotConnectedError: a disconnected client would queue the write
            # and run it after the reconnect
            storm_state = get_source().admin_storm_state()
            if action == Action.ACTIVATE:
                return answer(*_activate(storm_state, storm_id))
            if action == Action.DEACTIVATE:
                return answer(*_deactivate(storm_state, storm_id))
            if action == Action.REMOVE:
                return answer(*_remove(storm_state, storm_id))
            return answer(*_kill(storm_state, storm_id, user, wait_secs))
    except NotConnectedError:
        log.warning("%s %s: ZooKeeper unreachable", action, storm_id)
        return answer(Outcome.FAILED, 503, ZK_UNREACHABLE)
    except Exception as exc:
        log.exception("%s %s failed", action, storm_id)
        return answer(Outcome.FAILED, 500, f"{action} failed: {exc}")
    finally:
        lock.release()


def _lock_row(storm_id: str) -> bool:
    """Take the storm's :class:`StormLock` row until the transaction ends, waiting up to
    ``BUSY_WAIT_SECS`` for another process's action on it; ``False`` if that did not end.

    Updating the row locks it on PostgreSQL and takes the database's write lock on SQLite.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL lock_timeout = {int(BUSY_WAIT_SECS * 1000)}")
    try:
        with transaction.atomic():  # a savepoint: a wait that timed out leaves the rest usable
            if not StormLock.objects.filter(storm_id=storm_id).update(taken_at=timezone.now()):
                # the first action on this storm: a second process inserting it at the same
                # time waits for this transaction, then finds the row
                StormLock.objects.get_or_create(storm_id=storm_id)
                StormLock.objects.filter(storm_id=storm_id).update(taken_at=timezone.now())
    except OperationalError as exc:  # lock_timeout, or SQLite's "database is locked"
        log.warning("%s: another process's action did not end in time: %s", storm_id, exc)
        return False
    return True


def _present(storm_state, storm_id) -> list[str]:
    """Which of the storm's nodes ZooKeeper holds now, as their subtrees."""
    state = storm_state.cluster_state
    found = []
    # raw reads: a storm whose node cannot be decoded can still be deactivated and removed
    if state.get_data(paths.storm_path(storm_id)) is not None:
        found.append("/storms")
    if state.get_data(paths.assignment_path(storm_id)) is not None:
        found.append("/assignments")
    if storm_id in storm_state.task_storms():
        found.append("/tasks")
    if storm_id in storm_state.heartbeat_storms():
        found.append("/taskbeats")
    if storm_id in storm_state.task_error_storms():
        found.append("/taskerrors")
    return found


def _activate(storm_state, storm_id):
    """Storm's activate: write back the storm's last base seen while it was active (kept by
    :mod:`stormui.bases`); an inactive storm's ``/storms`` node, base and all, is gone."""
    found = _present(storm_state, storm_id)
    if "/storms" in found:
        return Outcome.REFUSED, 409, "already active"
    if "/assignments" not in found:
        # Nimbus would never run it again: nothing to activate
        message = "no such storm" if not found else "its assignment is gone"
        return Outcome.NOT_FOUND, 404, message
    seen = SeenStormBase.objects.filter(storm_id=storm_id).first()
    base = seen.storm_base() if seen is not None else None
    if base is None:
        return Outcome.NOT_FOUND, 404, "the dashboard never saw this storm active"
    storm_state.activate_storm(storm_id, base)
    if storm_state.cluster_state.get_data(paths.storm_path(storm_id)) is None:
        return Outcome.FAILED, 500, "the storm was deactivated again meanwhile"
    return Outcome.SUCCESS, 200, "activated"


def _deactivate(storm_state, storm_id):
    found = _present(storm_state, storm_id)
    if not found:
        return Outcome.NOT_FOUND, 404, "no such storm"
    if "/storms" not in found:
        return Outcome.SUCCESS, 200, "already inactive"
    storm_state.deactivate_storm(storm_id)
    if storm_state.cluster_state.get_data(paths.storm_path(storm_id)) is not None:
        return Outcome.FAILED, 500, "the storm was activated again meanwhile"
    return Outcome.SUCCESS, 200, "deactivated"


def _remove(storm_state, storm_id):
    found = _present(storm_state, storm_id)
    if not found:
        return Outcome.NOT_FOUND, 404, "nothing left to remove"
    # Storm's kill: the storm stops before its tasks go; then tasks first, assignment last
    if "/storms" in found:
        storm_state.deactivate_storm(storm_id)
    storm_state.remove_storm(storm_id)
    storm_state.teardown_heartbeats(storm_id)
    storm_state.teardown_task_errors(storm_id)
    # heartbeats may come back from tasks still running; the persistent nodes must not
    persistent = ("/storms", "/assignments", "/tasks")
    left = [p for p in _present(storm_state, storm_id) if p in persistent]
    if left:
        return Outcome.FAILED, 500, f"written again meanwhile: {', '.join(left)}"
    return Outcome.SUCCESS, 200, f"removed {', '.join(found)}"


def _kill(storm_state, storm_id, user, wait_secs):
    found = _present(storm_state, storm_id)
    if not found:
        return Outcome.NOT_FOUND, 404, "no such storm"
    if "/storms" in found:
        storm_state.deactivate_storm(storm_id)
        if storm_state.cluster_state.get_data(paths.storm_path(storm_id)) is not None:
            return Outcome.FAILED, 500, "the storm was activated again meanwhile"
    due_at = timezone.now() + timedelta(seconds=wait_secs)
    ScheduledRemoval.objects.create(
        storm_id=storm_id,
        due_at=due_at,
        created_by=user,
        created_by_username=user.get_username() if user is not None else "",
    )
    # the scheduler sees the entry once this action's row is free
    transaction.on_commit(lambda: removal_scheduled.send(sender=ScheduledRemoval))
    return Outcome.SUCCESS, 200, f"deactivated; removal scheduled in {wait_secs} s"
