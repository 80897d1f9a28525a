"""A stuck socket reader on a real daphne while errors stream at ~20/s and three other
clients read ``/ws/errors/`` normally.

The stuck client is a raw TCP socket with a 4 KB receive buffer that does the websocket
handshake and then never reads again. Pass criteria: the other clients' median latency
with it stays close to their median without it, daphne's resident memory stays bounded,
and the stuck socket is eventually closed by the server.

Daphne (Twisted) never blocks a send: it buffers what the peer does not read. So the
consumer's outbox never fills and its send timeout never fires for a stuck peer; what
closes one is daphne's keepalive (a ping after ``--ping-interval`` 20 s of silence from
the peer, then ``--ping-timeout`` 30 s for the pong). The dashboard runs daphne with those
defaults, and so does this test.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import statistics
import threading
import time
import uuid

import pytest

from bench import live_servers
from clusterstate import Assignment, StormBase, TaskInfo
from tests.faults.conftest import report
from tests.helpers import wait_for

websockets_sync = pytest.importorskip("websockets.sync.client")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

STORM = "storm-slow-1-1"
TASKS = (1, 2, 3, 4, 5)
RATE = 20.0  # errors a second
PHASE_SECS = 10.0
READERS = 3
#: daphne's defaults: ping after 20 s of silence, close 30 s later without a pong
CLOSED_WITHIN = 20 + 30 + 15
PADDING = "".join(f"\tat com.example.Deep.frame{i}(Deep.java:{i})\n" for i in range(40))


class ErrorStream(threading.Thread):
    """Reports an error every 1/RATE s; each names its number and when it was written."""

    def __init__(self, storm_state):
        super().__init__(name="error-stream", daemon=True)
        self.storm_state = storm_state
        self.stopping = threading.Event()
        self.written: list[int] = []

    def run(self) -> None:
        n = 0
        next_at = time.monotonic()
        while not self.stopping.is_set():
            text = f"slow-socket {n:06d} {time.time():.6f}\n{PADDING}"
            try:
                self.storm_state.report_task_error(STORM, TASKS[n % len(TASKS)], text)
                self.written.append(n)
            except Exception:  # a write lost on a loaded machine is no failure of the socket
                pass
            n += 1
            next_at += 1 / RATE
            self.stopping.wait(max(0.0, next_at - time.monotonic()))


class Reader(threading.Thread):
    """A normal client: reads every message, timing each error from when it was written."""

    def __init__(self, url: str, origin: str):
        super().__init__(name="ws-reader", daemon=True)
        self.ws = websockets_sync.connect(url, origin=origin, open_timeout=30)
        first = json.loads(self.ws.recv(timeout=30))
        assert first["type"] == "snapshot"
        self.received: list[tuple[int, float, float]] = []  # (number, written, received)
        self.other: list[str] = []
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
            else:
                self.other.append(message["type"])

    def latencies(self, since: float, until: float) -> list[float]:
        return [r - w for _n, w, r in self.received if since <= w < until]

    def close(self) -> None:
        self.stopping.set()
        self.join(10)
        self.ws.close()


def stuck_client(port: int) -> socket.socket:
    """A websocket client that completes the handshake and then never reads."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: small window
    sock.settimeout(30)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            "GET /ws/errors/ HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Origin: http://127.0.0.1:{port}\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)  # byte by byte: leave every frame unread
        assert chunk, "closed during the handshake"
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
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


