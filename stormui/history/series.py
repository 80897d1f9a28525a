"""Each storm's and component's figures over time, kept at three resolutions.

A point per (storm, component or ``""`` for the storm, resolution, bucket): emitted,
transferred, acked and failed tuples per second, tasks alive, and errors (a count, said
per minute by the API). The recorder's part takes the rates the dashboard computes
already (:data:`stormui.rates.TRACKER`, fed by every cluster view built in the process):
every :data:`STEP` it writes one 10 s point per storm and component, the means of the
tracker's points in that bucket, and the errors the mirror reported new in it. A bucket
the tracker has no point in (no dashboard ran, no view was built) gets no row: a gap
stays a gap, never an invented point.

As time passes the points are rolled up: each minute that ended into a 1 minute point,
each ten minutes into a 10 minute one, from the finer points stored (rates and tasks
alive: the mean of the finer points that know them, so a dip in tasks alive shows as a
fraction; errors: the sum). A roll-up is computed again from the stored points whenever
it runs, and every write is an upsert on (series, resolution, time): a retried pass or a
restart writes nothing twice. Kept (:data:`RESOLUTIONS`): 10 s points 6 hours, 1 minute
points 7 days, 10 minute points ``STORMUI_HISTORY_DAYS``; each expire pass deletes what is
older, in batches.
"""

from __future__ import annotations

import threading
from collections import Counter

from django.db import transaction
from django.db.models import Exists, OuterRef

from .. import rates as _rates
from . import recorder

STEP = 10_000
MINUTE = 60_000
TEN_MINUTES = 600_000
HOUR = 3_600_000
DAY = 86_400_000
#: each resolution (ms) and how long its points are kept (ms; None: ``STORMUI_HISTORY_DAYS``)
RESOLUTIONS = ((STEP, 6 * HOUR), (MINUTE, 7 * DAY), (TEN_MINUTES, None))
#: what is rolled up into what: (resolution, from the finer one)
ROLL_UPS = ((MINUTE, STEP), (TEN_MINUTES, MINUTE))
#: the API's metrics: (the point's field, its unit)
METRICS = {
    "emitted": ("emitted", "tuples/s"),
    "transferred": ("transferred", "tuples/s"),
    "acked": ("acked", "tuples/s"),
    "failed": ("failed", "tuples/s"),
    "tasksAlive": ("tasks_alive", "tasks"),
    "errors": ("errors", "errors/min"),
}
FIELDS = ("emitted", "transferred", "acked", "failed", "tasks_alive", "errors")
RATE_FIELDS = FIELDS[:4]
#: a range is drawn from the finest resolution that still holds its start and gives at
#: most this many points (else the coarsest)
MAX_POINTS = 2200
#: a tick late by more buckets than this (the tracker holds an hour) writes the newest only
MAX_LATE = _rates.MAX_POINTS // 2
#: ids asked of the database at once
CHUNK = 500
#: buckets of errors waiting for their tick, at most (a recorder that cannot start)
MAX_ERROR_KEYS = 100_000


def bucket(t: int, resolution: int) -> int:
    """The start of the bucket of ``resolution`` (ms) that holds ``t`` (epoch ms)."""
    return t - t % resolution


def kept(resolution: int, retention: int) -> int:
    """How long points of ``resolution`` are kept, given ``STORMUI_HISTORY_DAYS`` in ms."""
    for res, keep in RESOLUTIONS:
        if res == resolution:
            return retention if keep is None else min(keep, retention)
    raise ValueError(f"no such resolution: {resolution}")


def mean(values) -> float | None:
    """The mean of the values that are known, or ``None`` when none is."""
    total, n = 0.0, 0
    for v in values:
        if v is not None:
            total += v
            n += 1
    return total / n if n else None


