"""How big the history grows at 20,000 tasks and 30 days, and what its time series costs.

``python -m bench.history_size [--tasks 20000] [--days 30] [--postgres]``

Errors and the timeline are measured on SQLite either way.

1. **Building the points.** The cluster of :class:`bench.common.ClusterSpec` (100 storms
   of 200 tasks, the simulator's topologies) as the dashboard derives it twice, 10 s of
   heartbeats apart (so every task has rates): the tracker holds the charts' points. Then
   what the series part does every 10 s is timed: build the points from the tracker
   (:meth:`stormui.history.series.Part.points`) and upsert them (``write``) on SQLite.
2. **A month, in compressed time.** One storm's series (the storm and its components) are
   recorded through the part's own code for ``--days`` simulated days: a tracker point per
   10 s, errors noted as the mirror reports them (20 a second cluster-wide: this storm's
   share), ``tick`` every 10 s (points and roll-ups), ``write`` once a simulated hour,
   ``expire`` every 10 simulated minutes. What is left is the steady state: 6 hours of 10 s
   points, 7 days of 1 minute, 30 days of 10 minutes.
3. **At full size.** Every other storm's series get a copy of that storm's points (the same
   rows, other series ids), and the database file is measured after ``VACUUM``: the series'
   real size at 100 storms and their components. With ``--postgres`` the same rows go into
   a throwaway PostgreSQL instead (the whole run on it), measured by
   ``pg_total_relation_size``.
4. **Errors and the timeline**, scaled: a sample of rows in tables shaped as the error
   history's and the timeline's (columns and indexes as their models declare them), bytes
   per row measured, multiplied by 30 days at 20 errors a second (~52 M rows) and at one
   timeline event a second (a generous bound: a 20,000-task cluster restarting 1 % of its
   tasks an hour makes 400 events an hour).
"""

from __future__ import annotations

import argparse
import atexit
import os
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time

from bench.common import ClusterSpec, machine_note, print_json, stats, storm_id, task_components

T0 = 1_700_000_400  # a ten-minute boundary, epoch seconds
ERRORS_PER_SEC = 20
TIMELINE_PER_SEC = 1
SAMPLE_ROWS = 100_000


def setup_django(db_dir: str, url: str | None = None) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "stormui.settings")
    os.environ.setdefault("STORMUI_STORE", "memory")
    os.environ["DATABASE_URL"] = url or f"sqlite:///{db_dir}/history.sqlite3"
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)


def storm_records(spec: ClusterSpec, s: int, beat: int):
    from clusterstate.records import TaskHeartbeat, TaskInfo
    from stormui.cluster import StormRecords, TaskRecords

    rows = []
    for t, comp in enumerate(task_components(spec, s), start=1):
        beat_record = TaskHeartbeat(
            T0 + 10 * beat, 600 + 10 * beat, stats(comp, s * 1000 + t, beat)
        )
        rows.append(TaskRecords(t, TaskInfo(comp.id, comp.type), beat_record, ()))
    return StormRecords(storm_id(spec, s), None, None, tuple(rows))


# -- 1. the cost of the points -----------------------------------------------------------


def points_cost(spec: ClusterSpec, rounds: int = 5) -> dict:
    from django.db import transaction

    from stormui.cluster import derive_storm
    from stormui.history import series
    from stormui.rates import RateTracker

    tracker = RateTracker(step=10)
    records = [[storm_records(spec, s, beat) for s in range(spec.storms)] for beat in (0, 1)]
    derive = []
    for beat in (0, 1):
        started = time.perf_counter()
        for r in records[beat]:
            derive_storm(r, now=T0 + 10 * beat, task_timeout=60, tracker=tracker)
        derive.append(time.perf_counter() - started)
    part = series.Part(None, tracker)
    first = series.bucket((T0 + 10) * 1000, series.STEP)
    build, write, n = [], [], 0
    for _ in range(rounds):
        started = time.perf_counter()
        items = part.points(first, first + series.STEP, {})
        build.append(time.perf_counter() - started)
        started = time.perf_counter()
        with transaction.atomic():
            part.write(items, 0)
        write.append(time.perf_counter() - started)
        n = len(items)
    b, w = statistics.median(build), statistics.median(write[1:] or write)
    return {
        "series": n,
        "deriveTwoBeatsSecs": [round(d, 3) for d in derive],
        "buildMs": round(b * 1000, 2),
        "writeMs": round(w * 1000, 2),
        "coreFraction": round((b + w) / 10, 5),
    }


