"""Contract tests of ClusterState, run against the in-memory state and real ZooKeeper."""

from __future__ import annotations

import threading

import pytest

from clusterstate.errors import NotConnectedError
from clusterstate.protocol import (
    CONNECTED,
    LOST,
    NODE_CHILDREN_CHANGED,
    NODE_CREATED,
    NODE_DATA_CHANGED,
    NODE_DELETED,
    ClusterState,
)
from tests.helpers import WAIT, Recorder, expire_session, wait_for


def watched(state):
    recorder = Recorder()
    state.register(recorder)
    return recorder


def flush(watcher, writer, events):
    """Wait until every event already due to ``watcher`` has arrived.

    A session's events arrive in order, so once a marker's event is in, every
    earlier one is too; the marker's event is then removed.
    """
    marker = "/flush-marker"
    watcher.get_data(marker, watch=True)
    if writer.get_data(marker) is None:
        writer.set_data(marker, b"")
        expected = (NODE_CREATED, marker)
    else:
        writer.delete_node(marker)
        expected = (NODE_DELETED, marker)
    got = events.wait_for_event(expected)
    events.clear()
    return [e for e in got if e != expected]


def test_implements_the_protocol(cluster_state):
    assert isinstance(cluster_state, ClusterState)
    assert cluster_state.connected


# -- data ------------------------------------------------------------------------------------


def test_set_data_creates_node_and_parents(cluster_state):
    cluster_state.set_data("/a/b/c", b"hello")
    assert cluster_state.get_data("/a/b/c") == b"hello"
    assert cluster_state.get_data("/a/b") == b""
    assert cluster_state.get_children("/a") == ["b"]


def test_set_data_overwrites(cluster_state):
    cluster_state.set_data("/a", b"1")
    cluster_state.set_data("/a", b"2")
    assert cluster_state.get_data("/a") == b"2"


def test_missing_node_reads_none_and_empty(cluster_state):
    assert cluster_state.get_data("/nope") is None
    assert cluster_state.get_children("/nope") == []
    assert cluster_state.get_children("/nope/deeper", watch=True) == []


def test_root_is_created_and_readable(cluster_state):
    assert cluster_state.get_data("/") == b""
    cluster_state.set_data("/x", b"")
    assert cluster_state.get_children("/") == ["x"]


def test_mkdirs_creates_empty_persistent_nodes(state_factory):
    first = state_factory()
    first.mkdirs("/p/q/r")
    first.mkdirs("/p/q/r")  # idempotent
    first.close()
    second = state_factory()
    assert second.get_data("/p/q/r") == b""
    assert second.get_children("/p/q") == ["r"]


def test_delete_node_is_recursive_and_tolerates_absent(cluster_state):
    for path in ("/d/1/x", "/d/1/y", "/d/2", "/keep"):
        cluster_state.set_data(path, b"v")
    cluster_state.delete_node("/d")
    assert cluster_state.get_data("/d") is None
    assert cluster_state.get_children("/") == ["keep"]
    cluster_state.delete_node("/d")  # absent: no error
    cluster_state.delete_node("/never/existed")


def test_delete_node_of_root_keeps_root(cluster_state):
    cluster_state.set_data("/a/b", b"1")
    cluster_state.delete_node("/")
    assert cluster_state.get_children("/") == []
    assert cluster_state.get_data("/") == b""


def test_binary_data_round_trips(cluster_state):
    data = bytes(range(256)) * 4
    cluster_state.set_data("/bin", data)
    assert cluster_state.get_data("/bin") == data


@pytest.mark.parametrize("bad", ["", "a", "/a/", "//a", "/a//b", "/a/./b", "/a/../b", "/a\0b"])
def test_invalid_paths_are_refused(cluster_state, bad):
    with pytest.raises(ValueError):
        cluster_state.set_data(bad, b"x")
    with pytest.raises(ValueError):
        cluster_state.get_data(bad)


# -- ephemeral nodes -------------------------------------------------------------------------


def test_ephemeral_node_vanishes_when_owner_closes(state_factory):
    owner, other = state_factory(), state_factory()
    owner.set_ephemeral_node("/beats/s1", b"alive")
    assert other.get_data("/beats/s1") == b"alive"
    owner.set_ephemeral_node("/beats/s1", b"again")  # existing: data set
    assert other.get_data("/beats/s1") == b"again"
    owner.close()
    wait_for(lambda: other.get_data("/beats/s1") is None)
    assert other.get_children("/beats") == []  # the parent is persistent