def step_point(points) -> tuple:
    """A 10 s point's (emitted, transferred, acked, failed, tasks alive) from the tracker's
    :class:`~stormui.rates.Point`\\ s in its bucket: the means of what they know."""
    return (
        mean(p.emitted for p in points),
        mean(p.transferred for p in points),
        mean(p.acked for p in points),
        mean(p.failed for p in points),
        mean(p.alive for p in points),
    )


def roll_up(rows) -> tuple:
    """A coarser point's fields (:data:`FIELDS`) from its finer points' (tuples in that
    order): the means of the rates and tasks alive that are known, the sum of the errors."""
    rows = list(rows)
    return (*(mean(r[i] for r in rows) for i in range(5)), sum(r[5] for r in rows))


def per_minute(errors: int, resolution: int) -> float:
    """A bucket's error count as errors per minute."""
    return errors * MINUTE / resolution


def choose_resolution(since: int, until: int, now: int, retention: int) -> int:
    """The resolution a range is read at: the finest that still holds ``since`` and gives
    at most :data:`MAX_POINTS` points; else the coarsest."""
    for res, _ in RESOLUTIONS:
        if since >= now - kept(res, retention) and (until - since) / res <= MAX_POINTS:
            return res
    return RESOLUTIONS[-1][0]


def _chunks(values, n: int = CHUNK):
    values = list(values)
    for i in range(0, len(values), n):
        yield values[i : i + n]


