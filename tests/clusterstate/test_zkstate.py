"""ZooKeeper-only behaviour of DistributedClusterState: outages, expiry, configuration.

The outage tests stop and restart a ZooKeeper of their own, so the shared
server other tests use is never disturbed.
"""

from __future__ import annotations

import pytest

from clusterstate.errors import NotConnectedError
from clusterstate.protocol import CONNECTED, NODE_CREATED, NODE_DATA_CHANGED, SUSPENDED
from clusterstate.zkserver import ZooKeeperServer, free_port
from clusterstate.zkstate import mk_distributed_cluster_state, zk_hosts, zk_root
from tests.clusterstate.test_protocol import flush, watched
from tests.helpers import Recorder, expire_session, wait_for


@pytest.fixture
def own_server(tmp_path, zk_server):  # zk_server: skip/fail as it does if not installed
    server = ZooKeeperServer(tmp_path / "zk").start()
    yield server
    server.stop()


def conf_for(server, root="/storm", timeout_ms=6000):
    return {
        "storm.zookeeper.servers": [server.connect_string],
        "storm.zookeeper.root": root,
        "storm.zookeeper.session.timeout": timeout_ms,
    }


@pytest.fixture
def opened():
    states = []

    def open_state(conf, **kwargs):
        state = mk_distributed_cluster_state(conf, **kwargs)
        states.append(state)
        return state

    yield open_state
    for state in states:
        state.close()


def assert_refused_at_once(state, operation):
    """``operation`` raises NotConnectedError without handing kazoo a request: it waits for
    no reconnect, and nothing is queued to run after one."""
    client = state.client
    call = client._call
    sent = []

    def spy(request, async_object):
        sent.append(request)
        return call(request, async_object)

    client._call = spy  # every kazoo request goes through KazooClient._call
    try:
        with pytest.raises(NotConnectedError):
            operation()
    finally:
        del client._call
    assert sent == []


def test_outage_reports_suspended_then_connected_and_ops_fail_fast(own_server, opened):
    state, writer = opened(conf_for(own_server)), opened(conf_for(own_server))
    listener = Recorder()
    state.add_connection_listener(listener)
    events = watched(state)
    state.set_data("/storms/s1", b"before")
    state.set_ephemeral_node("/supervisors/sup", b"beat")
    state.get_data("/storms/s1", watch=True)

    own_server.stop()
    listener.wait_for_event(SUSPENDED)
    wait_for(lambda: not state.connected)
    assert_refused_at_once(state, lambda: state.get_data("/storms/s1"))
    assert_refused_at_once(state, lambda: state.get_children("/storms"))
    assert_refused_at_once(state, lambda: state.get_data_many(["/storms/s1", "/x"]))
    assert_refused_at_once(state, lambda: state.set_data("/storms/s2", b"during"))
    assert_refused_at_once(state, lambda: state.set_ephemeral_node("/supervisors/sup", b"x"))
    assert_refused_at_once(state, lambda: state.delete_node("/storms"))
    assert_refused_at_once(state, lambda: state.create_sequential("/e/n-", b""))

    own_server.restart()
    states = listener.wait_for(lambda ev: CONNECTED in ev[ev.index(SUSPENDED) :], timeout=20)
    assert states[states.index(SUSPENDED) :][-1] == CONNECTED
    wait_for(lambda: state.connected)
    assert state.get_data("/storms/s1") == b"before"
    # nothing refused was queued and replayed later
    assert state.get_data("/storms/s2") is None
    assert state.get_children("/e") == []
    # the session survived a short outage: its ephemeral node is still there
    wait_for(lambda: writer.connected)
    assert writer.get_data("/supervisors/sup") == b"beat"
    # kazoo dropped the watch on disconnect; after "connected", re-arm
    writer.set_data("/storms/s1", b"unwatched")
    state.get_data("/storms/s1", watch=True)
    writer.set_data("/storms/s1", b"watched")
    assert flush(state, writer, events) == [(NODE_DATA_CHANGED, "/storms/s1")]


def test_unreachable_server_raises_not_connected(opened):
    dead = {"storm.zookeeper.servers": ["127.0.0.1"], "storm.zookeeper.port": free_port()}
    with pytest.raises(NotConnectedError):  # gives up after its timeout, never retries for ever
        opened(dead, timeout=1)


def test_nested_root_is_created_and_used_as_chroot(own_server, opened):
    state = opened(conf_for(own_server, root="/apps/storm/prod"))
    state.set_data("/storms/s", b"x")
    top = opened(conf_for(own_server, root="/"))
    assert top.get_data("/apps/storm/prod/storms/s") == b"x"
    assert top.get_children("/apps/storm") == ["prod"]


def test_watch_paths_are_relative_to_the_root(own_server, opened):
    state = opened(conf_for(own_server, root="/r1"))
    top = opened(conf_for(own_server, root="/"))
    events = watched(state)
    state.get_data("/n", watch=True)
    top.set_data("/r1/n", b"")
    assert flush(state, state, events) == [(NODE_CREATED, "/n")]


def test_session_id_changes_after_expiry(zk_conf, opened):
    state = opened(zk_conf)
    before = state.session_id
    expire_session(state)
    assert state.session_id not in (None, before)


def test_zk_hosts_applies_default_and_per_server_ports():
    conf = {
        "storm.zookeeper.servers": ["127.0.0.1", "127.0.0.2:2182", "localhost"],
        "storm.zookeeper.port": 2190,
    }
    assert zk_hosts(conf) == "127.0.0.1:2190,127.0.0.2:2182,localhost:2190"
    assert zk_hosts({"storm.zookeeper.servers": ["::1"]}) == "[::1]:2181"
    assert zk_hosts({"storm.zookeeper.servers": ["[::1]:2200"]}) == "[::1]:2200"
    assert zk_hosts({}) == "127.0.0.1:2181"


def test_zk_root_defaults_and_checks():
    assert zk_root({}) == "/storm"
    assert zk_root({"storm.zookeeper.root": "/a/b/"}) == "/a/b"
    assert zk_root({"storm.zookeeper.root": "/"}) == "/"
    with pytest.raises(ValueError):
        zk_root({"storm.zookeeper.root": "relative"})


def test_close_during_an_outage_returns_promptly(own_server, opened):
    state = opened(conf_for(own_server))
    listener = Recorder()
    state.add_connection_listener(listener)
    own_server.stop()
    listener.wait_for_event(SUSPENDED)
    # returns with ZooKeeper still down: a close that waited for it would never return
    state.close()
    state.close()
    assert not state.connected
