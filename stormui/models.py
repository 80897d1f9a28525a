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


# -- the history: errors (stormui.history.errors) ----------------------------------------------


class ErrorGroup(models.Model):
    """Errors with one fingerprint (their first line, its variable parts normalised): how
    many, when first and last, and some of the storms, components, tasks and hosts they hit
    (at most ``LISTED`` of each; the storm-filtered groups come from the errors themselves).
    """

    #: a digest of the fingerprint, what the errors name their group by
    key = models.CharField(max_length=32, unique=True)
    fingerprint = models.TextField()
    #: the first error seen of the group, as stored
    sample = models.TextField()
    count = models.BigIntegerField(default=0)
    first_seen = models.BigIntegerField()
    last_seen = models.BigIntegerField(db_index=True)
    storms = models.JSONField(default=list)
    components = models.JSONField(default=list)
    tasks = models.JSONField(default=list)  # [storm id, task id] pairs
    hosts = models.JSONField(default=list)

    #: at most this many storms, components, tasks and hosts are listed
    LISTED = 20

    def __str__(self):
        return f"{self.fingerprint[:80]} ({self.count})"


class StoredError(models.Model):
    """One error node as the dashboard saw it, stored once: by ``(storm, task, seq)`` when its
    node's name has a sequence number, else by ``(storm, task, time, digest of the text)``.

    ``error_time`` is epoch milliseconds (the node's name holds seconds). ``component_id``,
    ``host`` and ``port`` are what the mirror knew of the task when the error was noted.
    Texts past 64 KB are cut (``truncated``; ``length`` is the whole text's size in UTF-8
    bytes); a NUL, which PostgreSQL's text columns refuse, is stored as U+FFFD, as bytes
    that are not UTF-8 already are.
    """

    storm_id = models.CharField(max_length=255)
    task_id = models.BigIntegerField()
    component_id = models.CharField(max_length=255, blank=True)
    host = models.CharField(max_length=255, blank=True)
    port = models.IntegerField(null=True, blank=True)
    error_time = models.BigIntegerField()
    seq = models.BigIntegerField(null=True, blank=True)
    text = models.TextField()
    truncated = models.BooleanField(default=False)
    length = models.IntegerField(default=0)
    digest = models.CharField(max_length=32)
    # (no index of its own: stored_error_group begins with it)
    group = models.ForeignKey(
        ErrorGroup, on_delete=models.PROTECT, related_name="+", db_index=False
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["storm_id", "task_id", "seq"],
                condition=models.Q(seq__isnull=False),
                name="stored_error_once_by_seq",
            ),
            models.UniqueConstraint(
                fields=["storm_id", "task_id", "error_time", "digest"],
                condition=models.Q(seq__isnull=True),
                name="stored_error_once_by_text",
            ),
        ]
        # the history's filters, each newest first (error_time, id descending)
        indexes = [
            models.Index(fields=["error_time", "id"], name="stored_error_time"),
            # a storm's groups are counted from this index alone (it holds what they need)
            models.Index(
                fields=["storm_id", "error_time", "id", "group", "component_id", "task_id", "host"],
                name="stored_error_storm",
            ),
            models.Index(
                fields=["storm_id", "component_id", "error_time", "id"],
                name="stored_error_component",
            ),
            models.Index(fields=["component_id", "error_time", "id"], name="stored_error_comp"),
            models.Index(fields=["host", "error_time", "id"], name="stored_error_host"),
            models.Index(fields=["group", "error_time", "id"], name="stored_error_group"),
        ]

    def __str__(self):
        return f"{self.storm_id}/{self.task_id} at {self.error_time}: {self.text[:80]}"


class JSONText(models.TextField):
    """A JSON value stored as its text: read as stored, where PostgreSQL's ``jsonb`` would
    print every value read back into text (the groups of a time range read thousands)."""

    def from_db_value(self, value, expression, connection):
        return None if value is None else json.loads(value)

    def to_python(self, value):
        return json.loads(value) if isinstance(value, str) else value

    def get_prep_value(self, value):
        return None if value is None else json.dumps(value, separators=(",", ":"))