class Part(recorder.Part):
    name = "series"

    def __init__(self, source, tracker=None):
        super().__init__(source)
        self.tracker = _rates.TRACKER if tracker is None else tracker
        self._lock = threading.Lock()
        #: errors the mirror reported new, by (storm, component or "", 10 s bucket)
        self._errors: Counter = Counter()
        #: the first 10 s bucket not written yet (its start, epoch ms)
        self._next: int | None = None
        #: series ids by (storm, component or ""), once their rows are committed
        self._keys: dict[tuple[str, str], int] = {}

    # -- the mirror's thread -----------------------------------------------------------

    def note(self, change, put) -> None:
        if change.kind != "errors" or not change.errors or change.storm_id is None:
            return
        component = self._component(change.storm_id, change.task_id)
        n = len(change.errors)
        now = recorder.now_ms()
        with self._lock:
            if len(self._errors) >= MAX_ERROR_KEYS:
                return
            # an error seen as its bucket is being written counts in the next one
            at = bucket(now, STEP)
            if self._next is not None and at < self._next:
                at = self._next
            self._errors[(change.storm_id, "", at)] += n
            if component:
                self._errors[(change.storm_id, component, at)] += n

    def _component(self, storm_id: str, task_id) -> str:
        if task_id is None:
            return ""
        try:
            info = self.source.reader.task_info(storm_id, task_id)
        except Exception:  # unreadable or gone: the storm's count has it still
            return ""
        return info.component_id if info is not None and info.component_id else ""

    # -- the recorder's thread ---------------------------------------------------------

    def started(self, now: int, previous, put) -> None:
        self._next = bucket(now, STEP)
        if previous is None:
            return
        # what the last run wrote after it last said it was alive was never rolled up
        for res, _ in ROLL_UPS:
            for at in sorted(
                {bucket(previous.alive_at, res), bucket(previous.alive_at + 2 * STEP, res)}
            ):
                if at < bucket(now, res):
                    put(("roll-up", res, at))

    def stopping(self, now: int, put) -> None:
        # the minute and ten minutes under way: what was written of them, rolled up
        for res, _ in ROLL_UPS:
            put(("roll-up", res, bucket(now, res)))

    def tick(self, now: int, put) -> None:
        current = bucket(now, STEP)
        if self._next is None:
            self._next = current
        if current <= self._next:
            return  # the bucket is still filling
        first = max(self._next, current - MAX_LATE * STEP)
        with self._lock:
            errors = {k: n for k, n in self._errors.items() if k[2] < current}
            for k in errors:
                del self._errors[k]
        for item in self.points(first, current, errors):
            put(item)
        for res, _ in ROLL_UPS:
            # each bucket of res that ended since the last tick
            at = bucket(self._next, res)
            while at + res <= current:
                if at + res > self._next:
                    put(("roll-up", res, at))
                at += res
        self._next = current

    def points(self, first: int, until: int, errors: dict) -> list[tuple]:
        """The 10 s points of the buckets from ``first`` to ``until`` (epoch ms): the
        tracker's points in them, and ``errors`` counted in them (by (storm, component,
        bucket)). Each ``("point", storm, component, bucket, *FIELDS)``."""
        out: dict[tuple, list] = {}
        for (storm_id, component), points in self.tracker.recent(first / 1000).items():
            by_bucket: dict[int, list] = {}
            for p in points:
                at = bucket(int(p.time * 1000), STEP)
                if first <= at < until:
                    by_bucket.setdefault(at, []).append(p)
            for at, in_bucket in by_bucket.items():
                out[(storm_id, component or "", at)] = [*step_point(in_bucket), 0]
        for key, n in errors.items():
            if first <= key[2] < until:
                out.setdefault(key, [None] * 5 + [0])[5] = n
        return [("point", *key, *fields) for key, fields in sorted(out.items(), key=_time)]

    def write(self, items: list, now: int) -> None:
        # the points first: a roll-up's buckets ended before any point put after it
        self._write_points([item for item in items if item[0] == "point"])
        wanted: dict[int, set] = {}
        for item in items:
            if item[0] == "roll-up":
                wanted.setdefault(item[1], set()).add(item[2])
        # the minutes before the ten minutes made of them
        for res, _ in ROLL_UPS:
            if res in wanted:
                self._upsert(self._roll_up(res, wanted[res]))

    def _write_points(self, items: list) -> None:
        from ..models import SeriesPoint

        if not items:
            return
        ids = self.series_ids({(s, c) for _, s, c, *_ in items})
        self._upsert(
            SeriesPoint(
                series_id=ids[(s, c)],
                resolution=STEP,
                time=at,
                **dict(zip(FIELDS, fields, strict=True)),
            )
            for _, s, c, at, *fields in items
        )

    def _upsert(self, points) -> None:
        from ..models import SeriesPoint

        points = list(points)
        if points:
            SeriesPoint.objects.bulk_create(
                points,
                update_conflicts=True,
                unique_fields=["series", "resolution", "time"],
                update_fields=list(FIELDS),
            )

    def _roll_up(self, res: int, buckets: set) -> list:
        """The points of ``res`` in ``buckets`` (their starts), from the finer ones stored."""
        from ..models import SeriesKey, SeriesPoint

        finer = dict(ROLL_UPS)[res]
        rows: dict[tuple[int, int], list] = {}
        for ids in _chunks(SeriesKey.objects.values_list("id", flat=True)):
            found = SeriesPoint.objects.filter(
                series_id__in=ids,
                resolution=finer,
                time__gte=min(buckets),
                time__lt=max(buckets) + res,
            ).values_list("series_id", "time", *FIELDS)
            for series_id, t, *fields in found:
                at = bucket(t, res)
                if at in buckets:
                    rows.setdefault((series_id, at), []).append(fields)
        return [
            SeriesPoint(
                series_id=series_id,
                resolution=res,
                time=at,
                **dict(zip(FIELDS, roll_up(fine), strict=True)),
            )
            for (series_id, at), fine in rows.items()
        ]

    def series_ids(self, keys) -> dict[tuple[str, str], int]:
        """Each (storm, component) key's series id, its row made if need be (in the pass's
        transaction: remembered once that commits)."""
        from ..models import SeriesKey

        ids = {k: self._keys[k] for k in keys if k in self._keys}
        missing = [k for k in keys if k not in ids]
        if not missing:
            return ids
        found = _lookup(missing)
        new = [k for k in missing if k not in found]
        if new:
            SeriesKey.objects.bulk_create(
                [SeriesKey(storm_id=s, component_id=c) for s, c in new], ignore_conflicts=True
            )
            found.update(_lookup(new))
        ids.update(found)
        transaction.on_commit(lambda: self._keys.update(found))
        return ids

    def expire(self, cutoff: int) -> int:
        from ..models import SeriesKey, SeriesPoint

        retention = recorder.retention_ms()
        now = cutoff + retention
        gone = 0
        all_ids = list(SeriesKey.objects.values_list("id", flat=True))
        for res, _ in RESOLUTIONS:
            before = now - kept(res, retention)
            for ids in _chunks(all_ids):
                old = SeriesPoint.objects.filter(series_id__in=ids, resolution=res)
                gone += recorder.delete_before(old, "time", before)
        # series with no point left (their storm went long ago): one probe of the key each
        empty = list(
            SeriesKey.objects.filter(
                ~Exists(SeriesPoint.objects.filter(series=OuterRef("pk")))
            ).values_list("id", flat=True)
        )
        for ids in _chunks(empty):
            with transaction.atomic():
                SeriesKey.objects.filter(id__in=ids).delete()
        if empty:
            gone_ids = set(empty)
            self._keys = {k: v for k, v in self._keys.items() if v not in gone_ids}
        return gone