# -- 2. a month of one storm ---------------------------------------------------------------


def simulate_month(spec: ClusterSpec, days: float) -> dict:
    from django.db import transaction

    from clusterstate import TaskError
    from clusterstate.mirror import MirrorChange
    from stormui.history import recorder, series
    from stormui.models import SeriesKey, SeriesPoint
    from stormui.rates import Rates, RateTracker

    sid = storm_id(spec, 0)
    components = sorted({c.id for c in task_components(spec, 0)})
    per_task = {t: c.id for t, c in enumerate(task_components(spec, 0), start=1)}

    class Reader:
        def task_info(self, storm, task):
            return type("Info", (), {"component_id": per_task[task]})

    class Source:
        reader = Reader()

    clock = {"now": T0 * 1000}
    recorder.now_ms = lambda: clock["now"]
    tracker = RateTracker(step=10)
    part = series.Part(Source(), tracker)
    items: list = []
    put = items.append
    part.started(clock["now"], None, put)
    rng = random.Random(7)
    errors_per_step = ERRORS_PER_SEC * 10 / spec.storms  # this storm's share
    owed = 0.0
    steps = int(days * 86400 / 10)
    started = time.perf_counter()
    expired = 0
    for i in range(1, steps + 1):
        now = T0 * 1000 + i * series.STEP
        # the dashboard's view, built a little into the bucket before
        at = (now - series.STEP + 3000) / 1000
        charts = {None: (Rates(900.0 + i % 50, 700.0, 3.0, 850.0), spec.tasks_per_storm)}
        for k, c in enumerate(components):
            charts[c] = (Rates(100.0 + k, 80.0, 0.5, 95.0), spec.tasks_per_storm // len(components))
        tracker.sample(sid, at, charts)
        clock["now"] = now - 5000
        owed += errors_per_step
        while owed >= 1:
            owed -= 1
            task = rng.choice(list(per_task))
            part.note(MirrorChange("errors", sid, task, (TaskError(int(at), "boom"),)), put)
        clock["now"] = now
        part.tick(now, put)
        if i % 360 == 0 or i == steps:
            with transaction.atomic():
                part.write(items, now)
            items.clear()
        if i % 60 == 0:
            expired += part.expire(now - recorder.retention_ms())
    secs = time.perf_counter() - started
    keys = SeriesKey.objects.filter(storm_id=sid)
    by_res = {
        res: SeriesPoint.objects.filter(series__in=keys, resolution=res).count()
        for res, _ in series.RESOLUTIONS
    }
    return {
        "storm": sid,
        "series": keys.count(),
        "simulatedDays": days,
        "secs": round(secs, 1),
        "rowsPerResolution": {f"{res // 1000}s": n for res, n in by_res.items()},
        "expiredRows": expired,
    }


# -- 3. every storm's series --------------------------------------------------------------


def fill_cluster(spec: ClusterSpec) -> int:
    """Each other storm's series: a copy of storm 0's points. Returns the series made."""
    from django.db import connection, transaction

    from stormui.models import SeriesKey

    sample = list(
        SeriesKey.objects.filter(storm_id=storm_id(spec, 0))
        .order_by("component_id")
        .values_list("id", flat=True)
    )
    made = 0
    table = "stormui_seriespoint"
    columns = "resolution, time, emitted, transferred, acked, failed, tasks_alive, errors"
    for s in range(1, spec.storms):
        keys = [""] + sorted({c.id for c in task_components(spec, s)})
        with transaction.atomic(), connection.cursor() as cursor:
            for k, component in enumerate(keys):
                key = SeriesKey.objects.create(storm_id=storm_id(spec, s), component_id=component)
                source = sample[0] if k == 0 else sample[1 + (k - 1) % (len(sample) - 1)]
                cursor.execute(
                    f"INSERT INTO {table} (series_id, {columns}) "
                    f"SELECT %s, {columns} FROM {table} WHERE series_id = %s",
                    [key.id, source],
                )
                made += 1
    return made + len(sample)


def full_size_costs(days: float) -> dict:
    """What the part's periodic work costs with every storm's series stored: a minute's and
    ten minutes' roll-up (of the newest stored), and an expire pass with nothing to delete."""
    from django.db import transaction

    from stormui.history import recorder, series

    part = series.Part(None, None)
    out = {}
    end = T0 * 1000 + int(days * 86_400_000)
    for name, res in (
        ("rollUpMinuteMs", series.MINUTE),
        ("rollUpTenMinutesMs", series.TEN_MINUTES),
    ):
        newest = series.bucket(end, res) - res  # the last that ended
        started = time.perf_counter()
        with transaction.atomic():
            part.write([("roll-up", res, newest)], 0)
        out[name] = round((time.perf_counter() - started) * 1000, 1)
    started = time.perf_counter()
    part.expire(end - recorder.retention_ms())
    out["expireMs"] = round((time.perf_counter() - started) * 1000, 1)
    return out


def series_size() -> dict:
    from django.db import connection

    from stormui.models import SeriesKey, SeriesPoint

    rows = SeriesPoint.objects.count()
    out = {"series": SeriesKey.objects.count(), "rows": rows}
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM")
        size = os.path.getsize(connection.settings_dict["NAME"])
        out["databaseBytes"] = size
    else:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_total_relation_size('stormui_seriespoint')"
                " + pg_total_relation_size('stormui_serieskey')"
            )
            size = cursor.fetchone()[0]
        out["relationBytes"] = size
    out["bytesPerRow"] = round(size / rows, 1) if rows else None
    return out


