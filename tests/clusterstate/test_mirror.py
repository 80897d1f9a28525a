"""ClusterMirror against the in-memory store and a real ZooKeeper alike.

The cluster is written through a StormClusterState on one session (the
writer) and mirrored through another (the reader), as the dashboard does.
"""

from __future__ import annotations

import threading

import pytest

from clusterstate import (
    Assignment,
    StormBase,
    SupervisorInfo,
    TaskHeartbeat,
    TaskInfo,
    UnreadableNodeError,
    paths,
    precedence,
)
from clusterstate.mirror import ClusterMirror, MirrorChange
from clusterstate.storm import MAX_TASK_ERRORS, mk_storm_cluster_state
from tests.clusterstate.mirror_helpers import (
    ChangeLog,
    assert_mirror_equals,
    wait_mirror_equals,
)
from tests.helpers import expire_session, own_zookeeper, wait_for

# the bound of every wait on the mirror, on a machine that may be busy with other work: a
# wait ends as soon as its condition holds; the bound only decides when a test fails
TIMEOUT = 30


def base(name="wordcount", launch=1_300_000_000):
    return StormBase(storm_name=name, launch_time_secs=launch)


def assignment(task_ids, node="node-a", port=6700):
    return Assignment(
        master_code_dir="/nimbus/stormdist/x",
        node_host={node: f"host-{node}"},
        task_node_port={t: (node, port + t % 4) for t in task_ids},
        task_start_time_secs={t: 1_300_000_000 + t for t in task_ids},
    )


def supervisor(n=0, time_secs=1_300_000_100):
    return SupervisorInfo(
        time_secs=time_secs, hostname=f"host-{n}", worker_ports=(6700, 6701), uptime_secs=n
    )


def heartbeat(time_secs=1_300_000_100, emitted=10):
    stats = {
        "type": "bolt",
        "rate": 1.0,
        "emitted": {"600": {"default": emitted}},
        "transferred": {"600": {"default": emitted}},
        "acked": {"600": {"spout": {"default": emitted}}},
        "failed": {"600": {"spout": {"default": 0}}},
        "process_latencies": {"600": {"spout": {"default": 1.5}}},
    }
    return TaskHeartbeat(time_secs=time_secs, uptime_secs=5, stats=stats)


def reads_as(read, *args):
    """True if ``read(*args[:-1])`` gives ``args[-1]``; False while it is unreadable."""
    try:
        return read(*args[:-1]) == args[-1]
    except UnreadableNodeError:
        return False


class Clock:
    def __init__(self, now=1_700_000_000.0):
        self.now = now

    def __call__(self):
        return self.now


@pytest.fixture(scope="module")
def zk_server(zk_server, tmp_path_factory):
    """A ZooKeeper of this module's own: the outage test stops it, and no other module's
    tests may see that. (The shared one is asked for to fail or skip as it does.)"""
    yield from own_zookeeper(tmp_path_factory, "mirror")


@pytest.fixture
def writer(state_factory):
    """The writing side: a StormClusterState on its own session."""
    return mk_storm_cluster_state(state_factory())


@pytest.fixture
def make_mirror(state_factory, writer):
    """``make_mirror(**kwargs)``: a started ClusterMirror on a session of its own.

    Returns ``(mirror, reader_state, changes)``; every mirror is stopped at teardown.
    """
    mirrors = []

    def make(start=True, **kwargs):
        state = state_factory()
        kwargs.setdefault("heartbeat_secs", 0.2)
        mirror = ClusterMirror(state, **kwargs)
        changes = ChangeLog()
        mirror.subscribe(changes)
        mirrors.append(mirror)
        if start:
            mirror.start(wait=TIMEOUT)
            assert mirror.connected
        return mirror, state, changes

    yield make
    for mirror in mirrors:
        mirror.stop()


def populate(writer, storms=3, tasks=5, errors=3):
    """A small cluster: active and inactive storms, tasks, heartbeats, errors, supervisors."""
    for s in range(storms):
        storm_id = f"storm-{s}"
        task_ids = list(range(1, tasks + 1))
        for t in task_ids:
            kind = "spout" if t == 1 else "bolt"
            writer.set_task(storm_id, t, TaskInfo(component_id=f"c{t % 2}", component_type=kind))
        writer.set_assignment(storm_id, assignment(task_ids))
        if s != storms - 1:  # the last one is inactive
            writer.activate_storm(storm_id, base(storm_id))
        writer.setup_heartbeats(storm_id)
        for t in task_ids[:-1]:  # the last task never beat
            writer.set_task_heartbeat(storm_id, t, heartbeat(emitted=t))
        for e in range(errors):
            writer.report_task_error(storm_id, 1, f"{storm_id} error {e}\n  at line {e}")
    for t in range(MAX_TASK_ERRORS + 3):  # more than ten: trimmed
        writer.report_task_error("storm-0", 2, f"error {t}")
    writer.set_supervisor_heartbeat("sup-0", supervisor(0))
    writer.set_supervisor_heartbeat("sup-1", supervisor(1))