def test_ephemeral_node_cannot_have_children(cluster_state):
    cluster_state.set_ephemeral_node("/e", b"")
    with pytest.raises(ValueError):
        cluster_state.set_data("/e/child", b"")
    with pytest.raises(ValueError):
        cluster_state.set_ephemeral_node("/e/child", b"")


# -- sequential nodes ------------------------------------------------------------------------


def test_sequential_nodes_get_increasing_ten_digit_suffixes(cluster_state):
    created = [cluster_state.create_sequential("/errs/t/100-", str(i).encode()) for i in range(3)]
    assert [p.rsplit("-", 1)[0] for p in created] == ["/errs/t/100"] * 3
    suffixes = [p.rsplit("-", 1)[1] for p in created]
    assert all(len(s) == 10 and s.isdigit() for s in suffixes)
    assert suffixes == sorted(suffixes) and len(set(suffixes)) == 3
    assert sorted(cluster_state.get_children("/errs/t")) == [p.rsplit("/", 1)[1] for p in created]
    assert cluster_state.get_data(created[1]) == b"1"


def test_sequence_counts_every_child_created(cluster_state):
    # ZooKeeper's counter is the parent's cversion: any child created advances
    # it, even one deleted since; a delete does not
    first = cluster_state.create_sequential("/q/n-", b"")
    cluster_state.set_data("/q/other", b"")
    cluster_state.delete_node("/q/other")
    cluster_state.delete_node(first)
    second = cluster_state.create_sequential("/q/n-", b"")
    assert int(second[-10:]) - int(first[-10:]) == 2


# -- many at once ----------------------------------------------------------------------------


def test_get_data_many_with_absent_nodes(cluster_state):
    cluster_state.set_data("/m/a", b"A")
    cluster_state.set_data("/m/b", b"B")
    got = cluster_state.get_data_many(["/m/a", "/m/missing", "/m/b"])
    assert got == {"/m/a": b"A", "/m/missing": None, "/m/b": b"B"}
    assert cluster_state.get_data_many([]) == {}


def test_get_children_many_with_absent_nodes(cluster_state):
    cluster_state.set_data("/m/a/1", b"")
    cluster_state.set_data("/m/a/2", b"")
    got = cluster_state.get_children_many(["/m/a", "/m/none"])
    assert sorted(got["/m/a"]) == ["1", "2"]
    assert got["/m/none"] == []


def test_get_data_many_reads_thousands(cluster_state):
    paths = [f"/many/{i}" for i in range(2500)]
    for path in paths[:10]:
        cluster_state.set_data(path, path.encode())
    got = cluster_state.get_data_many(paths)
    assert len(got) == 2500
    assert got["/many/3"] == b"/many/3" and got["/many/2000"] is None


def test_many_watch_absent_fires_created(cluster_state):
    events = watched(cluster_state)
    cluster_state.get_data_many(["/w/a", "/w/b"], watch=True)
    cluster_state.get_children_many(["/w/c"], watch=True)
    cluster_state.set_data("/w/b", b"")
    cluster_state.set_data("/w/c", b"")
    assert sorted(flush(cluster_state, cluster_state, events)) == [
        (NODE_CREATED, "/w/b"),
        (NODE_CREATED, "/w/c"),
    ]
    cluster_state.set_data("/w/a", b"")
    assert flush(cluster_state, cluster_state, events) == [(NODE_CREATED, "/w/a")]


def test_many_sessions_write_concurrently(state_factory):
    states = [state_factory() for _ in range(10)]
    errors = []

    def work(i, state):
        try:
            for j in range(20):
                state.set_data(f"/shared/{i}/{j}", f"{i}-{j}".encode())
                state.set_ephemeral_node(f"/live/{i}", str(j).encode())
                state.create_sequential("/seq/n-", b"")
                state.set_data("/contended", str(i).encode())
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i, s)) for i, s in enumerate(states)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    reader = states[0]
    assert sorted(reader.get_children("/shared"), key=int) == [str(i) for i in range(10)]
    assert all(len(reader.get_children(f"/shared/{i}")) == 20 for i in range(10))
    assert reader.get_data_many([f"/live/{i}" for i in range(10)]) == {
        f"/live/{i}": b"19" for i in range(10)
    }
    assert len(set(reader.get_children("/seq"))) == 200
    assert reader.get_data("/contended") in {str(i).encode() for i in range(10)}