# -- 4. errors and the timeline, from bytes per row -----------------------------------------

# shaped as stormui.models.StoredError and the timeline's events: columns and indexes
ERRORS_DDL = """
CREATE TABLE errors (
  id integer PRIMARY KEY AUTOINCREMENT, storm_id varchar(255) NOT NULL,
  task_id bigint NOT NULL, component_id varchar(255) NOT NULL, host varchar(255) NOT NULL,
  port integer NULL, error_time bigint NOT NULL, seq bigint NULL, text text NOT NULL,
  truncated bool NOT NULL, length integer NOT NULL, digest varchar(32) NOT NULL,
  group_id bigint NOT NULL);
CREATE UNIQUE INDEX e1 ON errors (storm_id, task_id, seq) WHERE seq IS NOT NULL;
CREATE UNIQUE INDEX e2 ON errors (storm_id, task_id, error_time, digest) WHERE seq IS NULL;
CREATE INDEX e3 ON errors (error_time, id);
CREATE INDEX e4 ON errors (storm_id, error_time, id);
CREATE INDEX e5 ON errors (storm_id, component_id, error_time, id);
CREATE INDEX e6 ON errors (component_id, error_time, id);
CREATE INDEX e7 ON errors (host, error_time, id);
CREATE INDEX e8 ON errors (group_id, error_time, id);
"""
TIMELINE_DDL = """
CREATE TABLE events (
  id integer PRIMARY KEY AUTOINCREMENT, time bigint NOT NULL, kind varchar(40) NOT NULL,
  storm_id varchar(255) NULL, task_id bigint NULL, supervisor_id varchar(255) NULL,
  user varchar(150) NULL, detail text NOT NULL);
CREATE INDEX t1 ON events (time, id);
CREATE INDEX t2 ON events (storm_id, time, id);
CREATE INDEX t3 ON events (kind, time, id);
"""


