"""The error history's API over a million stored errors, on SQLite and on PostgreSQL.

    .venv/bin/python -m bench.history_api --errors 1000000

For each database (a SQLite file in a temporary folder; a throwaway PostgreSQL started
as ``tests/pgserver.py`` starts the suite's, vacuumed and analysed after the load as its
autovacuum would), in a process of its own: the schema is migrated, then ``--errors``
errors are stored through the writer's own
:meth:`stormui.history.errors.Part.write`, in passes of 20,000 (the recorder's
``MAX_BATCH``), oldest first, each pass its transaction: spread over 20,000 tasks of 100
storms (the simulator's topologies, 200 tasks a storm, on 100 supervisors) and the 30 days
up to now. The storms and tasks are drawn with a skew (a few error far more than most),
the texts are the simulator's stack traces (:func:`clusterstate.simulate.make_error`),
one in five with a first line from a pool of 500 application messages (so some hundreds
of groups), and one error in 50 comes after a jump in its task's sequence (errors ZooKeeper
trimmed: ``missed``).

Then the API is asked, through Django's test ``Client`` (routing, middleware, view, JSON),
``--requests`` times each, the queries in turn: the history (no filter, a storm, a storm
and a component, a text search, a day's range), its fifth page by cursor, and the groups
(none, a storm, a day). The storm, component and day change with each request. Target:
p50 <= 25 ms. Printed: each query's p50 and p99, the database's size over the rows
stored (bytes per stored error), and how fast the writer stored them.
"""

from __future__ import annotations

import argparse
import atexit
import itertools
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

from .common import (
    ClusterSpec,
    machine_note,
    percentile,
    storm_id,
    task_components,
    task_slot,
    time_gets,
)

DAY_MS = 86_400_000
PASS = 20_000


def _setup_django(database: str):
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "stormui.settings")
    os.environ["STORMUI_STORE"] = "memory"  # nothing here reads a cluster
    os.environ["STORMUI_HISTORY_DAYS"] = "30"
    folder = tempfile.mkdtemp(prefix="stormui-bench-history-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    server = None
    if database == "postgres":
        sys.path.insert(0, os.getcwd())
        from tests.pgserver import PostgresServer

        server = PostgresServer().start()
        atexit.register(server.stop)
        os.environ["DATABASE_URL"] = server.create_database()
    else:
        os.environ["DATABASE_URL"] = f"sqlite:///{folder}/bench.sqlite3"
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)
    return folder, server


