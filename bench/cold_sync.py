"""Cold sync of the mirror against a raw pipelined kazoo read of the same nodes.

    .venv/bin/python -m bench.cold_sync --tasks 20000 --repeat 5

Starts a ZooKeeper, writes a cluster (see :mod:`bench.common`), then, in
alternating order, times

- ``raw``: every folder's children and every record's data (the nodes the
  mirror reads, no more), with kazoo's ``get_children_async``/``get_async``
  issued level by level in pipelined batches of 2,000, no watches, no decoding;
- ``mirror``: ``ClusterMirror(state).start()`` on a connected state, until
  it reports synced (reads with watches, decodes, builds its maps).

Each on a fresh session. Target: the mirror within 1.5x of raw (median).
"""

from __future__ import annotations

import argparse
import gc
import sys
import time

from clusterstate.mirror import ClusterMirror
from clusterstate.zkstate import mk_distributed_cluster_state

from .common import (
    BATCH,
    ClusterSpec,
    HeartbeatWriters,
    kazoo_client,
    machine_note,
    median,
    pipelined,
    populate,
    start_zookeeper,
    zk_conf,
)

# how deep each subtree's folders go: below that depth every node is a record
# (docs/contract/cluster-state.md, "ZooKeeper layout")
FOLDER_DEPTH = {
    "storms": 1,
    "assignments": 1,
    "supervisors": 1,
    "tasks": 2,
    "taskbeats": 2,
    "taskerrors": 3,
}


def raw_read(client) -> tuple[int, int]:
    """Read the whole cluster as the mirror does, raw; ``(lists, records)`` read."""
    folders = [f"/{name}" for name in FOLDER_DEPTH]
    lists = records = 0
    depth = 1
    while folders:
        listed = pipelined([(client.get_children_async, (p,), {}) for p in folders], BATCH)
        lists += len(folders)
        next_folders, data = [], []
        for path, names in zip(folders, listed, strict=True):
            is_folder = depth < FOLDER_DEPTH[path.split("/", 2)[1]]
            for name in names:
                (next_folders if is_folder else data).append(f"{path}/{name}")
        pipelined([(client.get_async, (p,), {}) for p in data], BATCH)
        records += len(data)
        folders = next_folders
        depth += 1
    return lists, records


def time_raw(connect: str, root: str) -> tuple[float, tuple[int, int]]:
    client = kazoo_client(connect, root)
    try:
        started = time.perf_counter()
        counts = raw_read(client)
        return time.perf_counter() - started, counts
    finally:
        client.stop()
        client.close()


def time_mirror(conf: dict, expect_tasks: int) -> float:
    state = mk_distributed_cluster_state(conf)
    try:
        # no poll or resync within the run
        mirror = ClusterMirror(state, heartbeat_secs=3600, resync_secs=3600)
        started = time.perf_counter()
        mirror.start(wait=600)
        elapsed = time.perf_counter() - started
        try:
            tasks = sum(len(mirror.task_ids(s)) for s in mirror.assignments())
            beats = sum(len(mirror.heartbeat_tasks(s)) for s in mirror.heartbeat_storms())
            if not mirror.connected or tasks != expect_tasks or beats != expect_tasks:
                raise RuntimeError(f"the mirror synced {tasks} tasks, {beats} heartbeats")
        finally:
            mirror.stop()
        return elapsed
    finally:
        state.close()


def run(tasks: int, repeat: int) -> dict:
    spec = ClusterSpec.for_tasks(tasks)
    server = start_zookeeper()
    try:
        root = f"/bench-cold-{tasks}"
        started = time.perf_counter()
        nodes = populate(server.connect_string, root, spec)
        with HeartbeatWriters(server.connect_string, root, spec):
            written = time.perf_counter() - started
            print(f"# {spec.describe()}", flush=True)
            print(
                f"# {nodes:,} persistent nodes + {spec.tasks + spec.supervisors:,} ephemeral "
                f"written in {written:.1f} s",
                flush=True,
            )
            conf = zk_conf(server.connect_string, root)
            time_raw(server.connect_string, root)  # warm ZooKeeper's JIT and caches
            raws, mirrors = [], []
            for i in range(repeat):
                for kind in ("raw", "mirror") if i % 2 == 0 else ("mirror", "raw"):
                    gc.collect()
                    if kind == "raw":
                        elapsed, counts = time_raw(server.connect_string, root)
                        raws.append(elapsed)
                    else:
                        mirrors.append(time_mirror(conf, spec.tasks))
                print(
                    f"run {i + 1}: raw {raws[-1]:.2f} s, mirror {mirrors[-1]:.2f} s, "
                    f"ratio {mirrors[-1] / raws[-1]:.2f}",
                    flush=True,
                )
        result = {
            "tasks": spec.tasks,
            "lists": counts[0],
            "records": counts[1],
            "raw_median": median(raws),
            "mirror_median": median(mirrors),
            "ratio": median(mirrors) / median(raws),
            "ratios": [m / r for m, r in zip(mirrors, raws, strict=True)],
        }
        return result
    finally:
        server.stop()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.cold_sync",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--tasks",
        type=int,
        nargs="+",
        default=[20000],
        help="cluster sizes (default 20000); 200 tasks a storm",
    )
    parser.add_argument("--repeat", type=int, default=5, help="runs of each (default 5)")
    args = parser.parse_args(argv)
    print(f"# {machine_note()}")
    rows = [run(n, args.repeat) for n in args.tasks]
    print()
    print(
        "| tasks | folders listed | records read | raw read (median) | mirror cold sync "
        "(median) | ratio | per-run ratios |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for r in rows:
        print(
            f"| {r['tasks']:,} | {r['lists']:,} | {r['records']:,} | {r['raw_median']:.2f} s "
            f"| {r['mirror_median']:.2f} s | {r['ratio']:.2f}x | "
            f"{', '.join(f'{x:.2f}' for x in r['ratios'])} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
