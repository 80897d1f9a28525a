"""Many sockets on ``/ws/errors/`` of one daphne, errors written at a steady rate.

Starts a ZooKeeper (or uses ``--zk``) and one daphne (in-memory channel layer,
so daphne relays itself), opens ``--sockets`` sockets, waits for every
snapshot, then writes ``--rate`` errors a second for ``--secs`` seconds, each
with a unique text. Every message on every socket is counted: lost (never
arrived), duplicated, resync snapshots (a socket that fell behind), and the
latency from just before the ZooKeeper write to arrival (one clock: the
clients run in this process). daphne's CPU and RSS are read from /proc.

With ``--daphnes N`` (N > 1), N daphnes share a Redis channel layer
(``REDIS_URL``, a ``redis-server`` started here) and one ``manage.py relay``
relays for them all; the sockets are spread evenly over the daphnes. CPU and
RSS are then the daphnes' summed and largest, and the relay's.

    .venv/bin/python -m bench.live_fanout --sockets 100 --rate 20 --secs 30
    .venv/bin/python -m bench.live_fanout --sockets 500 --rate 20 --secs 30
    .venv/bin/python -m bench.live_fanout --sockets 2000 --daphnes 4 --rate 20 --secs 30
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import tempfile
import threading
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
# the clients only pick the error's text out of a message: parsing it all costs more
# than the daphnes' sending it, with thousands of sockets in this one process
_ERROR_TEXT = re.compile(r'^\{"type":"error",.*?"error":"(fanout \d+ [0-9a-f]{6})"')


def usage(pids) -> dict:
    """CPU seconds summed, largest RSS, of ``pids``."""
    each = [live_servers.process_usage(pid) for pid in pids]
    return {
        "cpu_secs": sum(u["cpu_secs"] for u in each),
        "rss_bytes": max(u["rss_bytes"] for u in each),
    }


async def run(args, base_urls: list[str], writer, daphne_pids: list[int], relay_pid=None):
    ws_urls = [u.replace("http://", "ws://") + "/ws/errors/" for u in base_urls]
    sent_at: dict[str, float] = {}
    latencies: list[float] = []
    counts = [Counter() for _ in range(args.sockets)]
    resyncs = [0] * args.sockets
    sockets = []

    # open them a few at a time, as browsers arriving would
    for start in range(0, args.sockets, 50):
        batch = [
            connect(
                ws_urls[i % len(ws_urls)],
                origin=base_urls[i % len(base_urls)],
                open_timeout=60,
                max_queue=None,
            )
            for i in range(start, min(start + 50, args.sockets))
        ]
        sockets.extend(await asyncio.gather(*(c.__aenter__() for c in batch)))
    await asyncio.gather(*(ws.recv() for ws in sockets))  # every snapshot

    async def listen(i, ws):
        async for raw in ws:
            now = time.perf_counter()
            found = _ERROR_TEXT.search(raw)
            if found is not None:
                text = found.group(1)
                if text in sent_at:
                    counts[i][text] += 1
                    latencies.append(now - sent_at[text])
            elif json.loads(raw)["type"] == "snapshot":
                resyncs[i] += 1

    listeners = [asyncio.create_task(listen(i, ws)) for i, ws in enumerate(sockets)]
    before = usage(daphne_pids)
    relay_before = live_servers.process_usage(relay_pid) if relay_pid else None
    me_before = live_servers.process_usage(os.getpid())
    total = int(args.rate * args.secs)
    interval = 1.0 / args.rate
    peak_rss = 0
    written = threading.Event()

    def write_all() -> None:
        # its own thread: on the clients' event loop, busy with thousands of sockets, the
        # writes fell behind their schedule (15 to 19 a second of 20) and then came in bursts
        nonlocal peak_rss
        try:
            for n in range(total):
                delay = started + n * interval - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                text = f"fanout {n} {uuid.uuid4().hex[:6]}"
                sent_at[text] = time.perf_counter()
                writer.report_task_error(STORM, n % TASKS, text)
                if n % args.rate == 0:
                    peak_rss = max(peak_rss, usage(daphne_pids)["rss_bytes"])
        finally:
            written.set()  # a failed write ends the run (its trace is printed) with what came

    started = time.monotonic()
    thread = threading.Thread(target=write_all, name="bench-writer", daemon=True)
    thread.start()
    await asyncio.to_thread(written.wait)
    write_wall = time.monotonic() - started
    # let the last ones arrive
    deadline = time.monotonic() + 15
    expected = total * args.sockets
    while sum(len(c) for c in counts) < expected and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    after = usage(daphne_pids)
    relay_after = live_servers.process_usage(relay_pid) if relay_pid else None
    me_after = live_servers.process_usage(os.getpid())
    wall = time.monotonic() - started
    for t in listeners:
        t.cancel()
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)

    received = sum(len(c) for c in counts)
    duplicated = sum(v - 1 for c in counts for v in c.values() if v > 1)
    ms = [v * 1000 for v in latencies]
    relay = {}
    if relay_pid:
        relay = {
            "relay_cpu_percent": round(
                100 * (relay_after["cpu_secs"] - relay_before["cpu_secs"]) / wall, 1
            ),
            "relay_rss_mb": round(relay_after["rss_bytes"] / 2**20, 1),
        }
    return {
        "sockets": args.sockets,
        "daphnes": len(daphne_pids),
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
        **relay,
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
    parser.add_argument(
        "--daphnes", type=int, default=1, help="daphnes; more than one: behind Redis (default 1)"
    )
    args = parser.parse_args(argv)

    folder = Path(tempfile.mkdtemp(prefix="stormui-fanout-bench-"))
    zk, connect_string, root, conf = bench_cluster(args.zk, folder, "bench-fanout")
    procs = []
    extra = {}
    if args.daphnes > 1:
        redis, redis_url = live_servers.start_redis(folder)
        procs.append(redis)
        extra["REDIS_URL"] = redis_url
    env = live_servers.server_env(connect_string, root, folder / "db.sqlite3", **extra)
    state = mk_distributed_cluster_state(conf)
    writer = mk_storm_cluster_state(state)
    try:
        live_servers.migrate(env)
        relay = None
        if args.daphnes > 1:
            relay = live_servers.start_relay(env, folder)
            procs.append(relay)
        daphnes, urls = [], []
        for n in range(args.daphnes):
            daphne, url = live_servers.start_daphne(env, folder, name=f"daphne-{n}")
            procs.append(daphne)
            daphnes.append(daphne.pid)
            urls.append(url)
        result = asyncio.run(
            run(args, urls, writer, daphnes, relay.pid if relay is not None else None)
        )
        print(json.dumps(result, indent=2))
    finally:
        for proc in reversed(procs):
            live_servers.stop(proc)
        writer.disconnect()
        state.close()
        if zk is not None:
            zk.stop()


if __name__ == "__main__":
    main()