class Cluster:
    """The benchmark's 20,000 tasks: where each runs and what it reports."""

    def __init__(self, tasks: int, seed: int = 12):
        self.spec = ClusterSpec.for_tasks(tasks)
        self.rng = random.Random(seed)
        self.tasks = []  # (storm id, task id, component, host, port)
        for s in range(self.spec.storms):
            sid = storm_id(self.spec, s)
            for t, comp in enumerate(task_components(self.spec, s)):
                node, port = task_slot(self.spec, s, t)
                self.tasks.append((sid, t + 1, comp, f"{node}.example.net", port))
        # a skew: a few tasks report far more than most
        self.weights = [
            1.0 / (1 + (i * 7919) % len(self.tasks)) ** 0.6 for i in range(len(self.tasks))
        ]
        self.seq = {}
        words = ["timeout", "refused", "overflow", "rejected", "corrupt", "missing", "stale"]
        # 500 application messages, each its own group (names, not numbers, tell them apart)
        letters = "abcdefghijklmnopqrstuvwxyz"
        self.messages = [
            f"com.example.app{n % 40}.{words[n % 7].title()}Exception: {words[(n * 3) % 7]}"
            f" while handling batch {{n}} of source {letters[n // 26 % 26]}{letters[n % 26]}"
            for n in range(500)
        ]
        self.cum = list(itertools.accumulate(1 / (k + 1) for k in range(500)))

    def errors(self, count: int, now_ms: int):
        """``count`` errors as the part puts them, oldest first, over the 30 days to now."""
        from clusterstate import TaskError
        from clusterstate.simulate import make_error
        from stormui.history.errors import Noted

        rng = self.rng
        times = sorted(rng.randrange(now_ms - 30 * DAY_MS + 60_000, now_ms) for _ in range(count))
        picks = rng.choices(range(len(self.tasks)), weights=self.weights, k=count)
        for when, i in zip(times, picks, strict=True):
            sid, tid, comp, host, port = self.tasks[i]
            seq = self.seq.get(i, -1) + (1 if rng.random() >= 0.02 else rng.randint(2, 12))
            self.seq[i] = seq
            text = make_error(rng, comp.id, comp.type, comp.package)
            if rng.random() < 0.2:
                first = rng.choices(self.messages, cum_weights=self.cum)[0]
                text = first.format(n=rng.randint(1, 10**6)) + "\n" + text.partition("\n")[2]
            yield Noted(sid, tid, comp.id, host, port, TaskError(text, when // 1000, seq))


def populate(cluster: Cluster, count: int, now_ms: int) -> float:
    """Store ``count`` errors through the writer, a pass at a time; returns seconds taken."""
    from django.db import transaction

    from stormui.history.errors import Part

    part = Part(None)
    batch, took, done = [], 0.0, 0
    for item in cluster.errors(count, now_ms):
        batch.append(item)
        if len(batch) == PASS:
            took += _write(part, batch, now_ms, transaction)
            done += len(batch)
            batch = []
            if done % 200_000 == 0:
                print(f"#   {done:,} stored ({done / took:,.0f}/s in the writer)", flush=True)
    if batch:
        took += _write(part, batch, now_ms, transaction)
    return took


def _write(part, batch, now_ms, transaction) -> float:
    started = time.perf_counter()
    with transaction.atomic():
        part.write(batch, now_ms)
    return time.perf_counter() - started


def database_size(database: str, folder: str) -> int:
    from django.db import connection

    if database == "postgres":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_database_size(current_database())")
            return cursor.fetchone()[0]
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return sum(
        os.path.getsize(os.path.join(folder, name))
        for name in os.listdir(folder)
        if name.startswith("bench.sqlite3")
    )


def queries(cluster: Cluster, now_ms: int, rng: random.Random):
    """(name, function of the request's number giving a URL), each varying what it asks."""
    storms = sorted({t[0] for t in cluster.tasks})
    comps: dict[str, set] = {}
    for sid, _tid, comp, _host, _port in cluster.tasks:
        comps.setdefault(sid, set()).add(comp.id)
    comps = {sid: sorted(ids) for sid, ids in comps.items()}

    def day():
        start = rng.randrange(now_ms - 29 * DAY_MS, now_ms - DAY_MS)
        return f"since={start}&until={start + DAY_MS}"

    def storm():
        return rng.choice(storms)

    def storm_component():
        s = storm()
        return f"storm={s}&component={rng.choice(comps[s])}"

    texts = ["OutOfMemoryError", "ConnectException", "acked twice", "timeout"]
    h = "/api/v1/errors/history"
    g = "/api/v1/errors/groups"
    return [
        ("history, no filter", lambda: h),
        ("history, storm", lambda: f"{h}?storm={storm()}"),
        ("history, storm + component", lambda: f"{h}?{storm_component()}"),
        ("history, q (text search)", lambda: f"{h}?q={rng.choice(texts).replace(' ', '+')}"),
        ("history, a day (since/until)", lambda: f"{h}?{day()}"),
        ("history, storm + a day", lambda: f"{h}?storm={storm()}&{day()}"),
        ("groups, no filter", lambda: g),
        ("groups, storm", lambda: f"{g}?storm={storm()}"),
        ("groups, a day (since/until)", lambda: f"{g}?{day()}"),
    ]


def fifth_page(client, url: str) -> str:
    """The URL of the fifth page (by cursor) of ``url``'s history."""
    for _ in range(4):
        body = json.loads(client.get(url).content)
        url = url.split("?")[0] + "?cursor=" + body["next"]
    return url


def run(cluster: Cluster, now_ms: int, requests: int, warmup: int) -> list[dict]:
    from django.test import Client

    client = Client(raise_request_exception=True)
    rng = random.Random(5)
    named = queries(cluster, now_ms, rng)
    page5 = fifth_page(client, "/api/v1/errors/history")
    named.insert(1, ("history, 5th page (cursor)", lambda: page5))
    sizes = {name: [] for name, _ in named}

    def seen(name, response):
        body = json.loads(response.content)
        sizes[name].append(len(body.get("errors", body.get("groups", []))))

    cases = {name: (url, None) for name, url in named}
    times = time_gets(client, cases, requests, warmup=warmup, seen=seen)
    rows = []
    for name, _ in named:
        row = {
            "query": name,
            "n": len(times[name]),
            "p50": percentile(times[name], 50) * 1000,
            "p99": percentile(times[name], 99) * 1000,
            "items": percentile(sizes[name], 50),
        }
        rows.append(row)
        print(
            f"  {name:32} n={row['n']:<4} p50 {row['p50']:7.1f} ms  p99 {row['p99']:7.1f} ms"
            f"  ({row['items']:.0f} items, median)",
            flush=True,
        )
    return rows


def one(database: str, args) -> int:
    folder, _server = _setup_django(database)
    from stormui.history.recorder import now_ms
    from stormui.models import ErrorBlock, ErrorGroup, ErrorHour, ErrorTask, StoredError

    now = now_ms()
    cluster = Cluster(args.tasks)
    print(f"# {database}: storing {args.errors:,} errors", flush=True)
    took = populate(cluster, args.errors, now)
    rows = StoredError.objects.count()
    if database == "postgres":
        # what autovacuum does after a load of this size, so index-only scans can be used
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
    size = database_size(database, folder)
    print(
        f"# {database}: {rows:,} errors stored in {took:,.0f} s through the writer"
        f" ({rows / took:,.0f}/s); {ErrorGroup.objects.count():,} groups,"
        f" {ErrorHour.objects.count():,} group-hours, {ErrorBlock.objects.count():,}"
        f" group-blocks, {ErrorTask.objects.count():,} tasks,"
        f" {sum(ErrorTask.objects.values_list('missed', flat=True)):,} missed",
        flush=True,
    )
    print(
        f"# {database}: database {size / 1e6:,.0f} MB: {size / rows:,.0f} bytes per stored"
        f" error (load average {os.getloadavg()[0]:.1f})",
        flush=True,
    )
    run(cluster, now, args.requests, args.warmup)
    print(f"# {database}: done, load average {os.getloadavg()[0]:.1f}", flush=True)
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.history_api",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--errors", type=int, default=1_000_000)
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--requests", type=int, default=200, help="per query (default 200)")
    parser.add_argument("--warmup", type=int, default=5, help="unmeasured first (default 5)")
    parser.add_argument(
        "--database", choices=("sqlite", "postgres", "both"), default="both", help="(default both)"
    )
    args = parser.parse_args(argv)
    if args.database != "both":
        return one(args.database, args)
    print(f"# {machine_note()}", flush=True)
    status = 0
    for database in ("sqlite", "postgres"):
        # each in a process of its own: Django is set up once a process
        command = [sys.executable, "-m", "bench.history_api", "--database", database]
        command += [f"--errors={args.errors}", f"--tasks={args.tasks}"]
        command += [f"--requests={args.requests}", f"--warmup={args.warmup}"]
        status = subprocess.call(command) or status
    return status


if __name__ == "__main__":
    sys.exit(main())