# -- loading --------------------------------------------------------------------------


def test_cold_load_equals_a_fresh_read(writer, make_mirror):
    populate(writer)
    clock = Clock()
    mirror, _state, changes = make_mirror(time_fn=clock)

    assert_mirror_equals(mirror, writer)
    assert mirror.synced_at == clock.now
    assert mirror.task_ids("storm-1") == [1, 2, 3, 4, 5]
    assert mirror.active_storms() == ["storm-0", "storm-1"]
    assert len(mirror.task_errors("storm-0", 2)) == MAX_TASK_ERRORS
    assert mirror.task_errors("storm-0", 2)[-1].error == f"error {MAX_TASK_ERRORS + 2}"
    # a cold load is one snapshot, not a flood of news
    kinds = [c.kind for c in changes.changes]
    assert kinds == ["resync", "connection"], kinds
    assert [c.version for c in changes.changes] == [1, 2] and mirror.version == 2
    assert mirror.resyncs == 1

    # every node under Storm's folders, those folders included (the writer keeps ten errors)
    def nodes(path):
        return 1 + sum(nodes(f"{path}/{c}") for c in writer.cluster_state.get_children(path))

    assert mirror.node_count() == sum(map(nodes, paths.SUBTREES))
    # the cold load's counter: every node it read, of every node it came to know
    assert mirror.progress() == (mirror.node_count(), mirror.node_count())


def test_reads_refuse_bad_ids_and_miss_quietly(writer, make_mirror):
    mirror, _state, _changes = make_mirror()
    for read in (
        mirror.storm_base,
        mirror.assignment_info,
        mirror.task_ids,
        mirror.heartbeat_tasks,
    ):
        with pytest.raises(ValueError):
            read("a/b")
    with pytest.raises(ValueError):
        mirror.task_info("storm", -1)
    with pytest.raises(ValueError):
        mirror.supervisor_info("..")
    with pytest.raises(ValueError):
        mirror.task_errors("", 1)
    assert mirror.storm_base("nope") is None
    assert mirror.task_ids("nope") == []
    assert mirror.task_errors("nope", 3) == []
    assert mirror.task_heartbeat("nope", 3) is None


def test_start_waits_for_nothing_when_told(writer, make_mirror):
    populate(writer, storms=1)
    mirror, _state, _changes = make_mirror(start=False)
    assert not mirror.connected and mirror.synced_at is None
    mirror.start(wait=None)
    assert mirror.wait_synced(TIMEOUT)
    assert_mirror_equals(mirror, writer)
    mirror.stop()
    mirror.stop()  # harmless
    assert mirror.task_ids("storm-0") == [1, 2, 3, 4, 5]  # still serves what it knew


# -- following changes ------------------------------------------------------------------


def test_storm_activation_and_deactivation(writer, make_mirror):
    mirror, _state, changes = make_mirror()
    assert mirror.storm_base("s1") is None

    writer.activate_storm("s1", base("s1"))
    change = changes.wait("storm", storm_id="s1")
    assert mirror.storm_base("s1") == base("s1")
    assert mirror.active_storms() == ["s1"]
    assert change.version <= mirror.version

    changes.clear()
    writer.activate_storm("s1", base("renamed"))
    changes.wait("storm", storm_id="s1")
    assert mirror.storm_base("s1") == base("renamed")

    changes.clear()
    writer.deactivate_storm("s1")
    changes.wait("storm", storm_id="s1")
    wait_for(lambda: mirror.active_storms() == [], TIMEOUT)
    assert mirror.storm_base("s1") is None


