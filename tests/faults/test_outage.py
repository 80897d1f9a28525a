"""ZooKeeper stopped and restarted under a running simulator: once at once, once after twice
the session timeout. The mirror and the dashboard must say so, keep serving what they knew,
and once ZooKeeper is back the mirror must equal a fresh read, say it is connected again, and
changes must flow. How soon each happens is reported here (``pytest -s``) and measured by
``bench/outage.py``; the waits are bounded only to name what is stuck."""

from __future__ import annotations

import time
import uuid

import pytest

from clusterstate import mk_distributed_cluster_state, mk_storm_cluster_state
from clusterstate.mirror import ClusterMirror
from clusterstate.protocol import LOST
from stormui.source import get_source, reset_source
from tests.clusterstate.mirror_helpers import ChangeLog, mirror_diff
from tests.faults.conftest import SESSION_TIMEOUT_MS, fault_simulator, report
from tests.helpers import Recorder, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db, pytest.mark.timeout(600)]

#: a wait longer than this is stuck, however loaded the machine (seconds)
STUCK_SECS = 90.0


def api_connected(client) -> bool:
    response = client.get("/api/v1/cluster/summary")
    assert response.status_code == 200, response.content
    return response.json()["zkConnected"]


def page_connected(client) -> bool:
    response = client.get("/")
    assert response.status_code == 200
    text = response.content.decode()
    assert ('data-connected="true"' in text) != ('data-connected="false"' in text)
    return 'data-connected="true"' in text


def wait_equal(mirror, conf, timeout: float) -> float:
    """Wait until the mirror equals a fresh read (heartbeat data aside, it moves every 0.5 s);
    returns when, by time.monotonic(). The fresh read's session is opened here."""
    deadline = time.monotonic() + timeout
    last: list[str] = []
    state = None
    try:
        while True:
            try:
                if state is None:
                    left = max(deadline - time.monotonic(), 0.5)
                    state = mk_distributed_cluster_state(conf, timeout=left)
                last = mirror_diff(mirror, mk_storm_cluster_state(state), heartbeats=False)
                if not last:
                    return time.monotonic()
            except Exception as exc:  # still reconnecting: try again
                last = [repr(exc)]
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"mirror still differs {timeout}s after ZooKeeper's return:\n" + "\n".join(last)
                )
            time.sleep(0.05)
    finally:
        if state is not None:
            state.close()


@pytest.mark.parametrize("pause", [0.0, 2.0 * SESSION_TIMEOUT_MS / 1000], ids=["shorter", "longer"])
def test_zookeeper_restart_under_load(pause, own_zk, fault_conf, sessions, settings, client):
    sim = fault_simulator(fault_conf)
    mirror = None
    settings.STORMUI_ZK_SERVERS = [own_zk.connect_string]
    settings.STORMUI_ZK_ROOT = fault_conf["storm.zookeeper.root"]
    settings.STORMUI_STORE = "zookeeper"
    settings.STORMUI_MIRROR = True
    settings.STORMUI_HEARTBEAT_SECS = 0.5
    reset_source()
    try:
        sim.start()
        state = sessions()
        wait_for(
            lambda: sim.counts()["storms"] == 3 and sim.counts()["tasks"] == 12, timeout=STUCK_SECS
        )
        wait_for(
            lambda: sim.counts()["errors"] >= 2, timeout=STUCK_SECS
        )  # running: beating, failing
        mirror = ClusterMirror(state, heartbeat_secs=0.5, resync_secs=30)
        changes = ChangeLog()
        mirror.subscribe(changes)
        mirror.start(wait=STUCK_SECS)
        assert mirror.connected
        wait_for(lambda: len(mirror.active_storms()) == 3, timeout=STUCK_SECS)
        # the dashboard answers at once, saying it is reading the cluster, until it has
        assert get_source().wait_synced(STUCK_SECS)
        assert api_connected(client) and page_connected(client)
        states = Recorder()
        state.add_connection_listener(states)

        # -- the outage ---------------------------------------------------------------
        began = time.monotonic()
        own_zk.stop()
        stopped = time.monotonic()
        wait_for(lambda: not mirror.connected, timeout=STUCK_SECS)
        mirror_down = time.monotonic() - stopped
        wait_for(lambda: not api_connected(client), timeout=STUCK_SECS)
        api_down = time.monotonic() - stopped
        assert not page_connected(client)
        page_down = time.monotonic() - stopped
        # stale but served meanwhile
        assert len(mirror.active_storms()) == 3
        if pause:
            # the fault itself, not a wait: ZooKeeper stays away for longer than a session
            time.sleep(pause)
        own_zk.start()
        back = time.monotonic()
        outage = back - began

        equal_at = wait_equal(mirror, fault_conf, STUCK_SECS)
        synced = equal_at - back
        wait_for(lambda: mirror.connected, timeout=STUCK_SECS)
        connected = time.monotonic() - back
        wait_for(lambda: api_connected(client), timeout=STUCK_SECS)
        api_up = time.monotonic() - back

        # changes flow again: a new error reaches a subscriber
        writer = sessions.storm()
        storm_id = mirror.active_storms()[0]
        task_id = mirror.task_ids(storm_id)[0]
        text = f"after the outage {uuid.uuid4().hex}"
        written = time.monotonic()
        writer.report_task_error(storm_id, task_id, text)
        wait_for(
            lambda: any(
                e.error == text
                for c in changes.of("errors", storm_id=storm_id, task_id=task_id)
                for e in c.errors
            ),
            timeout=STUCK_SECS,
        )
        delivered = time.monotonic() - written
        lost = LOST in states.events
        report(
            f"outage[{'longer' if pause else 'shorter'}]",
            outage_secs=outage,
            stop_secs=stopped - began,
            mirror_down=mirror_down,
            api_down=api_down,
            page_down=page_down,
            mirror_equal=synced,
            mirror_connected=connected,
            api_up=api_up,
            error_delivered=delivered,
            session_lost=lost,
            sim_failures=sim.counts()["failures"],
        )
        if not pause:
            # ZooKeeper keeps a session across its own restart: a reconnect, not a new session,
            # as long as the client is back within the session's timeout of ZooKeeper's return
            # (a loaded machine can take longer to reconnect; then the expiry is ZooKeeper's due)
            assert not lost or connected >= SESSION_TIMEOUT_MS / 1000, (lost, connected)
    finally:
        if not own_zk.is_running():
            own_zk.start()
        reset_source()
        if mirror is not None:
            mirror.stop()
        sim.stop()