def test_close_twice_is_harmless_and_ops_after_close_refused(state_factory):
    state = state_factory()
    state.close()
    state.close()
    assert not state.connected
    with pytest.raises(NotConnectedError):
        state.get_data("/")
    with pytest.raises(NotConnectedError):
        state.set_data("/x", b"")


def test_nothing_outside_the_root_is_touched(state_factory, zk_root):
    sibling_root = zk_root + "-sibling"
    sibling = state_factory(sibling_root)
    sibling.set_data("/storms/other", b"keep")
    state = state_factory()
    state.set_data("/storms/mine", b"x")
    state.set_ephemeral_node("/supervisors/s", b"x")
    state.create_sequential("/taskerrors/e-", b"")
    state.delete_node("/")
    state.delete_node("/storms")
    assert sibling.get_data("/storms/other") == b"keep"
    assert sibling.get_children("/") == ["storms"]
    sibling.delete_node("/storms")


# -- watches ---------------------------------------------------------------------------------


def test_data_watch_fires_data_changed_once(state_factory):
    watcher, writer = state_factory(), state_factory()
    events = watched(watcher)
    writer.set_data("/node", b"1")
    assert watcher.get_data("/node", watch=True) == b"1"
    writer.set_data("/node", b"2")
    events.wait_for_event((NODE_DATA_CHANGED, "/node"))
    writer.set_data("/node", b"3")
    # a later, re-armed watch proves the second change fired nothing
    assert flush(watcher, writer, events) == [(NODE_DATA_CHANGED, "/node")]
    watcher.get_data("/node", watch=True)
    writer.set_data("/node", b"4")
    assert flush(watcher, writer, events) == [(NODE_DATA_CHANGED, "/node")]


def test_watch_on_absent_node_fires_created(state_factory):
    watcher, writer = state_factory(), state_factory()
    events = watched(watcher)
    assert watcher.get_data("/later", watch=True) is None
    writer.set_data("/later", b"now")
    writer.set_data("/later", b"again")
    assert flush(watcher, writer, events) == [(NODE_CREATED, "/later")]


def test_data_watch_fires_deleted(state_factory):
    watcher, writer = state_factory(), state_factory()
    events = watched(watcher)
    writer.set_data("/gone", b"")
    watcher.get_data("/gone", watch=True)
    writer.delete_node("/gone")
    assert flush(watcher, writer, events) == [(NODE_DELETED, "/gone")]


def test_delete_fires_both_a_data_and_a_child_watch(state_factory):
    # as kazoo does: one "node-deleted" per watch left on the node
    watcher, writer = state_factory(), state_factory()
    events = watched(watcher)
    writer.set_data("/both", b"")
    watcher.get_data("/both", watch=True)
    watcher.get_children("/both", watch=True)
    writer.delete_node("/both")
    assert flush(watcher, writer, events) == [(NODE_DELETED, "/both")] * 2


def test_child_watch_fires_children_changed(state_factory):
    watcher, writer = state_factory(), state_factory()
    events = watched(watcher)
    writer.mkdirs("/parent")
    assert watcher.get_children("/parent", watch=True) == []
    writer.set_data("/parent/kid", b"")
    events.wait_for_event((NODE_CHILDREN_CHANGED, "/parent"))
    writer.set_data("/parent/kid", b"data changes are not child changes")
    writer.set_data("/parent/kid2", b"")  # the watch is spent
    assert flush(watcher, writer, events) == [(NODE_CHILDREN_CHANGED, "/parent")]
    assert sorted(watcher.get_children("/parent", watch=True)) == ["kid", "kid2"]
    writer.delete_node("/parent/kid")
    assert flush(watcher, writer, events) == [(NODE_CHILDREN_CHANGED, "/parent")]


def test_child_watch_on_absent_node_fires_created(state_factory):
    watcher, writer = state_factory(), state_factory()
    events = watched(watcher)
    assert watcher.get_children("/supervisors", watch=True) == []
    writer.set_ephemeral_node("/supervisors/s1", b"")
    events.wait_for_event((NODE_CREATED, "/supervisors"))


