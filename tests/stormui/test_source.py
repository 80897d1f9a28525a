"""The cluster source: a dashboard started while ZooKeeper is down serves pages
saying so, and picks the cluster up once ZooKeeper answers."""

import pytest

from clusterstate import StormBase, mk_distributed_cluster_state, mk_storm_cluster_state
from clusterstate.zkserver import ZooKeeperServer, free_port
from stormui import source as source_module
from stormui.source import get_source, reset_source
from tests.helpers import wait_for


@pytest.fixture
def late_zookeeper(tmp_path, settings, monkeypatch, zk_root):
    port = free_port()
    server = ZooKeeperServer(tmp_path / "zk", port=port)
    settings.STORMUI_ZK_SERVERS = [f"127.0.0.1:{port}"]
    settings.STORMUI_ZK_ROOT = zk_root
    settings.STORMUI_STORE = "zookeeper"
    settings.STORMUI_MIRROR = True
    # keep the first try short so the test does not wait on it
    monkeypatch.setattr(source_module, "FIRST_CONNECT_SECS", 1.0)
    monkeypatch.setattr(source_module, "RECONNECT_SECS", 0.2)
    reset_source()
    yield server
    reset_source()
    server.stop()


@pytest.mark.django_db
def test_pages_serve_before_zookeeper_is_reachable_then_catch_up(client, late_zookeeper, zk_root):
    response = client.get("/")
    assert response.status_code == 200
    assert b"ZooKeeper disconnected" in response.content
    summary = client.get("/api/v1/cluster/summary").json()
    assert summary["zkConnected"] is False
    assert summary["topologies"] == 0
    assert client.get("/storms/late-1/").status_code == 404

    late_zookeeper.start()
    conf = {
        "storm.zookeeper.servers": [late_zookeeper.connect_string],
        "storm.zookeeper.root": zk_root,
    }
    writer_state = mk_distributed_cluster_state(conf)
    writer = mk_storm_cluster_state(writer_state)
    try:
        writer.activate_storm("late-1", StormBase("late", 1_700_000_000))
        wait_for(lambda: get_source().zk_connected, timeout=30)
        wait_for(lambda: "late-1" in get_source().cluster_view().storms, timeout=30)
    finally:
        writer.disconnect()
        writer_state.close()
    summary = client.get("/api/v1/cluster/summary").json()
    assert summary["zkConnected"] is True
    assert summary["topologies"] == 1
    assert client.get("/storms/late-1/").status_code == 200