def test_assignment_set_and_removed(writer, make_mirror):
    mirror, _state, changes = make_mirror()
    assert mirror.assignment_info("s1") is None

    writer.set_task("s1", 1, TaskInfo(component_id="spout"))
    writer.set_assignment("s1", assignment([1]))
    changes.wait("assignment", storm_id="s1")
    assert mirror.assignments() == ["s1"]
    assert mirror.assignment_info("s1") == assignment([1])

    changes.clear()
    writer.set_assignment("s1", assignment([1], node="node-b"))
    changes.wait("assignment", storm_id="s1")
    assert mirror.assignment_info("s1").node_host == {"node-b": "host-node-b"}

    changes.clear()
    writer.remove_storm("s1")
    changes.wait("assignment", storm_id="s1")
    wait_for(lambda: mirror.assignments() == [] and mirror.task_storms() == [], TIMEOUT)
    assert mirror.assignment_info("s1") is None
    assert mirror.task_ids("s1") == []
    assert changes.of("tasks", storm_id="s1")
    wait_mirror_equals(mirror, writer)


def test_set_task(writer, make_mirror):
    mirror, _state, changes = make_mirror()
    writer.set_task("s1", 1, TaskInfo(component_id="spout", component_type="spout"))
    changes.wait("tasks", storm_id="s1")
    wait_for(lambda: mirror.task_ids("s1") == [1], TIMEOUT)
    assert mirror.task_storms() == ["s1"]

    changes.clear()
    writer.set_task("s1", 2, TaskInfo(component_id="bolt"))
    wait_for(lambda: mirror.task_ids("s1") == [1, 2], TIMEOUT)
    assert mirror.task_info("s1", 2) == TaskInfo(component_id="bolt")

    writer.set_task("s1", 2, TaskInfo(component_id="bolt", component_type="bolt"))
    wait_for(lambda: mirror.task_info("s1", 2).component_type == "bolt", TIMEOUT)
    changes.clear()
    writer.set_task("s1", 2, TaskInfo(component_id="renamed"))
    wait_for(lambda: mirror.task_info("s1", 2) == TaskInfo(component_id="renamed"), TIMEOUT)
    assert changes.wait("tasks", storm_id="s1", task_id=2).errors == ()


def test_supervisor_appears_and_vanishes(state_factory, writer, make_mirror):
    mirror, _state, changes = make_mirror()
    sup_state = state_factory()
    sup = mk_storm_cluster_state(sup_state)

    sup.set_supervisor_heartbeat("sup-a", supervisor(1))
    changes.wait("supervisor", supervisor_id="sup-a")
    assert mirror.supervisors() == ["sup-a"]
    assert mirror.supervisor_info("sup-a") == supervisor(1)

    changes.clear()
    sup.set_supervisor_heartbeat("sup-a", supervisor(1, time_secs=1_300_000_200))
    changes.wait("supervisor", supervisor_id="sup-a")
    assert mirror.supervisor_info("sup-a").time_secs == 1_300_000_200

    changes.clear()
    sup_state.close()  # its session ends: the ephemeral node goes
    changes.wait("supervisor", supervisor_id="sup-a")
    wait_for(lambda: mirror.supervisors() == [], TIMEOUT)
    assert mirror.supervisor_info("sup-a") is None


def test_heartbeats_appear_change_and_vanish(state_factory, writer, make_mirror):
    writer.setup_heartbeats("s1")
    mirror, _state, changes = make_mirror(heartbeat_secs=0.2)
    task_state = state_factory()
    task = mk_storm_cluster_state(task_state)

    task.set_task_heartbeat("s1", 1, heartbeat(emitted=1))
    task.set_task_heartbeat("s1", 2, heartbeat(emitted=2))
    changes.wait("heartbeats", storm_id="s1")
    wait_for(lambda: mirror.heartbeat_tasks("s1") == [1, 2], TIMEOUT)
    assert mirror.task_heartbeat("s1", 2) == heartbeat(emitted=2)  # read as it appeared

    # data is not watched, it is polled: the change comes as a poll's (no storm, no task)
    changes.clear()
    task.set_task_heartbeat("s1", 1, heartbeat(emitted=99))
    change = changes.wait("heartbeats", storm_id=None, timeout=TIMEOUT)
    wait_for(lambda: mirror.task_heartbeat("s1", 1) == heartbeat(emitted=99), TIMEOUT)
    assert change.task_id is None
    wait_for(lambda: mirror.heartbeat_poll_secs is not None, TIMEOUT)  # a poll ended
    assert 0 <= mirror.heartbeat_poll_secs < TIMEOUT
    # one change per batch, never one per task
    changes.clear()
    for t in range(1, 3):
        task.set_task_heartbeat("s1", t, heartbeat(emitted=200 + t))
    wait_for(lambda: mirror.task_heartbeat("s1", 2) == heartbeat(emitted=202), TIMEOUT)
    wait_for(lambda: mirror.task_heartbeat("s1", 1) == heartbeat(emitted=201), TIMEOUT)
    beats = changes.of("heartbeats")
    assert 1 <= len(beats) <= 2 and all(c.storm_id is None for c in beats), beats

    changes.clear()
    task.remove_task_heartbeat("s1", 2)
    changes.wait("heartbeats", storm_id="s1")
    wait_for(lambda: mirror.heartbeat_tasks("s1") == [1], TIMEOUT)
    assert mirror.task_heartbeat("s1", 2) is None

    task_state.close()  # ephemeral: the rest vanish with the session
    wait_for(lambda: mirror.heartbeat_tasks("s1") == [], TIMEOUT)
    wait_mirror_equals(mirror, writer)


