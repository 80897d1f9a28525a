"""What the dashboard keeps in its own database: the audit log of admin actions,
the removals that ``kill/<wait-secs>`` scheduled, each storm's last base seen
while it was active (what activate writes back), and the history's runs
(:mod:`stormui.history`)."""

import json

from django.conf import settings
from django.db import models
from django.utils import timezone

from clusterstate import StormBase


class Action(models.TextChoices):
    ACTIVATE = "activate"
    DEACTIVATE = "deactivate"
    REMOVE = "remove"
    KILL = "kill"


class Outcome(models.TextChoices):
    SUCCESS = "success"
    REFUSED = "refused"
    FAILED = "failed"
    NOT_FOUND = "not-found"


class Via(models.TextChoices):
    PAGE = "page"
    API = "api"
    SCHEDULE = "schedule"


class AuditEntry(models.Model):
    """One attempt at an admin action, allowed or refused."""

    # the user row may go; the name it had stays in the log
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    username = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=16, choices=Action.choices)
    storm_id = models.CharField(max_length=255)
    when = models.DateTimeField(default=timezone.now, db_index=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    detail = models.TextField(blank=True)
    via = models.CharField(max_length=16, choices=Via.choices)
    remote_addr = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-when", "-id"]
        verbose_name = "audit entry"
        verbose_name_plural = "audit log"
        # the log is written by the service only, never edited by hand
        default_permissions = ("view",)
        # the permissions that admin actions need: stormui.activate_storm,
        # stormui.deactivate_storm, stormui.remove_storm
        permissions = [
            ("activate_storm", "Can activate a storm"),
            ("deactivate_storm", "Can deactivate a storm"),
            ("remove_storm", "Can remove a storm"),
        ]

    def __str__(self):
        who = self.username or "anonymous"
        return f"{self.when:%Y-%m-%d %H:%M:%S} {who} {self.action} {self.storm_id}: {self.outcome}"


class ScheduledRemoval(models.Model):
    """A removal that ``kill/<wait-secs>`` left for the scheduler, kept across restarts."""

    storm_id = models.CharField(max_length=255)
    due_at = models.DateTimeField(db_index=True)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_by_username = models.CharField(max_length=150, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    done_at = models.DateTimeField(null=True, blank=True, db_index=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, blank=True)
    detail = models.TextField(blank=True)

    class Meta:
        ordering = ["due_at", "id"]

    def __str__(self):
        state = self.outcome or "pending"
        return f"remove {self.storm_id} at {self.due_at:%Y-%m-%d %H:%M:%S} ({state})"

    @property
    def pending(self) -> bool:
        return self.done_at is None


class StormLock(models.Model):
    """A storm's row for serialising admin actions across processes.

    An action updates its storm's row inside the transaction that lasts while it reads
    and writes ZooKeeper, so a second action on that storm, from any process sharing the
    database, waits until the first is done (a row lock on PostgreSQL, the write lock on
    SQLite), then reads what the first left.
    """

    storm_id = models.CharField(max_length=255, primary_key=True)
    taken_at = models.DateTimeField(default=timezone.now)

    def __str__(self):
        return f"{self.storm_id} (last taken {self.taken_at:%Y-%m-%d %H:%M:%S})"


class SeenStormBase(models.Model):
    """A storm's last ``StormBase`` (its ``/storms`` node) as the dashboard saw it while the
    storm was active: what activate writes back once a deactivate has deleted the node.

    Written by :mod:`stormui.bases` in the relaying process only. ``base`` is the record's
    JSON (``StormBase.to_json``), which escapes every control character: PostgreSQL's text
    columns hold no NUL, and a storm's name may carry one.
    """

    storm_id = models.CharField(max_length=255, primary_key=True)
    base = models.TextField()
    seen_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "storm base seen"
        verbose_name_plural = "storm bases seen"

    def __str__(self):
        return f"{self.storm_id}: {self.base}"

    def storm_base(self):
        """The stored record, or ``None`` if what is stored is not a ``StormBase``."""
        try:
            return StormBase.from_json(json.loads(self.base))
        except ValueError:  # JSONDecodeError is one
            return None


class RecorderRun(models.Model):
    """One run of the history's writer (:mod:`stormui.history.recorder`): when it started,
    when it was last alive, when it stopped, and what it had to drop. Times are epoch
    milliseconds, as everywhere in the history.

    A run killed without stopping is closed by the next one at its ``alive_at``: between
    the two, no dashboard recorded.
    """

    started_at = models.BigIntegerField(db_index=True)
    alive_at = models.BigIntegerField()
    stopped_at = models.BigIntegerField(null=True, blank=True)
    host = models.CharField(max_length=255, blank=True)
    pid = models.IntegerField(null=True, blank=True)
    #: items the writer dropped because too many waited for the database, by part
    dropped = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self):
        return f"history writer {self.host}:{self.pid} from {self.started_at}"


# -- the timeline (stormui.history.timeline) ------------------------------------------------


class TimelineEvent(models.Model):
    """One thing that happened to the cluster, as the timeline tells it (``time`` in epoch
    ms). Written by :mod:`stormui.history.timeline` in the recording process only."""

    time = models.BigIntegerField()
    kind = models.CharField(max_length=32)
    storm_id = models.CharField(max_length=255, null=True, blank=True)
    task_id = models.IntegerField(null=True, blank=True)
    supervisor_id = models.CharField(max_length=255, null=True, blank=True)
    #: the task's component, for the restart counts
    component_id = models.CharField(max_length=255, null=True, blank=True)
    user = models.CharField(max_length=150, null=True, blank=True)
    detail = models.TextField(blank=True)
    #: the audit entry it tells of (an admin action), once at most
    audit_id = models.BigIntegerField(null=True, blank=True, unique=True)
    #: that action's outcome
    outcome = models.CharField(max_length=16, blank=True)
    #: the change was seen in ZooKeeper (not only in the audit log)
    seen = models.BooleanField(default=True)
    #: the change happened after this (epoch ms): ``time`` for a change seen as it came, the
    #: last recording's end for one found when recording started again
    after = models.BigIntegerField()

    class Meta:
        ordering = ["-time", "-id"]
        indexes = [
            models.Index(fields=["time", "id"], name="timeline_time"),
            models.Index(fields=["storm_id", "time", "id"], name="timeline_storm_time"),
            models.Index(fields=["kind", "time", "id"], name="timeline_kind_time"),
            models.Index(fields=["storm_id", "kind", "time"], name="timeline_storm_kind_time"),
        ]

    def __str__(self):
        return f"{self.time} {self.kind} {self.storm_id or self.supervisor_id or ''}"

    @property
    def time_secs(self) -> float:
        return self.time / 1000


class TimelineMark(models.Model):
    """The last state the timeline recorded of a storm, supervisor, task or the ZooKeeper
    connection: what a restarted recorder compares the cluster with, so nothing is told
    twice and what changed meanwhile is told once."""

    subject = models.CharField(max_length=16)
    key = models.CharField(max_length=300)
    state = models.CharField(max_length=16)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["subject", "key"], name="timeline_mark_subject_key")
        ]

    def __str__(self):
        return f"{self.subject} {self.key}: {self.state}"


