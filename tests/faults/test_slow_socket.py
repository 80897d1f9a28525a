"""A stuck socket reader on a real daphne while errors stream in and three other clients
read ``/ws/errors/`` normally.

The stuck client is a raw TCP socket with a 4 KB receive buffer that does the websocket
handshake and then never reads again. Pass criteria, on events: every other client
receives every error, in the same order, while the stuck one still holds what the server
sent it unread; daphne's resident memory stays bounded meanwhile; and the stuck socket is
eventually closed by the server. How much the stuck one slows the others (latency and
throughput with it and without it) is measured by ``bench/slow_socket.py``.

Daphne (Twisted) never blocks a send: it buffers what the peer does not read. So the
consumer's outbox never fills and its send timeout never fires for a stuck peer; what
closes one is daphne's keepalive (a ping after ``--ping-interval`` 20 s of silence from
the peer, then ``--ping-timeout`` 30 s for the pong). The dashboard runs daphne with those
defaults, and so does this test.
"""

from __future__ import annotations

import json
import threading
import time
import uuid

import pytest
from websockets.sync.client import connect

from bench import live_servers
from bench.slow_socket import PADDING, queued_bytes, socket_reset, stuck_client
from clusterstate import Assignment, StormBase, TaskInfo
from tests.faults.conftest import report
from tests.helpers import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]

STORM = "storm-slow-1-1"
#: enough tasks that none is trimmed to its newest ten: every error reaches every reader
TASKS = tuple(range(1, 51))
ERRORS = 300  # about 0.5 MB of frames: more than the kernel buffers for the stuck peer
READERS = 3
#: daphne's keepalive: a ping after 20 s of silence, a close 30 s later without a pong
KEEPALIVE_SECS = 20 + 30
#: a wait longer than this is stuck, however loaded the machine (seconds)
STUCK_SECS = 120


class Reader(threading.Thread):
    """A normal client: reads every message, keeps the numbers of the errors in order."""

    def __init__(self, url: str, origin: str):
        super().__init__(name="ws-reader", daemon=True)
        self.ws = connect(url, origin=origin, open_timeout=STUCK_SECS, legacy=True)
        first = json.loads(self.ws.recv(timeout=STUCK_SECS))
        assert first["type"] == "snapshot"
        self.received: list[int] = []
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
            if message["type"] == "error" and message["error"].startswith("slow-socket "):
                self.received.append(int(message["error"].split("\n", 1)[0].split()[1]))
            else:
                self.other.append(message["type"])

    def close(self) -> None:
        self.stopping.set()
        self.join(10)
        self.ws.close()


def test_stuck_reader_does_not_hold_up_the_others(own_zk, fault_conf, sessions, tmp_path):
    writer = sessions.storm()
    for t in TASKS:
        writer.set_task(STORM, t, TaskInfo("bolt-s", "bolt"))
    writer.set_assignment(
        STORM,
        Assignment("/x", {"n1": "host-1"}, {t: ("n1", 6700) for t in TASKS}, {t: 1 for t in TASKS}),
    )
    writer.activate_storm(STORM, StormBase("slow", int(time.time())))
    env = live_servers.server_env(
        own_zk.connect_string, fault_conf["storm.zookeeper.root"], tmp_path / "db.sqlite3"
    )
    live_servers.migrate(env)
    daphne = stuck = None
    readers: list[Reader] = []
    try:
        daphne, base_url = live_servers.start_daphne(env, tmp_path, name=f"daphne-{uuid.uuid4()}")
        port = int(base_url.rsplit(":", 1)[1])
        ws_url = base_url.replace("http://", "ws://") + "/ws/errors/"
        readers = [Reader(ws_url, base_url) for _ in range(READERS)]
        for reader in readers:
            reader.start()
        stuck = stuck_client(port)
        rss_before = live_servers.process_usage(daphne.pid)["rss_bytes"]

        # every error, each task's in the order written, to every reader; none is trimmed
        # before the dashboard reads it (at most six a task)
        for n in range(ERRORS):
            writer.report_task_error(
                STORM, TASKS[n % len(TASKS)], f"slow-socket {n:06d}\n{PADDING}"
            )
        wait_for(
            lambda: all(len(r.received) >= ERRORS for r in readers),
            timeout=STUCK_SECS,
            interval=0.1,
            message="the readers never got every error",
        )
        # ... while the stuck one had not read them: the server sent it frames that are
        # still queued, and has not closed it (so the readers did not wait for that)
        stuck_queued = queued_bytes(port, stuck.getsockname()[1])
        assert stuck_queued > 0, "nothing was sent to the stuck socket"
        assert not socket_reset(stuck), "the stuck socket was closed before the readers were fed"
        rss = [live_servers.process_usage(daphne.pid)["rss_bytes"]]

        numbers = [list(r.received) for r in readers]
        assert sorted(numbers[0]) == list(range(ERRORS))  # each once
        assert all(n == numbers[0] for n in numbers)  # the same, in the same order
        for t in range(len(TASKS)):
            mine = [n for n in numbers[0] if n % len(TASKS) == t]
            assert mine == sorted(mine), t

        # the server closes the stuck socket in the end; memory stays bounded meanwhile
        def closed():
            rss.append(live_servers.process_usage(daphne.pid)["rss_bytes"])
            return socket_reset(stuck)

        wait_for(
            closed,
            timeout=KEEPALIVE_SECS + STUCK_SECS,
            interval=0.5,
            message="the stuck socket was never closed",
        )
        report(
            "slow_socket",
            per_reader=[len(n) for n in numbers],
            other_messages=[r.other for r in readers],
            stuck_queued_kb=stuck_queued / 1024,
            daphne_rss_before_mb=rss_before / 2**20,
            daphne_rss_max_mb=max(rss) / 2**20,
        )
        assert max(rss) - rss_before <= 64 * 2**20
    finally:
        for reader in readers:
            reader.close()
        if stuck is not None:
            stuck.close()
        live_servers.stop(daphne)