def p50(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def test_stuck_reader_does_not_hold_up_the_others(
    own_zk, fault_conf, sessions, tmp_path, server_database_factory
):
    writer = sessions.storm()
    for t in TASKS:
        writer.set_task(STORM, t, TaskInfo("bolt-s", "bolt"))
    writer.set_assignment(
        STORM,
        Assignment("/x", {"n1": "host-1"}, {t: ("n1", 6700) for t in TASKS}, {t: 1 for t in TASKS}),
    )
    writer.activate_storm(STORM, StormBase("slow", int(time.time())))
    env = live_servers.server_env(
        own_zk.connect_string, fault_conf["storm.zookeeper.root"], server_database_factory(tmp_path)
    )
    live_servers.migrate(env)
    daphne = stream = stuck = None
    readers: list[Reader] = []
    try:
        daphne, base_url = live_servers.start_daphne(env, tmp_path, name=f"daphne-{uuid.uuid4()}")
        port = int(base_url.rsplit(":", 1)[1])
        ws_url = base_url.replace("http://", "ws://") + "/ws/errors/"
        readers = [Reader(ws_url, base_url) for _ in range(READERS)]
        for reader in readers:
            reader.start()
        stream = ErrorStream(sessions.storm())
        stream.start()

        # phase A: without the stuck reader
        time.sleep(1.0)  # let the stream settle into its pace (nothing to wait on)
        a_from = time.time()
        time.sleep(PHASE_SECS)
        rss_before = live_servers.process_usage(daphne.pid)["rss_bytes"]

        # phase B: with it
        stuck = stuck_client(port)
        stuck_at = time.monotonic()
        b_from = time.time()
        time.sleep(PHASE_SECS)
        b_until = time.time()
        rss = [live_servers.process_usage(daphne.pid)["rss_bytes"]]
        queued = [queued_bytes(port, stuck.getsockname()[1])]

        # until the server closes it, the others keep reading and memory is watched
        def closed():
            rss.append(live_servers.process_usage(daphne.pid)["rss_bytes"])
            if socket_reset(stuck):
                return True
            queued.append(queued_bytes(port, stuck.getsockname()[1]))
            return False

        wait_for(closed, timeout=CLOSED_WITHIN, interval=0.5, message="stuck socket never closed")
        closed_after = time.monotonic() - stuck_at
        stream.stopping.set()
        stream.join(10)
        time.sleep(1.0)  # the last errors in flight (nothing to wait on but the clock)

        lat_a = [x for r in readers for x in r.latencies(a_from, b_from)]
        lat_b = [x for r in readers for x in r.latencies(b_from, b_until)]
        numbers = [[n for n, _w, _r in r.received] for r in readers]
        report(
            "slow_socket",
            written=len(stream.written),
            per_reader=[len(n) for n in numbers],
            p50_without_ms=p50(lat_a) * 1000,
            p50_with_ms=p50(lat_b) * 1000,
            p99_without_ms=statistics.quantiles(lat_a, n=100)[98] * 1000,
            p99_with_ms=statistics.quantiles(lat_b, n=100)[98] * 1000,
            stuck_closed_after=closed_after,
            daphne_rss_before_mb=rss_before / 2**20,
            daphne_rss_max_mb=max(rss) / 2**20,
            kernel_queued_max_kb=max(queued) / 1024,
        )
        assert len(lat_a) >= PHASE_SECS * RATE * READERS * 0.5, len(lat_a)
        assert len(lat_b) >= PHASE_SECS * RATE * READERS * 0.5, len(lat_b)
        # every normal reader got the same errors, each task's in the order written (the
        # mirror may report two tasks' errors written 50 ms apart either way round)
        assert all(n == numbers[0] for n in numbers)
        for t in range(len(TASKS)):
            mine = [n for n in numbers[0] if n % len(TASKS) == t]
            assert mine == sorted(mine), t
        assert len(numbers[0]) >= 0.95 * len(stream.written)
        # the goal: their latency is not held up by the stuck one (generous, a loaded machine)
        assert p50(lat_b) <= max(2 * p50(lat_a), p50(lat_a) + 0.1), (p50(lat_a), p50(lat_b))
        assert max(rss) - rss_before <= 64 * 2**20
        assert closed_after <= CLOSED_WITHIN
    finally:
        if stream is not None:
            stream.stopping.set()
            stream.join(10)
        for reader in readers:
            reader.close()
        if stuck is not None:
            stuck.close()
        live_servers.stop(daphne)
