"""ZooKeeper stopped and restarted under a running simulator: once for less than the session
timeout, once for more. The mirror and the dashboard must say so within 2 s of the stop,
and within 5 s of ZooKeeper's return the mirror must equal a fresh read and changes flow."""

from __future__ import annotations

import time
import uuid

import pytest

from clusterstate import mk_distributed_cluster_state, mk_storm_cluster_state
from clusterstate.mirror import ClusterMirror
from clusterstate.protocol import LOST
from stormui.source import reset_source
from tests.clusterstate.mirror_helpers import ChangeLog, mirror_diff
from tests.faults.conftest import SESSION_TIMEOUT_MS, fault_simulator, report
from tests.helpers import Recorder, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db, pytest.mark.timeout(180)]

#: the goals (seconds)
DOWN_WITHIN = 2.0
SYNCED_WITHIN = 5.0


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
        wait_for(lambda: sim.counts()["storms"] == 3 and sim.counts()["tasks"] == 12, timeout=30)
        wait_for(lambda: sim.counts()["errors"] >= 2, timeout=30)  # running: beating, failing
        mirror = ClusterMirror(state, heartbeat_secs=0.5, resync_secs=30)
        changes = ChangeLog()
        mirror.subscribe(changes)
        mirror.start(wait=30)
        assert mirror.connected
        wait_for(lambda: len(mirror.active_storms()) == 3, timeout=30)
        assert api_connected(client) and page_connected(client)
        states = Recorder()
        state.add_connection_listener(states)

        # -- the outage ---------------------------------------------------------------
        began = time.monotonic()
        own_zk.stop()
        stopped = time.monotonic()
        wait_for(lambda: not mirror.connected, timeout=DOWN_WITHIN + 5)
        mirror_down = time.monotonic() - stopped
        wait_for(lambda: not api_connected(client), timeout=DOWN_WITHIN + 5)
        api_down = time.monotonic() - stopped
        assert not page_connected(client)
        page_down = time.monotonic() - stopped
        # stale but served meanwhile
        assert len(mirror.active_storms()) == 3
        if pause:
            time.sleep(pause)  # the outage itself: nothing to wait for but the clock
        own_zk.start()
        back = time.monotonic()
        outage = back - began

        equal_at = wait_equal(mirror, fault_conf, SYNCED_WITHIN + 10)
        synced = equal_at - back
        wait_for(lambda: mirror.connected, timeout=SYNCED_WITHIN + 10)
        connected = time.monotonic() - back
        wait_for(lambda: api_connected(client), timeout=SYNCED_WITHIN + 10)
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
            timeout=10,
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
        assert mirror_down <= DOWN_WITHIN, mirror_down
        assert api_down <= DOWN_WITHIN, api_down
        assert synced <= SYNCED_WITHIN, synced
        assert connected <= SYNCED_WITHIN, connected
        assert delivered <= SYNCED_WITHIN, delivered
        if not pause:
            assert outage < SESSION_TIMEOUT_MS / 1000, "the short outage was not short"
            assert not lost
        else:
            assert outage > SESSION_TIMEOUT_MS / 1000
    finally:
        if not own_zk.is_running():
            own_zk.start()
        reset_source()
        if mirror is not None:
            mirror.stop()
        sim.stop()