class _CountingReads:
    """A ClusterState's reads for the heartbeat polls, counted."""

    def __init__(self, state):
        self.state = state
        self.reads = 0

    @property
    def connected(self):
        return self.state.connected

    def get_data_many(self, paths, watch=False):
        self.reads += 1
        return self.state.get_data_many(paths, watch)


def test_heartbeats_polled_on_a_session_of_their_own_else_on_the_mirrors(
    state_factory, writer, make_mirror
):
    writer.setup_heartbeats("s1")
    beat_state = state_factory()
    counting = _CountingReads(beat_state)
    mirror, _state, changes = make_mirror(heartbeat_secs=0.2, heartbeat_state=counting)
    task = mk_storm_cluster_state(state_factory())
    task.set_task_heartbeat("s1", 1, heartbeat(emitted=1))
    wait_for(lambda: mirror.task_heartbeat("s1", 1) == heartbeat(emitted=1), TIMEOUT)
    task.set_task_heartbeat("s1", 1, heartbeat(emitted=2))
    wait_for(lambda: mirror.task_heartbeat("s1", 1) == heartbeat(emitted=2), TIMEOUT)
    assert counting.reads > 0  # the polls read through it

    # its session gone, the polls go through the mirror's own session
    beat_state.close()
    task.set_task_heartbeat("s1", 1, heartbeat(emitted=3))
    wait_for(lambda: mirror.task_heartbeat("s1", 1) == heartbeat(emitted=3), TIMEOUT)
    # and the events the mirror's session watches go on as ever
    writer.report_task_error("s1", 1, "boom")
    change = changes.wait("errors", storm_id="s1", task_id=1)
    assert [e.error for e in change.errors] == ["boom"]
    wait_mirror_equals(mirror, writer)


def test_a_reported_error_is_delivered_once(writer, make_mirror):
    writer.report_task_error("s1", 3, "old error")
    mirror, _state, changes = make_mirror()
    assert [e.error for e in mirror.task_errors("s1", 3)] == ["old error"]

    writer.report_task_error("s1", 3, "boom")
    change = changes.wait("errors", storm_id="s1", task_id=3)
    assert [e.error for e in change.errors] == ["boom"]
    assert [e.error for e in mirror.task_errors("s1", 3)] == ["old error", "boom"]
    assert mirror.task_error_storms() == ["s1"]

    writer.report_task_error("s1", 4, ValueError("another task"))
    change = changes.wait("errors", storm_id="s1", task_id=4)
    assert "ValueError: another task" in change.errors[0].error

    # a task's error folder appearing empty is no news; its first error is
    writer.cluster_state.mkdirs(paths.taskerror_path("s1", 5))
    writer.activate_storm("barrier", base())  # events are handled in order
    changes.wait("storm", storm_id="barrier")
    writer.report_task_error("s1", 5, "first")
    change = changes.wait("errors", storm_id="s1", task_id=5)
    assert [e.error for e in change.errors] == ["first"]

    changes.clear()
    writer.teardown_task_errors("s1")
    changes.wait("errors", storm_id="s1")
    wait_for(lambda: mirror.task_error_storms() == [], TIMEOUT)
    assert mirror.task_errors("s1", 3) == []
    assert all(c.errors == () for c in changes.of("errors"))


