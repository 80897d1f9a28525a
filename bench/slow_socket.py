"""How much one stuck socket reader slows the others on ``/ws/errors/`` of one daphne.

Starts a ZooKeeper (or uses ``--zk``) and one daphne (in-memory channel layer), opens
``--readers`` normal sockets, and writes ``--rate`` errors a second (each about 2 KB, a
Java trace's worth). Phase A, ``--secs`` seconds: only the normal readers. Phase B, as
long: with a stuck client too, a raw TCP socket with a 4 KB receive buffer that does the
websocket handshake and then never reads. Reported, per phase: the readers' latency from
the ZooKeeper write to arrival (one clock: the clients run in this process), p50 and p99,
and how many errors they received; daphne's RSS before and at most; the bytes queued in
the kernel for the stuck connection; with ``--wait-close``, how long daphne took to close
the stuck socket (its keepalive: a ping after 20 s of silence, a close 30 s later).

Goal: the readers' p50 with the stuck one within 2x (or 100 ms) of their p50 without it,
their throughput unchanged, daphne's RSS growth under 64 MB.

    .venv/bin/python -m bench.slow_socket --readers 3 --rate 20 --secs 10 --wait-close
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path

from websockets.sync.client import connect

from bench import live_servers
from bench.common import bench_cluster
from clusterstate import (
    Assignment,
    StormBase,
    TaskInfo,
    mk_distributed_cluster_state,
    mk_storm_cluster_state,
)

STORM = "bench-slow-1-1"
TASKS = tuple(range(1, 51))  # a task keeps its newest ten errors: spread them out
#: what makes an error about 2 KB: a Java trace's frames
PADDING = "".join(f"\tat com.example.Deep.frame{i}(Deep.java:{i})\n" for i in range(40))


def stuck_client(port: int, path: str = "/ws/errors/") -> socket.socket:
    """A websocket client that completes the handshake and then never reads."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: small window
    sock.settimeout(120)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET {path} HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Origin: http://127.0.0.1:{port}\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)  # byte by byte: leave every frame unread
        if not chunk:
            raise RuntimeError(f"closed during the handshake: {head!r}")
        head += chunk
    if not head.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(f"handshake refused: {head!r}")
    return sock


def queued_bytes(local_port: int, remote_port: int) -> int:
    """Bytes queued in the kernel for a loopback TCP connection, both ends: the sender's
    unacknowledged send queue plus the receiver's unread receive queue (``/proc/net/tcp``)."""
    total = 0
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            local, remote = (int(a.split(":")[1], 16) for a in fields[1:3])
            if {local, remote} == {local_port, remote_port}:
                tx, rx = (int(x, 16) for x in fields[4].split(":"))
                total += tx + rx
    return total


def socket_reset(sock: socket.socket) -> bool:
    """True once the server has aborted the connection (without reading what it sent)."""
    return sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0


class ErrorStream(threading.Thread):
    """Reports an error every 1/rate s; each names its number and when it was written."""

    def __init__(self, storm_state, rate: float):
        super().__init__(name="error-stream", daemon=True)
        self.storm_state = storm_state
        self.rate = rate
        self.stopping = threading.Event()
        self.written = 0

    def run(self) -> None:
        n = 0
        next_at = time.monotonic()
        while not self.stopping.is_set():
            text = f"slow-socket {n:06d} {time.time():.6f}\n{PADDING}"
            self.storm_state.report_task_error(STORM, TASKS[n % len(TASKS)], text)
            self.written += 1
            n += 1
            next_at += 1 / self.rate
            self.stopping.wait(max(0.0, next_at - time.monotonic()))


class Reader(threading.Thread):
    """A normal client: reads every message, timing each error from when it was written."""

    def __init__(self, url: str, origin: str):
        super().__init__(name="ws-reader", daemon=True)
        self.ws = connect(url, origin=origin, open_timeout=60)
        first = json.loads(self.ws.recv(timeout=60))
        if first["type"] != "snapshot":
            raise RuntimeError(f"expected a snapshot first, got {first['type']}")
        self.received: list[tuple[int, float, float]] = []  # (number, written, received)
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                message = json.loads(self.ws.recv(timeout=0.5))
            except TimeoutError:
                continue
            except Exception:
                return
            now = time.time()
            if message["type"] == "error" and message["error"].startswith("slow-socket "):
                _tag, number, written = message["error"].split("\n", 1)[0].split()
                self.received.append((int(number), float(written), now))

    def latencies(self, since: float, until: float) -> list[float]:
        return [r - w for _n, w, r in self.received if since <= w < until]

    def close(self) -> None:
        self.stopping.set()
        self.join(10)
        self.ws.close()


