"""What recording the history costs: the dashboard's CPU with the history's writer and without.

    .venv/bin/python -m bench.history_record --tasks 20000 --secs 60 --rounds 2

Start a ZooKeeper, write the cluster (see :mod:`bench.common`), start the heartbeat
writers (another process: every heartbeat rewritten once per ``--beat-secs``, 30 by
default, and ``--errors-per-sec`` task errors reported, 20 by default), point Django at
it with a migrated SQLite database of its own, and let the mirror sync. Then, in
``--rounds`` alternating pairs of ``--secs`` each, measure this process's CPU time
(every thread: the mirror, the view builder, the writer) without the history's writer
and with it (:class:`stormui.history.recorder.HistoryRecorder` with every part). The
cost of recording is the difference, in cores. Target: <= 0.1 core at 20,000 tasks.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from .common import (
    ClusterSpec,
    HeartbeatWriters,
    delete_tree,
    machine_note,
    populate,
    start_zookeeper,
)
from .page_latency import _setup_django


def cpu_over(secs: float) -> float:
    """This process's CPU seconds per second over the next ``secs`` seconds."""
    cpu, wall = time.process_time(), time.monotonic()
    time.sleep(secs)  # measuring a span of time: the span is the point
    return (time.process_time() - cpu) / (time.monotonic() - wall)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.history_record",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--tasks", type=int, default=20000)
    parser.add_argument("--secs", type=float, default=60.0, help="each measured span")
    parser.add_argument("--rounds", type=int, default=2, help="pairs of spans, off then on")
    parser.add_argument("--beat-secs", type=float, default=30.0)
    parser.add_argument("--errors-per-sec", type=float, default=20.0)
    parser.add_argument("--poll-secs", type=float, default=5.0, help="STORMUI_HEARTBEAT_SECS")
    args = parser.parse_args(argv)
    print(f"# {machine_note()}", flush=True)
    server = start_zookeeper()
    root = f"/bench-history-{args.tasks}"
    try:
        spec = ClusterSpec.for_tasks(args.tasks)
        started = time.perf_counter()
        populate(server.connect_string, root, spec)
        print(f"# {spec.describe()}: written in {time.perf_counter() - started:.1f} s", flush=True)
        with HeartbeatWriters(
            server.connect_string,
            root,
            spec,
            beat_secs=args.beat_secs,
            errors_per_sec=args.errors_per_sec,
        ):
            _setup_django(server.connect_string, root, args.poll_secs)
            from stormui.history.recorder import HistoryRecorder, default_parts
            from stormui.models import RecorderRun
            from stormui.source import get_source, reset_source

            source = get_source()
            if not source.mirror.wait_synced(1200):
                raise RuntimeError("the mirror did not sync")
            print("# mirror synced", flush=True)
            cpu_over(min(args.secs, 10))  # the first polls settle
            rows = []
            for r in range(args.rounds):
                off = cpu_over(args.secs)
                recorder = HistoryRecorder(source, default_parts(source)).start()
                written = recorder.written
                on = cpu_over(args.secs)
                written = recorder.written - written
                recorder.stop(timeout=60)
                rows.append((off, on, written, recorder.dropped.total(), recorder.faults))
                print(
                    f"round {r + 1}: without {off:.3f} cores, with {on:.3f} cores, "
                    f"difference {on - off:+.3f}; {written} rows written, "
                    f"{recorder.dropped.total()} dropped, {recorder.faults} faults",
                    flush=True,
                )
            parts = ", ".join(p.name for p in default_parts(source)) or "none"
            print(f"\nParts: {parts}. Runs recorded: {RecorderRun.objects.count()}.\n")
            print("| round | without the writer | with it | cost | rows written |")
            print("| ---: | ---: | ---: | ---: | ---: |")
            for r, (off, on, written, _dropped, _faults) in enumerate(rows, 1):
                print(f"| {r} | {off:.3f} | {on:.3f} | {on - off:+.3f} | {written:,} |")
            reset_source()
        delete_tree(server.connect_string, root)
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "stormui.settings")
    sys.exit(main())