def test_errors_in_quick_succession_arrive_in_order_without_duplicates(writer, make_mirror):
    writer.report_task_error("s1", 1, "before")
    mirror, _state, changes = make_mirror()

    total = 30
    for n in range(total):
        writer.report_task_error("s1", 1, f"e{n:02d}")

    def delivered():
        return [e.error for c in changes.of("errors", storm_id="s1", task_id=1) for e in c.errors]

    wait_for(lambda: f"e{total - 1:02d}" in delivered(), TIMEOUT)
    wait_mirror_equals(mirror, writer)
    got = delivered()
    assert len(got) == len(set(got)), f"an error was delivered twice: {got}"
    assert got == sorted(got), f"errors out of order: {got}"
    assert "before" not in got  # known at the cold load: not news
    # the newest ten are certainly delivered; older ones only if read before trimmed
    assert got[-MAX_TASK_ERRORS:] == [f"e{n:02d}" for n in range(total - MAX_TASK_ERRORS, total)]
    assert [e.error for e in mirror.task_errors("s1", 1)] == got[-MAX_TASK_ERRORS:]


def test_an_unreadable_node_fails_only_its_own_read(writer, make_mirror):
    populate(writer, storms=2)
    state = writer.cluster_state
    state.set_data(paths.storm_path("x"), b"\xff garbage")
    state.set_data(paths.task_path("storm-0", 3), b'{"component_id": 7}')
    mirror, _state, changes = make_mirror()

    with pytest.raises(UnreadableNodeError) as caught:
        mirror.storm_base("x")
    assert caught.value.path == "/storms/x"
    with pytest.raises(UnreadableNodeError):
        mirror.task_info("storm-0", 3)
    assert mirror.active_storms() == ["storm-0", "x"]
    assert mirror.storm_base("storm-0") == base("storm-0")
    assert mirror.task_info("storm-0", 2) is not None
    assert_mirror_equals(mirror, writer)

    writer.activate_storm("x", base("x"))
    changes.wait("storm", storm_id="x")
    wait_for(lambda: reads_as(mirror.storm_base, "x", base("x")), TIMEOUT)
    writer.set_task("storm-0", 3, TaskInfo(component_id="c1"))
    fixed = TaskInfo(component_id="c1")
    wait_for(lambda: reads_as(mirror.task_info, "storm-0", 3, fixed), TIMEOUT)


def test_a_failing_subscriber_does_not_stop_the_mirror(writer, make_mirror):
    mirror, _state, changes = make_mirror()

    def bad(change):
        raise RuntimeError("subscriber bug")

    mirror.subscribe(bad)
    writer.set_assignment("s1", assignment([1]))
    changes.wait("assignment", storm_id="s1")
    writer.activate_storm("s1", base())
    changes.wait("storm", storm_id="s1")
    assert mirror.storm_base("s1") == base()


def test_unsubscribe(writer, make_mirror):
    mirror, _state, changes = make_mirror()
    other = ChangeLog()
    unsubscribe = mirror.subscribe(other)
    writer.activate_storm("s1", base())
    other.wait("storm", storm_id="s1")
    unsubscribe()
    writer.activate_storm("s2", base())
    changes.wait("storm", storm_id="s2")
    assert not other.of("storm", storm_id="s2")


def test_periodic_resync_catches_what_watches_missed(state_factory, writer, make_mirror):
    writer.setup_heartbeats("s1")
    task = mk_storm_cluster_state(state_factory())
    task.set_task_heartbeat("s1", 1, heartbeat(emitted=1))
    # heartbeat data is neither watched nor, at this pace, polled: only a resync sees it
    mirror, _state, changes = make_mirror(heartbeat_secs=600, resync_secs=0.5)
    assert mirror.task_heartbeat("s1", 1) == heartbeat(emitted=1)
    changes.clear()
    task.set_task_heartbeat("s1", 1, heartbeat(emitted=2))
    changes.wait("resync", timeout=TIMEOUT)
    wait_for(lambda: mirror.task_heartbeat("s1", 1) == heartbeat(emitted=2), TIMEOUT)
    assert changes.of("heartbeats", storm_id=None)
    assert mirror.connected


