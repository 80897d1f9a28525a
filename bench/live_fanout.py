"""Many sockets on ``/ws/errors/`` of one daphne, errors written at a steady rate.

Starts a ZooKeeper (or uses ``--zk``) and one daphne (in-memory channel layer,
so daphne relays itself), opens ``--sockets`` sockets, waits for every
snapshot, then writes ``--rate`` errors a second for ``--secs`` seconds, each
with a unique text. Every message on every socket is counted: lost (never
arrived), duplicated, resync snapshots (a socket that fell behind), and the
latency from just before the ZooKeeper write to arrival (one clock: the
clients run in this process). daphne's CPU and RSS are read from /proc.

    .venv/bin/python -m bench.live_fanout --sockets 100 --rate 20 --secs 30
    .venv/bin/python -m bench.live_fanout --sockets 500 --rate 20 --secs 30
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

from websockets.asyncio.client import connect

from bench import live_servers
from bench.common import bench_cluster, percentile
from clusterstate import mk_distributed_cluster_state, mk_storm_cluster_state

STORM = "bench-fanout-1-1"
TASKS = 50  # a task keeps its newest ten errors: spread them out


async def run(args, base_url: str, writer, daphne_pid: int) -> dict:
    ws_url = base_url.replace("http://", "ws://") + "/ws/errors/"
    sent_at: dict[str, float] = {}
    latencies: list[float] = []
    counts = [Counter() for _ in range(args.sockets)]
    resyncs = [0] * args.sockets
    sockets = []

    # open them a few at a time, as browsers arriving would
    for start in range(0, args.sockets, 50):
        batch = [
            connect(ws_url, origin=base_url, open_timeout=60, max_queue=None)
            for _ in range(start, min(start + 50, args.sockets))
        ]
        sockets.extend(await asyncio.gather(*(c.__aenter__() for c in batch)))
    await asyncio.gather(*(ws.recv() for ws in sockets))  # every snapshot

    async def listen(i, ws):
        async for raw in ws:
            now = time.perf_counter()
            m = json.loads(raw)
            if m["type"] == "error":
                text = m["error"]
                if text in sent_at:
                    counts[i][text] += 1
                    latencies.append(now - sent_at[text])
            elif m["type"] == "snapshot":
                resyncs[i] += 1

    listeners = [asyncio.create_task(listen(i, ws)) for i, ws in enumerate(sockets)]
    before = live_servers.process_usage(daphne_pid)
    me_before = live_servers.process_usage(os.getpid())
    started = time.monotonic()
    total = int(args.rate * args.secs)
    interval = 1.0 / args.rate
    peak_rss = 0
    for n in range(total):
        due = started + n * interval
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        text = f"fanout {n} {uuid.uuid4().hex[:6]}"
        sent_at[text] = time.perf_counter()
        await asyncio.to_thread(writer.report_task_error, STORM, n % TASKS, text)
        if n % args.rate == 0:
            peak_rss = max(peak_rss, live_servers.process_usage(daphne_pid)["rss_bytes"])
    write_wall = time.monotonic() - started
    # let the last ones arrive
    deadline = time.monotonic() + 15
    expected = total * args.sockets
    while sum(len(c) for c in counts) < expected and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    after = live_servers.process_usage(daphne_pid)
    me_after = live_servers.process_usage(os.getpid())
    wall = time.monotonic() - started
    for t in listeners:
        t.cancel()
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)

    received = sum(len(c) for c in counts)
    duplicated = sum(v - 1 for c in counts for v in c.values() if v > 1)
    ms = [v * 1000 for v in latencies]
    return {
        "sockets": args.sockets,
        "errors_written": total,
        "rate_per_sec": args.rate,
        "achieved_write_rate": round(total / write_wall, 1),
        "messages_expected": expected,
        "messages_received": received,
        "lost": expected - received,
        "duplicated": duplicated,
        "sockets_resynced": sum(1 for r in resyncs if r),
        "latency_p50_ms": round(percentile(ms, 50), 1),
        "latency_p99_ms": round(percentile(ms, 99), 1),
        "latency_max_ms": round(max(ms), 1) if ms else None,
        "daphne_cpu_percent": round(100 * (after["cpu_secs"] - before["cpu_secs"]) / wall, 1),
        "daphne_rss_mb": round(max(peak_rss, after["rss_bytes"]) / 2**20, 1),
        # the clients share the machine: when they are busy, latency is partly theirs
        "clients_cpu_percent": round(
            100 * (me_after["cpu_secs"] - me_before["cpu_secs"]) / wall, 1
        ),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--zk", help="host:port of a running ZooKeeper (default: start one)")
    parser.add_argument("--sockets", type=int, default=100)
    parser.add_argument("--rate", type=int, default=20, help="errors a second (default 20)")
    parser.add_argument("--secs", type=float, default=30, help="seconds of writing (default 30)")
    args = parser.parse_args(argv)

    folder = Path(tempfile.mkdtemp(prefix="stormui-fanout-bench-"))
    zk, connect_string, root, conf = bench_cluster(args.zk, folder, "bench-fanout")
    env = live_servers.server_env(connect_string, root, folder / "db.sqlite3")
    state = mk_distributed_cluster_state(conf)
    writer = mk_storm_cluster_state(state)
    daphne = None
    try:
        live_servers.migrate(env)
        daphne, url = live_servers.start_daphne(env, folder)
        result = asyncio.run(run(args, url, writer, daphne.pid))
        print(json.dumps(result, indent=2))
    finally:
        live_servers.stop(daphne)
        writer.disconnect()
        state.close()
        if zk is not None:
            zk.stop()


if __name__ == "__main__":
    main()
