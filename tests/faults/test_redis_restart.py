"""Redis killed and started again on the same port under two daphnes and the relay.

Two daphnes serve the known cluster behind one Redis (``REDIS_URL``); the elected one relays
(:func:`start_relaying`). Each daphne has a socket open on the error feed, the cluster's
page and a storm's page. A writer keeps reporting errors and switching a storm on and off
the whole time. Redis is killed (SIGKILL: no goodbye to anyone) while the writer goes on,
then started again, empty, on the same port. Pass criteria, on events:

- while Redis is away the daphnes notice (``stormui_channel_layer_up`` 0) and every page and
  the API keep answering 200 (the pages never needed Redis); no socket is closed;
- once Redis is back every socket receives a fresh snapshot, the error feed's holding the
  last error written while Redis was away (nothing the outage swallowed stays missing), and
  each daphne counts the reconnect (``stormui_channel_layer_reconnects_total``);
- changes flow again: the sockets end showing the cluster as ZooKeeper has it;
- no error reaches a socket twice; no daphne crashed or closed a socket with a trace.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import uuid

import pytest
from websockets.exceptions import InvalidStatus

from bench import live_servers
from tests.faults.conftest import Poller, Writer, metric, report
from tests.helpers import ReadSocket, delete_roots, storm_conf, wait_for
from tests.stormui.conftest import HEALTHY, PAUSED, write_known_cluster

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

#: errors written while Redis is away before it comes back
DURING = 20


def start_relaying(urls: list[str]) -> list:
    """One of the daphnes relays ZooKeeper's changes to every daphne once elected leader, as
    in ``tests/stormui/test_live_redis.py``: wait for the election; no extra process to stop."""
    live_servers.wait_leader(urls)
    return []


class Socket(ReadSocket):
    """A page's socket; ``mark`` is where a phase of the test began, in ``messages``."""

    def __init__(self, base_url: str, path: str):
        super().__init__(base_url, path)
        self.mark = 0


def paused_status(message: dict) -> str | None:
    """The paused storm's status in a cluster message (snapshot or update)."""
    return {s["id"]: s["status"] for s in message.get("storms", [])}.get(PAUSED)


