"""The groups of a day, one code against another on the same database, in one process.

    flock /tmp/bench.lock nice .venv/bin/python -m bench.history_groups \\
        --database sqlite --errors 300000 --against 102014d

The database is filled once, as ``bench.history_api`` fills it (``--errors`` errors
through the writer, over 30 days; PostgreSQL vacuumed and analysed after), by this
worktree's code (so its migrations and writer). Then ``GET
/api/v1/errors/groups?since=&until=`` is asked through Django's test ``Client``, a day
drawn at any millisecond each request, by turns with this code's ``_groups_of_hours`` and
with that of ``stormui/history/errors.py`` at each ``--against`` revision (git): ``--rounds``
rounds of ``--per`` requests each, the order of the codes reversed every other round, so a
machine's load weighs on them alike. First each code's answer to the same 20 ranges is
checked to be the same groups with the same counts, first and last seen (the lists may
differ: each is a part of the range's). Printed: each code's p50 and p90.

With ``--writer``, then: passes of 20,000 errors of the last minute through the writer
(``Part.write``), by turns with the blocks of hours kept and without, and the time the
blocks' upserts took.

``--keep FILE`` (SQLite only) keeps the database in ``FILE`` and, if it holds errors
already, reuses them (and the time they were filled at, in ``FILE.now``).
"""

from __future__ import annotations

import argparse
import atexit
import importlib.util
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from . import history_api

DAY_MS = history_api.DAY_MS


def _setup(args):
    if args.keep and args.database == "sqlite":
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "stormui.settings")
        os.environ["STORMUI_STORE"] = "memory"
        os.environ["STORMUI_HISTORY_DAYS"] = "30"
        os.environ["DATABASE_URL"] = f"sqlite:///{os.path.abspath(args.keep)}"
        import django
        from django.core.management import call_command

        django.setup()
        call_command("migrate", verbosity=0, interactive=False)
    else:
        history_api._setup_django(args.database)


def _fill(args, cluster) -> int:
    """The time the database was filled at (epoch ms), filling it if it is empty."""
    from django.db import connection

    from stormui.history.recorder import now_ms
    from stormui.models import ErrorBlock, ErrorHour, StoredError

    if StoredError.objects.exists() and args.keep:
        with open(args.keep + ".now") as f:
            return int(f.read())
    now = now_ms()
    took = history_api.populate(cluster, args.errors, now)
    if args.database == "postgres":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
    if args.keep:
        with open(args.keep + ".now", "w") as f:
            f.write(str(now))
    print(
        f"# {args.database}: {StoredError.objects.count():,} errors in {took:,.0f} s through"
        f" the writer; {ErrorHour.objects.count():,} group-hours,"
        f" {ErrorBlock.objects.count():,} group-blocks",
        flush=True,
    )
    return now


def _code_at(revision: str):
    """``_groups_of_hours`` of ``stormui/history/errors.py`` at ``revision``."""
    text = subprocess.run(
        ["git", "show", f"{revision}:stormui/history/errors.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    folder = tempfile.mkdtemp(prefix="stormui-bench-groups-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    path = os.path.join(folder, "errors.py")
    with open(path, "w") as f:
        f.write(text)
    name = f"stormui.history._errors_{revision}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module._groups_of_hours


def compare(args, now: int) -> None:
    from django.test import Client

    from stormui.history import errors as eh

    codes = {"this code": eh._groups_of_hours}
    for revision in args.against:
        codes[revision] = _code_at(revision)
    client = Client(raise_request_exception=True)
    rng = random.Random(5)
    ranges = []
    for _ in range(max(args.rounds * args.per, 20)):
        start = rng.randrange(now - 29 * DAY_MS, now - DAY_MS)
        ranges.append(f"/api/v1/errors/groups?since={start}&until={start + DAY_MS}")

    def ask(name, url):
        eh._groups_of_hours = codes[name]
        try:
            return client.get(url)
        finally:
            eh._groups_of_hours = codes["this code"]

    for url in ranges[:20]:
        seen = set()
        for name in codes:
            body = json.loads(ask(name, url).content)
            shown = [
                (g["fingerprint"], g["count"], g["firstSeen"], g["lastSeen"])
                for g in body["groups"]
            ]
            seen.add(json.dumps(shown))
        assert len(seen) == 1, f"the codes count {url} differently"
    times = {name: [] for name in codes}
    loads = [os.getloadavg()[0]]
    names = list(codes)
    for r in range(args.rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            for url in ranges[r * args.per : (r + 1) * args.per]:
                started = time.perf_counter()
                ask(name, url)
                times[name].append(time.perf_counter() - started)
        loads.append(os.getloadavg()[0])
    for name, got in times.items():
        p50, p90 = (history_api.percentile(got, p) * 1000 for p in (50, 90))
        print(f"  groups of a day, {name}: n={len(got)} p50 {p50:.1f} ms, p90 {p90:.1f} ms")
    print(f"  load average {min(loads):.1f} to {max(loads):.1f}", flush=True)
    sys.stdout.flush()


def writer(cluster, now: int) -> None:
    from django.db import transaction

    from clusterstate import TaskError
    from stormui.history import errors as eh
    from stormui.models import ErrorBlock

    real = eh._count_in
    spent = [0.0]

    def with_blocks(model, *args, **kwargs):
        started = time.perf_counter()
        real(model, *args, **kwargs)
        if model is ErrorBlock:
            spent[0] += time.perf_counter() - started

    def without(model, *args, **kwargs):
        if model is not ErrorBlock:
            real(model, *args, **kwargs)

    rng = random.Random(9)
    part = eh.Part(None)
    passes = {"with the blocks": [], "without": []}
    upserts = []
    later = now
    try:
        for r in range(4):
            for name in list(passes) if r % 2 == 0 else list(passes)[::-1]:
                eh._count_in = with_blocks if name == "with the blocks" else without
                later += 3_600_000
                batch = [
                    item._replace(
                        error=TaskError(
                            item.error.error, later // 1000 - rng.randrange(60), item.error.seq
                        ),
                    )
                    for item in cluster.errors(history_api.PASS, later)
                ]
                spent[0] = 0.0
                started = time.perf_counter()
                with transaction.atomic():
                    part.write(batch, later)
                passes[name].append(time.perf_counter() - started)
                if name == "with the blocks":
                    upserts.append(spent[0])
    finally:
        eh._count_in = real
    for name, got in passes.items():
        print(
            f"  a writer's pass of {history_api.PASS:,}, {name}: median"
            f" {statistics.median(got):.2f} s ({', '.join(f'{t:.2f}' for t in got)})",
            flush=True,
        )
    took = ", ".join(f"{t * 1000:.0f} ms" for t in upserts)
    print(f"  the blocks' upserts in those passes: {took}", flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.history_groups",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--errors", type=int, default=300_000)
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--against", action="append", default=[], help="a git revision")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--per", type=int, default=25, help="requests a code a round")
    parser.add_argument("--writer", action="store_true", help="(on a database filled anew)")
    parser.add_argument("--keep", help="a SQLite file kept and reused")
    args = parser.parse_args(argv)
    sys.path.insert(0, os.getcwd())
    _setup(args)
    cluster = history_api.Cluster(args.tasks)
    now = _fill(args, cluster)
    compare(args, now)
    if args.writer:
        writer(cluster, now)
    return 0


if __name__ == "__main__":
    sys.exit(main())