def test_changes_during_constant_resyncs_are_neither_lost_nor_repeated(writer, make_mirror):
    # a cluster big enough for a resync to take a while, resynced all the time,
    # while errors and assignments keep coming: events applied between a
    # resync's reads must not be undone by its older reads, nor errors repeated
    for s in range(4):
        writer.setup_heartbeats(f"big-{s}")
        for t in range(30):
            writer.set_task(f"big-{s}", t, TaskInfo(component_id=f"c{t % 3}"))
            writer.set_task_heartbeat(f"big-{s}", t, heartbeat(emitted=t))
    mirror, _state, changes = make_mirror(resync_secs=0.1, heartbeat_secs=0.1)
    for n in range(40):
        if n % 8 == 0:  # let resyncs and writes overlap, however fast the store
            resyncs = len(changes.of("resync"))
            wait_for(lambda r=resyncs: len(changes.of("resync")) > r, TIMEOUT)
        writer.report_task_error(f"big-{n % 4}", n % 3, f"e{n:02d}")
        writer.set_assignment(f"big-{n % 4}", assignment(range(n % 5 + 1)))
        if n % 10 == 0:
            writer.deactivate_storm(f"big-{(n // 10) % 4}")
        else:
            writer.activate_storm(f"big-{n % 4}", base(launch=n))
    wait_mirror_equals(mirror, writer, timeout=TIMEOUT)
    delivered = [e.error for c in changes.of("errors") for e in c.errors]
    assert sorted(delivered) == [f"e{n:02d}" for n in range(40)]


class _WriteAfterFirstList:
    """A real ClusterState that, right after its first listing of ``path`` (whose watch is
    then set), runs ``write`` and waits until the watch's event has reached the mirror:
    a change racing a resync's reads, made deterministic."""

    def __init__(self, state, path, write):
        self._state = state
        self._path = path
        self._write = write
        self._event_seen = threading.Event()
        self.fired = False

    def __getattr__(self, name):
        return getattr(self._state, name)

    def register(self, callback):
        def relay(event_type, path):
            callback(event_type, path)
            if path == self._path:
                self._event_seen.set()

        return self._state.register(relay)

    def get_children_many(self, paths_, watch=False):
        paths_ = list(paths_)
        listed = self._state.get_children_many(paths_, watch)
        if self._path in paths_ and not self.fired:
            self.fired = True
            self._write()
            assert self._event_seen.wait(TIMEOUT)
        return listed


def test_a_change_to_a_folder_a_resync_has_listed_but_not_applied_is_not_lost(
    state_factory, writer
):
    # the cold load (a resync) lists a new storm's empty heartbeat folder; a heartbeat
    # appears before the load is applied: its event comes between the load's reads, for
    # a folder not in the mirror yet, and must be read again once it is
    writer.setup_heartbeats("s1")
    beating = mk_storm_cluster_state(state_factory())
    state = _WriteAfterFirstList(
        state_factory(),
        f"{paths.TASKBEATS_SUBTREE}/s1",
        lambda: beating.set_task_heartbeat("s1", 1, heartbeat()),
    )
    mirror = ClusterMirror(state, heartbeat_secs=0.2, resync_secs=600)
    try:
        mirror.start(wait=TIMEOUT)
        assert state.fired
        wait_for(lambda: mirror.heartbeat_tasks("s1") == [1], TIMEOUT)
        wait_mirror_equals(mirror, writer)
    finally:
        mirror.stop()


# -- disconnects -------------------------------------------------------------------------


def test_suspended_connection_serves_stale_data_then_resyncs(
    state_factory, writer, make_mirror, zk_server
):
    populate(writer, storms=2)
    clock = Clock()
    mirror, state, changes = make_mirror(time_fn=clock)
    synced = mirror.synced_at
    changes.clear()

    if state_factory.kind == "memory":
        state.suspend()
    else:
        zk_server.stop()
    wait_for(lambda: not mirror.connected, TIMEOUT)
    assert not mirror.wait_synced(0)
    changes.wait("connection")
    clock.now += 100
    # stale but served, and the page can say since when
    assert mirror.active_storms() == ["storm-0"]
    assert mirror.synced_at == synced

    if state_factory.kind == "zookeeper":
        zk_server.start()
        wait_for(lambda: writer.cluster_state.connected, TIMEOUT)
    # the outage's changes: written while the reader is away (or racing its resync)
    writer.deactivate_storm("storm-0")
    writer.set_assignment("new", assignment([7]))
    writer.report_task_error("storm-1", 1, "during the outage")
    if state_factory.kind == "memory":
        state.resume()

    assert mirror.wait_synced(TIMEOUT)
    wait_for(lambda: mirror.connected, TIMEOUT)
    wait_mirror_equals(mirror, writer)
    assert mirror.synced_at == clock.now
    changes.wait("storm", storm_id="storm-0")
    changes.wait("assignment", storm_id="new")
    errors = [
        e.error for c in changes.of("errors", storm_id="storm-1", task_id=1) for e in c.errors
    ]
    assert errors == ["during the outage"]
    assert changes.of("connection") and changes.of("resync")

    # watches are armed again
    writer.activate_storm("later", base("later"))
    changes.wait("storm", storm_id="later")


