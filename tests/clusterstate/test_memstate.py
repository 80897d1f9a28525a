"""In-memory-only hooks of MemoryClusterState: suspend, resume, expire, stores shared."""

from __future__ import annotations

import pytest

from clusterstate.errors import NotConnectedError
from clusterstate.memstate import MemoryStore, mk_memory_cluster_state
from clusterstate.protocol import CONNECTED, LOST, NODE_DATA_CHANGED, SUSPENDED
from tests.clusterstate.test_protocol import flush, watched
from tests.helpers import Recorder


@pytest.fixture
def store():
    return MemoryStore()


@pytest.fixture
def sessions(store):
    opened = []

    def open_session(root="/storm"):
        state = mk_memory_cluster_state(store, root)
        opened.append(state)
        return state

    yield open_session
    for state in opened:
        state.close()


def test_suspend_refuses_ops_drops_watches_and_resume_reconnects(sessions):
    state, writer = sessions(), sessions()
    listener = Recorder()
    state.add_connection_listener(listener)
    events = watched(state)
    state.set_ephemeral_node("/beat", b"")
    state.set_data("/n", b"1")
    state.get_data("/n", watch=True)

    state.suspend()
    assert not state.connected
    with pytest.raises(NotConnectedError):
        state.get_data("/n")
    with pytest.raises(NotConnectedError):
        state.set_data("/n", b"x")
    listener.wait_for_event(SUSPENDED)
    writer.set_data("/n", b"2")  # the dropped watch must not fire

    state.resume()
    assert listener.wait_for(lambda ev: ev[-1:] == [CONNECTED]) == [SUSPENDED, CONNECTED]
    assert state.get_data("/beat") == b""  # same session: its ephemeral node stays
    assert flush(state, writer, events) == []
    state.get_data("/n", watch=True)
    writer.set_data("/n", b"3")
    assert flush(state, writer, events) == [(NODE_DATA_CHANGED, "/n")]


def test_expire_starts_a_new_session(sessions):
    state, other = sessions(), sessions()
    listener = Recorder()
    state.add_connection_listener(listener)
    before = state.session_id
    state.set_ephemeral_node("/beat", b"")
    state.expire()
    assert listener.wait_for(lambda ev: len(ev) == 2) == [LOST, CONNECTED]
    assert state.session_id != before and state.connected
    assert other.get_data("/beat") is None


def test_a_new_store_per_call_without_one():
    first, second = mk_memory_cluster_state(), mk_memory_cluster_state()
    try:
        first.set_data("/x", b"1")
        assert second.get_data("/x") is None
    finally:
        first.close()
        second.close()


def test_sessions_on_other_roots_share_the_tree(sessions):
    storm, top = sessions("/storm"), sessions("/")
    storm.set_data("/storms/s", b"x")
    assert top.get_data("/storm/storms/s") == b"x"
    assert sorted(top.get_children("/")) == ["storm"]