def test_ephemeral_vanishing_fires_watches(state_factory):
    owner, watcher = state_factory(), state_factory()
    events = watched(watcher)
    owner.set_ephemeral_node("/beats/t1", b"")
    watcher.get_data("/beats/t1", watch=True)
    watcher.get_children("/beats", watch=True)
    owner.close()
    events.wait_for(
        lambda ev: (NODE_DELETED, "/beats/t1") in ev and (NODE_CHILDREN_CHANGED, "/beats") in ev
    )


def test_watch_on_root_reports_slash(state_factory):
    watcher, writer = state_factory(), state_factory()
    events = watched(watcher)
    watcher.get_children("/", watch=True)
    writer.set_data("/top", b"")
    events.wait_for_event((NODE_CHILDREN_CHANGED, "/"))


def test_every_registered_callback_is_called_and_unregister_stops_it(state_factory):
    watcher, writer = state_factory(), state_factory()
    first, second = Recorder(), Recorder()
    watcher.register(first)
    second_id = watcher.register(second)

    def broken(event_type, path):
        raise RuntimeError("a broken callback must not stop the others")

    watcher.register(broken)
    watcher.get_data("/n", watch=True)
    writer.set_data("/n", b"")
    first.wait_for_event((NODE_CREATED, "/n"))
    second.wait_for_event((NODE_CREATED, "/n"))
    watcher.unregister(second_id)
    watcher.unregister("unknown-id")
    watcher.get_data("/n", watch=True)
    writer.set_data("/n", b"1")
    assert flush(watcher, writer, first) == [(NODE_CREATED, "/n"), (NODE_DATA_CHANGED, "/n")]
    assert second.events == [(NODE_CREATED, "/n")]


def test_callbacks_run_off_the_writers_thread(state_factory):
    state = state_factory()
    threads = []
    done = threading.Event()

    def callback(event_type, path):
        threads.append(threading.current_thread())
        done.set()

    state.register(callback)
    state.get_data("/self", watch=True)
    state.set_data("/self", b"")  # this session's own write fires its own watch
    assert done.wait(WAIT)
    assert threads[0] is not threading.current_thread()


def test_callback_may_call_back_into_the_state(state_factory):
    # a callback that re-reads and re-arms (what the Storm layer does) must not deadlock
    watcher, writer = state_factory(), state_factory()
    seen = Recorder()

    def rearm(event_type, path):
        seen(event_type, path, watcher.get_data(path, watch=True))
        watcher.set_data("/echo" + path, b"writes work here too")

    watcher.register(rearm)
    watcher.get_data("/r", watch=True)
    writer.set_data("/r", b"1")
    writer_done = seen.wait_for(lambda ev: ev)
    assert writer_done[0] == (NODE_CREATED, "/r", b"1")
    writer.set_data("/r", b"2")
    seen.wait_for_event((NODE_DATA_CHANGED, "/r", b"2"))
    assert writer.get_data("/echo/r") == b"writes work here too"


# -- connection ------------------------------------------------------------------------------


def test_session_expiry_removes_ephemerals_and_reports_lost_then_connected(state_factory):
    state, other = state_factory(), state_factory()
    listener = Recorder()
    state.add_connection_listener(listener)
    events = watched(state)
    state.set_ephemeral_node("/beat", b"")
    state.set_data("/persistent", b"p")
    state.get_data("/persistent", watch=True)

    expire_session(state)

    states = listener.wait_for(lambda ev: LOST in ev and CONNECTED in ev[ev.index(LOST) :])
    assert states[-1] == CONNECTED
    assert state.connected
    assert other.get_data("/beat") is None
    assert state.get_data("/beat") is None
    assert state.get_data("/persistent") == b"p"
    # the old watch is gone; a re-armed one works on the new session
    other.set_data("/persistent", b"changed while nobody watched")
    state.get_data("/persistent", watch=True)
    other.set_data("/persistent", b"q")
    assert flush(state, other, events) == [(NODE_DATA_CHANGED, "/persistent")]
    state.set_ephemeral_node("/beat", b"back")  # the new session can write again
    assert other.get_data("/beat") == b"back"
    state.remove_connection_listener(listener)
    state.remove_connection_listener(listener)  # unknown: ignored