def bytes_per_row(folder: str, spec: ClusterSpec, n: int = SAMPLE_ROWS) -> dict:
    from clusterstate.simulate import TOPOLOGIES, make_error

    rng = random.Random(11)
    out = {}
    for name, ddl, rows in (
        ("errors", ERRORS_DDL, _error_rows(spec, rng, n, TOPOLOGIES, make_error)),
        ("timeline", TIMELINE_DDL, _event_rows(spec, rng, n)),
    ):
        path = os.path.join(folder, f"{name}.sqlite3")
        db = sqlite3.connect(path)
        db.executescript(ddl)
        db.commit()
        empty = os.path.getsize(path)
        table = "errors" if name == "errors" else "events"
        first = rows[0]
        marks = ",".join("?" * len(first))
        db.executemany(f"INSERT INTO {table} VALUES (NULL,{marks})", rows)
        db.commit()
        db.execute("VACUUM")
        db.close()
        out[name] = round((os.path.getsize(path) - empty) / n, 1)
    return out


def _error_rows(spec, rng, n, topologies, make_error) -> list[tuple]:
    rows = []
    for i in range(n):
        s = rng.randrange(spec.storms)
        comps = task_components(spec, s)
        t = rng.randrange(len(comps))
        comp = comps[t]
        text = make_error(rng, comp.id, comp.type, comp.package)
        rows.append(
            (
                storm_id(spec, s),
                t + 1,
                comp.id,
                f"host-{s:04d}.example.com",
                6700 + t % 4,
                (T0 + i // ERRORS_PER_SEC) * 1000,
                i,
                text,
                False,
                len(text.encode("utf-8")),
                f"{rng.getrandbits(128):032x}",
                rng.randrange(200),
            )
        )
    return rows


def _event_rows(spec, rng, n) -> list[tuple]:
    kinds = ("task-died", "task-revived", "supervisor-lost", "storm-deactivated")
    rows = []
    for i in range(n):
        s = rng.randrange(spec.storms)
        kind = rng.choice(kinds)
        rows.append(
            (
                (T0 + i) * 1000,
                kind,
                storm_id(spec, s),
                rng.randrange(1, spec.tasks_per_storm + 1),
                f"sup-{s:04d}",
                None,
                f'{{"host": "host-{s:04d}.example.com", "port": {6700 + i % 4}}}',
            )
        )
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--days", type=float, default=30.0)
    parser.add_argument(
        "--postgres", action="store_true", help="the series in a throwaway PostgreSQL"
    )
    args = parser.parse_args(argv)
    spec = ClusterSpec.for_tasks(args.tasks)
    folder = tempfile.mkdtemp(prefix="stormui-history-size-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    os.environ["STORMUI_HISTORY_DAYS"] = str(args.days)
    url = None
    if args.postgres:
        from tests.pgserver import PostgresServer

        server = PostgresServer().start()
        atexit.register(server.stop)
        url = server.create_database()
    setup_django(folder, url)

    result = {"cluster": spec.describe(), "machine": machine_note()}
    result["points"] = points_cost(spec)
    from stormui.models import SeriesKey, SeriesPoint

    SeriesPoint.objects.all().delete()
    SeriesKey.objects.all().delete()
    result["month"] = simulate_month(spec, args.days)
    fill_cluster(spec)
    result["fullSizeCosts"] = full_size_costs(args.days)
    result["series"] = series_size()
    per_row = bytes_per_row(folder, spec)
    days_secs = args.days * 86400
    error_rows = int(ERRORS_PER_SEC * days_secs)
    event_rows = int(TIMELINE_PER_SEC * days_secs)
    result["errors"] = {
        "rows": error_rows,
        "bytesPerRow": per_row["errors"],
        "bytes": int(error_rows * per_row["errors"]),
    }
    result["timeline"] = {
        "rows": event_rows,
        "bytesPerRow": per_row["timeline"],
        "bytes": int(event_rows * per_row["timeline"]),
    }
    size = result["series"].get("databaseBytes") or result["series"]["relationBytes"]
    total = size + result["errors"]["bytes"] + result["timeline"]["bytes"]
    result["totalBytes"] = total
    print_json(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
