"""Page and API latency, with the mirror on and with ``STORMUI_MIRROR=off``.

    .venv/bin/python -m bench.page_latency --tasks 2000 20000

For each size: start a ZooKeeper (once), write the cluster (see
:mod:`bench.common`), start the heartbeat writers (another process,
rewriting every heartbeat once per ``--beat-secs``, 30 by default), point
Django's settings at it (``STORMUI_ZK_SERVERS``/``STORMUI_ZK_ROOT`` before
``django.setup()``), and time requests in this process with Django's test
``Client`` (the whole Django stack: middleware, URL routing, view,
template or JSON; no sockets): ``/``, ``/storms/<id>/``,
``/api/v1/cluster/summary`` and ``/api/v1/topology/<id>``, one URL after the
other, ``--requests`` each with the mirror on (after it has synced; it polls
heartbeats every ``STORMUI_HEARTBEAT_SECS`` meanwhile) and ``--requests-off``
each with it off. Targets: p50 <= 25 ms with the mirror, nearly flat from
2,000 to 20,000 tasks, and at least 50x faster than off at 20,000.
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import sys
import tempfile
import time

from .common import (
    ClusterSpec,
    HeartbeatWriters,
    delete_tree,
    machine_note,
    percentile,
    populate,
    start_zookeeper,
    storm_id,
    time_gets,
)

PAGES = (
    ("cluster page", "/"),
    ("storm page", "/storms/{storm}/"),
    ("cluster summary API", "/api/v1/cluster/summary"),
    ("topology API", "/api/v1/topology/{storm}"),
)


def _setup_django(connect: str, root: str, heartbeat_secs: float):
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "stormui.settings")
    os.environ["STORMUI_ZK_SERVERS"] = connect
    os.environ["STORMUI_ZK_ROOT"] = root
    os.environ["STORMUI_HEARTBEAT_SECS"] = str(heartbeat_secs)
    os.environ.setdefault("STORMUI_STORE", "zookeeper")
    # a database of its own, migrated: the removal scheduler reads it while the source runs
    db_dir = tempfile.mkdtemp(prefix="stormui-bench-db-")
    atexit.register(shutil.rmtree, db_dir, ignore_errors=True)
    os.environ["DATABASE_URL"] = f"sqlite:///{db_dir}/bench.sqlite3"
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)


def run_size(connect, tasks, args) -> list[dict]:
    from django.conf import settings
    from django.test import Client

    from stormui.source import get_source, reset_source

    spec = ClusterSpec.for_tasks(tasks)
    root = f"/bench-pages-{tasks}"
    started = time.perf_counter()
    populate(connect, root, spec)
    rows = []
    with HeartbeatWriters(connect, root, spec, beat_secs=args.beat_secs):
        print(f"# {spec.describe()}: written in {time.perf_counter() - started:.1f} s", flush=True)
        settings.STORMUI_ZK_ROOT = root
        sid = storm_id(spec, spec.storms // 2)
        client = Client(raise_request_exception=True)
        for mode in args.modes:
            settings.STORMUI_MIRROR = mode == "on"
            reset_source()
            started = time.perf_counter()
            source = get_source()
            if source.mirror is not None and not source.mirror.wait_synced(1200):
                raise RuntimeError("the mirror did not sync")
            print(
                f"# mirror {mode}: source ready in {time.perf_counter() - started:.1f} s",
                flush=True,
            )
            for name, pattern in PAGES:
                url = pattern.format(storm=sid)
                n = args.requests if mode == "on" else args.requests_off
                if mode == "off" and tasks >= 10000 and "storm" not in pattern:
                    n = args.requests_off_large  # each reads the whole cluster
                warmup = min(args.warmup if mode == "on" else 1, n)
                cases = {name: (url, None)}
                times = time_gets(client, cases, n, warmup=warmup, max_secs=args.max_secs)[name]
                row = {
                    "tasks": spec.tasks,
                    "mode": mode,
                    "page": name,
                    "url": pattern,
                    "n": len(times),
                    "p50": percentile(times, 50) * 1000,
                    "p99": percentile(times, 99) * 1000,
                    "max": max(times) * 1000,
                }
                rows.append(row)
                print(
                    f"{spec.tasks:>6} mirror {mode:3} {name:20} n={row['n']:<4} "
                    f"p50 {row['p50']:9.1f} ms  p99 {row['p99']:9.1f} ms  "
                    f"max {row['max']:9.1f} ms",
                    flush=True,
                )
        reset_source()
    delete_tree(connect, root)  # keep ZooKeeper small for the next size
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.page_latency",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--tasks",
        type=int,
        nargs="+",
        default=[2000, 20000],
        help="cluster sizes (default 2000 20000); 200 tasks a storm",
    )
    parser.add_argument(
        "--requests", type=int, default=200, help="requests per URL with the mirror (default 200)"
    )
    parser.add_argument(
        "--requests-off",
        type=int,
        default=20,
        help="requests per URL with the mirror off (default 20)",
    )
    parser.add_argument(
        "--requests-off-large",
        type=int,
        default=2,
        help="requests of the cluster-wide URLs, mirror off, 10,000 tasks and more (default 2)",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=3,
        help="unmeasured requests first, mirror on (default 3; off: 1)",
    )
    parser.add_argument(
        "--max-secs",
        type=float,
        default=300,
        help="stop measuring one URL after this long (default 300)",
    )
    parser.add_argument(
        "--beat-secs",
        type=float,
        default=30,
        help="each heartbeat rewritten this often (default 30)",
    )
    parser.add_argument(
        "--poll-secs",
        type=float,
        default=5,
        help="STORMUI_HEARTBEAT_SECS, the mirror's heartbeat poll (default 5)",
    )
    parser.add_argument(
        "--modes",
        nargs="+",
        choices=("on", "off"),
        default=["on", "off"],
        help="mirror on, off or both (default both)",
    )
    args = parser.parse_args(argv)
    print(f"# {machine_note()}", flush=True)
    server = start_zookeeper()
    try:
        _setup_django(server.connect_string, "/bench-pages", args.poll_secs)
        rows = []
        for tasks in args.tasks:
            rows += run_size(server.connect_string, tasks, args)
    finally:
        server.stop()
    print()
    print("| tasks | mirror | page | requests | p50 | p99 | max |")
    print("| ---: | --- | --- | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(
            f"| {r['tasks']:,} | {r['mode']} | {r['page']} (`{r['url']}`) | {r['n']} | "
            f"{r['p50']:.1f} ms | {r['p99']:.1f} ms | {r['max']:.1f} ms |"
        )
    by = {(r["tasks"], r["mode"], r["page"]): r for r in rows}
    print()
    print("| tasks | page | p50 off / p50 on |")
    print("| ---: | --- | ---: |")
    for tasks in args.tasks:
        for name, _pattern in PAGES:
            on, off = by.get((tasks, "on", name)), by.get((tasks, "off", name))
            if on and off:
                print(f"| {tasks:,} | {name} | {off['p50'] / on['p50']:.0f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