def test_redis_restarted_under_load(zk_server, tmp_path, server_database_factory):
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed (apt-get install redis-server)")
    root = f"/t/{uuid.uuid4().hex}"
    conf = storm_conf(zk_server, root)
    known = write_known_cluster(conf)
    procs: list = []
    redis = None
    writer = poller = None
    sockets: list[Socket] = []
    try:
        redis, redis_url = live_servers.start_redis(tmp_path)
        port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
        env = live_servers.server_env(
            zk_server.connect_string, root, server_database_factory(tmp_path), REDIS_URL=redis_url
        )
        live_servers.migrate(env)
        daphnes, urls = [], []
        for i in range(2):
            proc, url = live_servers.start_daphne(env, tmp_path, name=f"daphne-{i}")
            daphnes.append(proc)
            urls.append(url)
        procs += daphnes
        procs += start_relaying(urls)

        for url in urls:
            for path in ("/ws/errors/", "/ws/cluster/", f"/ws/storms/{HEALTHY}/"):
                sockets.append(Socket(url, path))
        feeds = [s for s in sockets if "/ws/errors/" in s.name]
        clusters = [s for s in sockets if "/ws/cluster/" in s.name]
        wait_for(
            lambda: all(s.snapshots(0) for s in sockets),
            message="a socket had no first snapshot",
        )
        writer = Writer(conf)
        poller = Poller(urls)
        writer.start()
        poller.start()
        # the relay reaches both daphnes' feeds
        wait_for(lambda: all(f.errors() for f in feeds), message="no error reached a feed before")

        # -- the outage --------------------------------------------------------------
        redis.kill()
        redis.wait()
        killed_at = len(writer.written)
        wait_for(
            lambda: all(metric(u, "stormui_channel_layer_up") == 0 for u in urls),
            message="a daphne never noticed that Redis was gone",
        )
        # a socket opened meanwhile is refused (the page tries again), without a trace
        with pytest.raises(InvalidStatus):
            Socket(urls[0], "/ws/errors/")
        rounds_before = poller.rounds
        # the writer goes on, the pages keep answering (two whole rounds while Redis is away)
        wait_for(
            lambda: (
                len(writer.written) >= killed_at + DURING and poller.rounds >= rounds_before + 2
            ),
            message="the writer or the pages stalled while Redis was away",
        )
        last_during = writer.written[-1]
        assert not poller.failures, poller.failures
        assert all(s.closed is None for s in sockets), [(s.name, s.closed) for s in sockets]
        for socket in sockets:
            socket.mark = len(socket.messages)
        redis, _ = live_servers.start_redis(tmp_path, port=port, name="redis-again")
        back_at = len(writer.written)

        # -- every socket resyncs ----------------------------------------------------
        wait_for(
            lambda: all(s.snapshots(s.mark) for s in sockets),
            message="a socket never resynced after Redis came back: "
            + ", ".join(s.name for s in sockets if not s.snapshots(s.mark)),
        )
        for feed in feeds:
            resync_at = feed.snapshots(feed.mark)[0]
            resync = feed.messages[resync_at]
            assert resync.get("resync") is True
            # what the outage swallowed is in the snapshot, or comes after it
            wait_for(
                lambda feed=feed, resync=resync, at=resync_at: (
                    last_during in json.dumps(resync["html"]) or last_during in feed.errors(at)
                ),
                message="an error written while Redis was away never reached a feed",
            )
        for url in urls:
            wait_for(
                lambda url=url: (
                    metric(url, "stormui_channel_layer_reconnects_total") >= 1
                    and metric(url, "stormui_channel_layer_up") == 1
                ),
                message="a daphne did not count the reconnect",
            )
        # changes flow again: an error written after the resyncs reaches every feed (those
        # sent before a daphne's sockets joined their groups again are in its snapshots)
        resynced_at = len(writer.written)
        wait_for(lambda: len(writer.written) > resynced_at)
        after = writer.written[resynced_at]
        wait_for(
            lambda: all(after in f.errors() for f in feeds),
            message="errors stopped reaching the feeds after Redis came back",
        )

        # -- the end: the sockets show what ZooKeeper holds --------------------------
        writer.stop()
        poller.stop()
        writer.switch_paused()
        final = "the last error"
        writer.storm.report_task_error(HEALTHY, 3, final)
        status = "ACTIVE" if writer.paused_active else "INACTIVE"
        wait_for(
            lambda: all(final in f.errors() for f in feeds),
            message="the last error never reached a feed",
        )

        def cluster_as_written(socket) -> bool:
            latest = [m for m in socket.messages if m["type"] in ("snapshot", "cluster")][-1]
            return paused_status(latest) == status

        wait_for(
            lambda: all(cluster_as_written(s) for s in clusters),
            message="a cluster socket does not show the paused storm as written",
        )

        # nothing twice, nobody crashed, no socket closed
        for socket in feeds:
            texts = socket.errors()
            assert len(texts) == len(set(texts)), f"{socket.name} got an error twice"
        assert not poller.failures, poller.failures
        assert all(s.closed is None for s in sockets), [(s.name, s.closed) for s in sockets]
        assert all(proc.poll() is None for proc in procs), [p.args for p in procs]
        for i in range(2):
            log_text = (tmp_path / f"daphne-{i}.log").read_text(errors="replace")
            assert "Exception inside application" not in log_text, log_text[-3000:]
        report(
            "redis_restart",
            written_while_away=back_at - killed_at,
            page_rounds=poller.rounds,
            messages=sum(len(s.messages) for s in sockets),
            reconnects=[metric(u, "stormui_channel_layer_reconnects_total") for u in urls],
        )
    finally:
        for socket in sockets:
            with contextlib.suppress(Exception):
                socket.close()
        if poller is not None:
            poller.stop()
        if writer is not None:
            with contextlib.suppress(Exception):
                writer.stop()
            writer.close()
        for proc in reversed(procs):
            live_servers.stop(proc)
        if redis is not None:
            live_servers.stop(redis)
        known.writer.disconnect()
        known.writer.cluster_state.close()
        delete_roots(conf, root)