class _GroupSpan(models.Model):
    """A group's errors over a span of time (its start: the subclass's field, epoch ms): how
    many, the first and the last, and (at most ``ErrorGroup.LISTED`` of each) the storms,
    components, tasks and hosts they hit, as JSON text."""

    group = models.ForeignKey(ErrorGroup, on_delete=models.CASCADE, related_name="+")
    count = models.IntegerField(default=0)
    first_seen = models.BigIntegerField()
    last_seen = models.BigIntegerField()
    storms = JSONText(default=list)
    components = JSONText(default=list)
    tasks = JSONText(default=list)  # [storm id, task id] pairs
    hosts = JSONText(default=list)

    class Meta:
        abstract = True


class ErrorHour(_GroupSpan):
    """A group's errors in one hour (``hour``: its start). The groups page's charts, and the
    groups of a time range, read these: their counts from one index (``error_hour_counts``),
    their lists at the range's edges."""

    hour = models.BigIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["group", "hour"], name="error_hour_once")]
        indexes = [
            # a range's groups are counted from this index alone
            models.Index(
                fields=["hour", "group", "count", "first_seen", "last_seen"],
                name="error_hour_counts",
            )
        ]


class ErrorBlock(_GroupSpan):
    """A group's errors in one block of hours (``block``: its start, a multiple of
    ``stormui.history.errors.BLOCK_MS``): what an :class:`ErrorHour` holds, for the block's
    hours together. Kept by the writer with the hours (only what it really inserted counts).
    The groups of a time range read their lists from the blocks wholly inside the range and
    from the hours only at its edges (their counts come from the hours)."""

    block = models.BigIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["group", "block"], name="error_block_once")]
        indexes = [models.Index(fields=["block"], name="error_block_start")]


class ErrorTask(models.Model):
    """What the history knows of one task's error nodes: the sequence numbers stored (the
    lowest, the highest, how many) and so how many ZooKeeper trimmed before they were read
    (``missed``: the numbers between the lowest and highest that were never stored); what
    could not be stored at all (``skipped``); the task's component and host as last noted."""

    storm_id = models.CharField(max_length=255)
    task_id = models.BigIntegerField()
    component_id = models.CharField(max_length=255, blank=True)
    host = models.CharField(max_length=255, blank=True)
    first_seq = models.BigIntegerField(null=True, blank=True)
    last_seq = models.BigIntegerField(null=True, blank=True)
    stored = models.BigIntegerField(default=0)  # errors stored with a sequence number, ever
    missed = models.BigIntegerField(default=0)
    skipped = models.BigIntegerField(default=0)
    seen_at = models.BigIntegerField(db_index=True)  # the newest error stored (epoch ms)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["storm_id", "task_id"], name="error_task_once")
        ]
        indexes = [models.Index(fields=["storm_id", "component_id"], name="error_task_component")]

    def __str__(self):
        return f"{self.storm_id}/{self.task_id}: {self.missed} missed"


# -- issue 12, the error history's counts per storm --------------------------------------------


class ErrorGroupStorm(models.Model):
    """A group's errors in one storm: how many, the first and the last, and (at most
    ``ErrorGroup.LISTED`` of each) the components, tasks and hosts they hit. Kept by the
    writer with the errors (only what it really inserted counts) and by the expiry; a
    storm's groups are read from these."""

    group = models.ForeignKey(ErrorGroup, on_delete=models.CASCADE, related_name="+")
    storm_id = models.CharField(max_length=255)
    count = models.BigIntegerField(default=0)
    first_seen = models.BigIntegerField()
    last_seen = models.BigIntegerField()
    components = models.JSONField(default=list)
    tasks = models.JSONField(default=list)  # [storm id, task id] pairs
    hosts = models.JSONField(default=list)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["group", "storm_id"], name="error_group_storm_once")
        ]
        # a storm's groups, newest last seen first
        indexes = [
            models.Index(fields=["storm_id", "last_seen", "group"], name="error_group_storm_seen"),
            models.Index(fields=["last_seen"], name="error_group_storm_last"),
        ]

    def __str__(self):
        return f"{self.storm_id}: group {self.group_id} ({self.count})"