def test_session_expiry_resyncs_and_rearms(state_factory, writer, make_mirror):
    populate(writer, storms=1)
    mirror, state, changes = make_mirror()
    changes.clear()

    expire_session(state)
    changes.wait("connection")
    assert mirror.wait_synced(TIMEOUT)
    wait_for(lambda: mirror.connected, TIMEOUT)
    wait_mirror_equals(mirror, writer)

    # every kind of watch works in the new session
    writer.set_supervisor_heartbeat("sup-new", supervisor(9))
    changes.wait("supervisor", supervisor_id="sup-new")
    writer.set_task("storm-0", 9, TaskInfo(component_id="c9"))
    wait_for(lambda: 9 in mirror.task_ids("storm-0"), TIMEOUT)
    writer.report_task_error("storm-0", 9, "after expiry")
    change = changes.wait("errors", storm_id="storm-0", task_id=9)
    assert [e.error for e in change.errors] == ["after expiry"]
    writer.set_task_heartbeat("storm-0", 9, heartbeat())
    wait_for(lambda: 9 in mirror.heartbeat_tasks("storm-0"), TIMEOUT)
    wait_mirror_equals(mirror, writer)


def test_change_records_are_frozen():
    change = MirrorChange("storm", "s1")
    with pytest.raises(AttributeError):
        change.kind = "tasks"
    assert change.errors == () and change.task_id is None


# -- news first (clusterstate.precedence) -----------------------------------------------


def test_a_watched_change_is_news_until_the_mirror_has_told_it(writer, make_mirror, monkeypatch):
    """Background work (heartbeat polls, whole view builds) steps aside while news is held:
    the mirror holds each watch event from its arrival until its listeners were told."""
    gate = precedence.Gate(max_wait=0.05)
    monkeypatch.setattr(precedence, "NEWS", gate)
    mirror, _state, changes = make_mirror()
    held_when_told = []
    mirror.subscribe(
        lambda change: held_when_told.append(gate.pending) if change.kind == "storm" else None
    )
    writer.activate_storm("s1", base("s1"))
    changes.wait("storm", storm_id="s1")
    assert held_when_told and min(held_when_told) >= 1
    # and let go once told: nothing stays held
    wait_for(lambda: gate.pending == 0, TIMEOUT)


def test_a_stopped_mirror_holds_no_news(writer, make_mirror, monkeypatch):
    gate = precedence.Gate(max_wait=0.05)
    monkeypatch.setattr(precedence, "NEWS", gate)
    mirror, _state, changes = make_mirror()
    writer.activate_storm("s1", base("s1"))
    changes.wait("storm", storm_id="s1")
    mirror.stop()
    mirror._on_watch("node-created", "/storms/s2")  # a watch kazoo fires as it stops
    assert gate.pending == 0


def test_a_mirror_stopping_holds_no_news_and_its_stop_still_waits_for_its_threads(
    writer, make_mirror, monkeypatch
):
    gate = precedence.Gate(max_wait=0.05)
    monkeypatch.setattr(precedence, "NEWS", gate)
    mirror, _state, _changes = make_mirror()
    worker, poller = mirror._thread, mirror._beat_thread
    mirror.stopping()  # returns at once (a new leader's take-over)
    mirror._on_watch("node-created", "/storms/s2")
    assert gate.pending == 0
    mirror.stop()
    assert not worker.is_alive() and not poller.is_alive()


def test_the_heartbeat_poll_steps_aside_for_news(writer, make_mirror, monkeypatch):
    gate = precedence.Gate(max_wait=0.01)
    monkeypatch.setattr(precedence, "NEWS", gate)
    writer.setup_heartbeats("s1")
    for t in range(1, 4):
        writer.set_task_heartbeat("s1", t, heartbeat(emitted=t))
    mirror, _state, _changes = make_mirror(heartbeat_secs=0.05)
    polls = mirror.heartbeat_poll_secs
    gate.begin()  # news that never ends: every checkpoint of the polls waits (at half pace)
    # (no other background work here: the waits are the polls')
    wait_for(lambda: gate.waits >= 3 and mirror.heartbeat_poll_secs != polls, TIMEOUT)
    gate.end()


# -- seeded from another copy (a new leader) ----------------------------------------------