# -- history: time series (stormui.history.series) ----------------------------------------


class SeriesKey(models.Model):
    """A storm's (``component_id`` empty) or one of its components' time series: the points
    name it by this row's small id, not by the storm's id again in each of millions of rows."""

    storm_id = models.CharField(max_length=255)
    component_id = models.CharField(max_length=255, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["storm_id", "component_id"], name="series_key_unique")
        ]

    def __str__(self):
        return f"{self.storm_id}/{self.component_id}" if self.component_id else self.storm_id


class SeriesPoint(models.Model):
    """One bucket of a series at one resolution (10 s, 1 min or 10 min; ``time`` is the
    bucket's start in epoch ms). Rates are tuples per second, null when unknown; a rolled-up
    point holds the means of its finer points' rates and tasks alive, and the sum of their
    errors (a count: the API says it per minute). No row is a time when no dashboard ran.

    The unique key serves every read (a series' range at one resolution) and makes every
    write an upsert, so a retried pass or a restart writes nothing twice.
    """

    # the unique key below leads with it: no index of its own
    series = models.ForeignKey(SeriesKey, on_delete=models.CASCADE, db_index=False)
    resolution = models.IntegerField()  # the bucket's length in ms
    time = models.BigIntegerField()
    emitted = models.FloatField(null=True)
    transferred = models.FloatField(null=True)
    acked = models.FloatField(null=True)
    failed = models.FloatField(null=True)
    tasks_alive = models.FloatField(null=True)
    errors = models.IntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["series", "resolution", "time"], name="series_point_unique"
            )
        ]

    def __str__(self):
        return f"{self.series_id} @{self.time} ({self.resolution} ms)"