def _time(item) -> int:
    return item[0][2]


def _lookup(keys) -> dict[tuple[str, str], int]:
    from ..models import SeriesKey

    wanted = set(keys)
    out = {}
    for storms in _chunks({s for s, _ in wanted}):
        rows = SeriesKey.objects.filter(storm_id__in=storms)
        for series_id, s, c in rows.values_list("id", "storm_id", "component_id"):
            if (s, c) in wanted:
                out[(s, c)] = series_id
    return out


# -- reading ---------------------------------------------------------------------------


def stored(storm_id: str, component: str | None = None) -> bool:
    """Whether the history holds a series of ``storm_id`` (of its ``component`` if given)."""
    from ..models import SeriesKey

    keys = SeriesKey.objects.filter(storm_id=storm_id)
    if component is not None:
        keys = keys.filter(component_id=component)
    return keys.exists()


def read(storm_id: str, component: str, since: int, until: int, now: int) -> tuple[int, list]:
    """A series' resolution and stored points (by their bucket's start) in ``[since,
    until)``, oldest first: each
    ``(time, emitted, transferred, acked, failed, tasks_alive, errors)``."""
    from ..models import SeriesPoint

    res = choose_resolution(since, until, now, recorder.retention_ms())
    rows = SeriesPoint.objects.filter(
        series__storm_id=storm_id,
        series__component_id=component,
        resolution=res,
        time__gte=since,
        time__lt=until,
    ).order_by("time")
    return res, list(rows.values_list("time", *FIELDS))


def metric_points(rows, metric: str, resolution: int) -> list[list]:
    """The API's ``[[epoch_ms, value], ...]`` of ``metric`` from :func:`read`'s rows."""
    field, _ = METRICS[metric]
    i = 1 + FIELDS.index(field)
    if field == "errors":
        return [[r[0], per_minute(r[i], resolution)] for r in rows]
    return [[r[0], r[i]] for r in rows]


def parse_query(query, now: int) -> tuple[str, str, int, int]:
    """The API's ``metric``, ``component``, ``since`` and ``until`` (epoch ms; the last hour
    up to ``now`` by default) from a query.

    :raises ValueError: naming what is wrong.
    """
    metric = query.get("metric")
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}")
    until = _epoch_ms(query.get("until"), "until", now)
    since = _epoch_ms(query.get("since"), "since", until - HOUR)
    if since >= until:
        raise ValueError("since must be before until")
    return metric, query.get("component") or "", since, until


def _epoch_ms(value, name: str, default: int) -> int:
    if value is None or value == "":
        return default
    if not (isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 15):
        raise ValueError(f"{name} must be a time in epoch milliseconds")
    return int(value)