def _ms(values: list[float], q: int) -> float | None:
    if len(values) < 2:
        return None
    return round(statistics.quantiles(values, n=100)[q - 1] * 1000, 1)


def measure(args, base_url: str, storm_state, daphne_pid: int) -> dict:
    port = int(base_url.rsplit(":", 1)[1])
    ws_url = base_url.replace("http://", "ws://") + "/ws/errors/"
    readers = [Reader(ws_url, base_url) for _ in range(args.readers)]
    stream = ErrorStream(storm_state, args.rate)
    stuck = None
    try:
        for reader in readers:
            reader.start()
        stream.start()
        time.sleep(1.0)  # the stream settles into its pace
        a_from = time.time()
        time.sleep(args.secs)
        rss_before = live_servers.process_usage(daphne_pid)["rss_bytes"]
        stuck = stuck_client(port)
        stuck_at = time.monotonic()
        b_from = time.time()
        time.sleep(args.secs)
        b_until = time.time()
        rss = [live_servers.process_usage(daphne_pid)["rss_bytes"]]
        queued = [queued_bytes(port, stuck.getsockname()[1])]
        closed_after = None
        if args.wait_close:
            deadline = time.monotonic() + 20 + 30 + 60
            while time.monotonic() < deadline:
                rss.append(live_servers.process_usage(daphne_pid)["rss_bytes"])
                if socket_reset(stuck):
                    closed_after = round(time.monotonic() - stuck_at, 1)
                    break
                queued.append(queued_bytes(port, stuck.getsockname()[1]))
                time.sleep(0.5)
        stream.stopping.set()
        stream.join(30)
        time.sleep(1.0)  # the last errors in flight
        lat_a = [x for r in readers for x in r.latencies(a_from, b_from)]
        lat_b = [x for r in readers for x in r.latencies(b_from, b_until)]
        return {
            "readers": args.readers,
            "rate_per_sec": args.rate,
            "phase_secs": args.secs,
            "written": stream.written,
            "per_reader": [len(r.received) for r in readers],
            "received_without": len(lat_a),
            "received_with": len(lat_b),
            "p50_without_ms": _ms(lat_a, 50),
            "p50_with_ms": _ms(lat_b, 50),
            "p99_without_ms": _ms(lat_a, 99),
            "p99_with_ms": _ms(lat_b, 99),
            "stuck_closed_after_secs": closed_after,
            "daphne_rss_before_mb": round(rss_before / 2**20, 1),
            "daphne_rss_max_mb": round(max(rss) / 2**20, 1),
            "kernel_queued_max_kb": round(max(queued) / 1024, 1),
        }
    finally:
        stream.stopping.set()
        for reader in readers:
            reader.close()
        if stuck is not None:
            stuck.close()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--zk", help="host:port of a running ZooKeeper (default: start one)")
    parser.add_argument("--readers", type=int, default=3)
    parser.add_argument("--rate", type=float, default=20, help="errors a second (default 20)")
    parser.add_argument("--secs", type=float, default=10, help="seconds a phase (default 10)")
    parser.add_argument(
        "--wait-close", action="store_true", help="also wait for daphne to close the stuck one"
    )
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="stormui-slow-socket-bench-"))
    zk, connect_string, root, conf = bench_cluster(args.zk, folder, "bench-slow")
    env = live_servers.server_env(connect_string, root, folder / "db.sqlite3")
    state = mk_distributed_cluster_state(conf)
    writer = mk_storm_cluster_state(state)
    daphne = None
    try:
        for t in TASKS:
            writer.set_task(STORM, t, TaskInfo("bolt-s", "bolt"))
        writer.set_assignment(
            STORM,
            Assignment(
                "/x", {"n1": "host-1"}, {t: ("n1", 6700) for t in TASKS}, {t: 1 for t in TASKS}
            ),
        )
        writer.activate_storm(STORM, StormBase("slow", int(time.time())))
        live_servers.migrate(env)
        daphne, url = live_servers.start_daphne(env, folder)
        print(json.dumps(measure(args, url, writer, daphne.pid), indent=2))
    finally:
        live_servers.stop(daphne)
        writer.disconnect()
        state.close()
        if zk is not None:
            zk.stop()


if __name__ == "__main__":
    main()