class _ReadPaths:
    """A ClusterState whose data reads are recorded by path (everything else passed on)."""

    def __init__(self, state):
        self.state = state
        self.read: set[str] = set()
        self.listed: list[list[str]] = []  # each listing's folders, in order

    def get_children_many(self, paths, watch=False):
        paths = list(paths)
        self.listed.append(paths)
        return self.state.get_children_many(paths, watch)

    def get_data_many(self, paths, watch=False):
        paths = list(paths)
        self.read.update(paths)
        return self.state.get_data_many(paths, watch)

    def __getattr__(self, name):
        return getattr(self.state, name)


def test_a_seeded_mirror_answers_at_once_and_tells_only_what_differs(
    state_factory, writer, make_mirror
):
    populate(writer)
    followed, _state, _changes = make_mirror()  # the copy a follower held
    followed.stop()
    # while another takes over: an error reported, a storm come, a storm gone
    writer.report_task_error("storm-1", 1, "while nobody led")
    writer.activate_storm("storm-new", base("storm-new"))
    writer.deactivate_storm("storm-0")

    reads = _ReadPaths(state_factory())
    mirror = ClusterMirror(reads, heartbeat_secs=60)
    changes = ChangeLog()
    mirror.subscribe(changes)
    assert mirror.seed(followed)
    # synced at once, with what the copy held
    assert mirror.connected and mirror.synced_at == followed.synced_at
    assert mirror.storm_base("storm-0") == base("storm-0")
    assert mirror.resyncs == 0
    try:
        mirror.start(wait=None)
        changes.wait("resync")
        assert_mirror_equals(mirror, writer)
        # what differed is told, once; nothing the copy held is told again
        told = [e.error for c in changes.of("errors") for e in c.errors]
        assert told == ["while nobody led"]
        assert changes.of("storm", storm_id="storm-new") and changes.of("storm", storm_id="storm-0")
        assert not changes.of("storm", storm_id="storm-1")
        # and its first sync read every node, the errors and heartbeats it knew included, so
        # that a copy made of its reads (the followers') is whole
        for storm_id, task_id in (("storm-0", 1), ("storm-0", 2), ("storm-2", 1)):
            assert followed.task_errors(storm_id, task_id)
            folder = paths.taskerror_path(storm_id, task_id) + "/"
            assert any(p.startswith(folder) for p in reads.read)
        assert paths.taskbeat_path("storm-2", 1) in reads.read
        assert mirror.resyncs == 1
        # the error folders it knew were listed (and so watched) first, with the roots
        assert paths.taskerror_path("storm-0", 2) in reads.listed[0]
    finally:
        mirror.stop()


def test_a_seeded_mirror_watches_the_tasks_that_erred_last_first(
    state_factory, writer, make_mirror
):
    """On a large cluster a new leader's first read lists thousands of error folders: the
    ones whose last error is the newest come first, a task failing now being the likeliest to
    fail again."""
    clock = [0.0]
    erring = mk_storm_cluster_state(state_factory(), time_fn=lambda: clock[0])
    last_errors = {("storm-0", 1): 1_000, ("storm-1", 3): 3_000, ("storm-2", 2): 2_000}
    try:
        for s in range(3):
            writer.set_task(f"storm-{s}", 1, TaskInfo(component_id="c1"))
        for (storm_id, task_id), when in last_errors.items():
            for ago in (500, 0):
                clock[0] = when - ago
                erring.report_task_error(storm_id, task_id, f"at {clock[0]}")
    finally:
        erring.disconnect()
    followed, _state, _changes = make_mirror()
    followed.stop()

    reads = _ReadPaths(state_factory())
    mirror = ClusterMirror(reads, heartbeat_secs=60)
    assert mirror.seed(followed)
    try:
        mirror.start(wait=None)
        wait_for(lambda: mirror.resyncs == 1, TIMEOUT)
        folders = [p for p in reads.listed[0] if p.startswith(paths.TASKERRORS_SUBTREE + "/")]
        assert folders[:3] == [
            paths.taskerror_path("storm-1", 3),
            paths.taskerror_path("storm-2", 2),
            paths.taskerror_path("storm-0", 1),
        ]
    finally:
        mirror.stop()


def test_only_a_synced_mirror_seeds_and_only_before_it_starts(state_factory, writer, make_mirror):
    unsynced, _state, _changes = make_mirror(start=False)
    fresh = ClusterMirror(state_factory())
    assert not fresh.seed(unsynced)
    assert fresh.synced_at is None and not fresh.connected
    started, _state, _changes = make_mirror()
    with pytest.raises(RuntimeError):
        started.seed(started)
