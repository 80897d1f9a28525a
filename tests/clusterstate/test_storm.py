"""StormClusterState against the in-memory store and a real ZooKeeper alike."""

from __future__ import annotations

import logging
import threading

import pytest

from clusterstate import (
    Assignment,
    StormBase,
    SupervisorInfo,
    TaskError,
    TaskHeartbeat,
    TaskInfo,
    UnreadableNodeError,
)
from clusterstate.records import parse_error_name
from clusterstate.storm import MAX_TASK_ERRORS, StormClusterState, mk_storm_cluster_state
from tests.helpers import expire_session, wait_for

TIMEOUT = 30  # the bound of a wait on a session or a watch, on a busy machine

ASSIGNMENT = Assignment(
    master_code_dir="/nimbus/stormdist/wordcount-1-1",
    node_host={"node-a": "host-a", "node-b": "host-b"},
    task_node_port={1: ("node-a", 6700), 2: ("node-b", 6701)},
    task_start_time_secs={1: 1_300_000_000, 2: 1_300_000_001},
)
BASE = StormBase(storm_name="wordcount", launch_time_secs=1_300_000_000)
SUPERVISOR = SupervisorInfo(
    time_secs=1_300_000_100, hostname="host-a", worker_ports=(6700, 6701), uptime_secs=100
)
SPOUT_STATS = {
    "type": "spout",
    "rate": 1.5,
    "emitted": {"600": {"default": 10}, "all-time": {"default": 20}},
    "transferred": {"600": {"default": 10}},
    "acked": {"600": {"default": 9}},
    "failed": {"600": {"default": 1}},
    "complete_latencies": {"600": {"default": 3.5}},
}
HEARTBEAT = TaskHeartbeat(time_secs=1_300_000_100, uptime_secs=90, stats=SPOUT_STATS)

BAD_IDS = [".", "..", "a/b", "/", "", "x" * 256, "\x00", "a\x00b", "a\nb", "\x1f", "\x7f", 7, None]
BAD_TASK_IDS = [-1, True, False, "a", "1/2", "..", 1.5, None, "-1"]


class Clock:
    """An injected clock: tests set the seconds that name error nodes."""

    def __init__(self, now: float = 1_300_000_000):
        self.now = now

    def __call__(self) -> float:
        return self.now


class Calls:
    """Counts a callback's calls and their arguments; `fired` waits for the next."""

    def __init__(self):
        self.args = []
        self._cond = threading.Condition()

    def __call__(self, *args):
        with self._cond:
            self.args.append(args)
            self._cond.notify_all()

    def wait(self, count: int = 1, timeout: float = TIMEOUT) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: len(self.args) >= count, timeout)


class Recording:
    """Delegates to a real ClusterState and records every call made to it."""

    def __init__(self, inner):
        self._inner = inner
        self.calls = []

    def __getattr__(self, name):
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        def call(*args, **kwargs):
            self.calls.append(name)
            return attr(*args, **kwargs)

        return call


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def storm(cluster_state, clock):
    sc = mk_storm_cluster_state(cluster_state, time_fn=clock)
    yield sc
    sc.disconnect()


@pytest.fixture
def open_storm(state_factory, clock):
    """Opens StormClusterStates each on a session of its own; all disconnected at the end."""
    opened = []

    def open_one():
        state = state_factory()
        sc = mk_storm_cluster_state(state, time_fn=clock)
        opened.append((sc, state))
        return sc

    yield open_one
    for sc, state in opened:
        sc.disconnect()
        state.close()


def drain(storm_state, name="drain"):
    """Wait until every event caused so far has been dispatched.

    Events reach a session in the order of the writes that caused them, so
    once a probe written after them has fired, they have all been handled.
    """
    probe = Calls()
    drain.count = getattr(drain, "count", 0) + 1
    storm_id = f"{name}-{drain.count}"
    storm_state.storm_base(storm_id, probe)
    storm_state.activate_storm(storm_id, BASE)
    assert probe.wait(), "the probe event never arrived"
    storm_state.deactivate_storm(storm_id)


# -- creation and disconnect -----------------------------------------------


def test_creation_makes_every_subtree(cluster_state):
    sc = mk_storm_cluster_state(cluster_state)
    try:
        assert sorted(cluster_state.get_children("/", False)) == sorted(
            ["assignments", "tasks", "storms", "supervisors", "taskbeats", "taskerrors"]
        )
    finally:
        sc.disconnect()


def test_refuses_what_is_neither_state_nor_conf():
    with pytest.raises(TypeError):
        mk_storm_cluster_state(42)


def test_disconnect_of_shared_leaves_the_state_open(cluster_state):
    sc = mk_storm_cluster_state(cluster_state)
    assert sc.cluster_state is cluster_state
    sc.set_assignment("s", ASSIGNMENT)
    sc.disconnect()
    sc.disconnect()
    assert cluster_state.connected
    assert cluster_state.get_children("/assignments", False) == ["s"]
    # a second layer on the same state still works
    other = mk_storm_cluster_state(cluster_state)
    assert other.assignment_info("s") == ASSIGNMENT
    other.disconnect()


def test_disconnect_stops_callbacks(cluster_state):
    sc = mk_storm_cluster_state(cluster_state)
    calls = Calls()
    sc.assignments(calls)
    sc.disconnect()
    witness = mk_storm_cluster_state(cluster_state)
    try:
        seen = Calls()
        witness.assignments(seen)
        witness.set_assignment("s", ASSIGNMENT)
        assert seen.wait()
        drain(witness)
        assert calls.args == []
    finally:
        witness.disconnect()


def test_solo_closes_its_own_state(zk_conf):
    sc = mk_storm_cluster_state(zk_conf)
    state = sc.cluster_state
    sc.set_supervisor_heartbeat("sup", SUPERVISOR)
    assert sc.supervisor_info("sup") == SUPERVISOR
    assert state.connected
    sc.disconnect()
    sc.disconnect()
    assert not state.connected
    # its ephemeral heartbeat went with its session
    again = mk_storm_cluster_state(zk_conf)
    try:
        assert again.supervisors() == []
        again.cluster_state.delete_node("/")  # keep the shared server small
    finally:
        again.disconnect()


# -- round trips and missing nodes ------------------------------------------


def test_missing_nodes_read_as_none_and_empty(storm):
    assert storm.assignments() == []
    assert storm.assignment_info("s") is None
    assert storm.active_storms() == []
    assert storm.storm_base("s") is None
    assert storm.task_storms() == []
    assert storm.task_ids("s") == []
    assert storm.task_info("s", 1) is None
    assert storm.task_heartbeat("s", 1) is None
    assert storm.supervisors() == []
    assert storm.supervisor_info("sup") is None
    assert storm.heartbeat_storms() == []
    assert storm.task_error_storms() == []
    assert storm.heartbeat_tasks("s") == []
    assert storm.task_errors("s", 1) == []


def test_task_errors_read_does_not_write(storm, cluster_state):
    assert storm.task_errors("s", 1) == []
    assert cluster_state.get_children("/taskerrors", False) == []


def test_records_round_trip(storm, open_storm):
    storm.set_assignment("s", ASSIGNMENT)
    storm.activate_storm("s", BASE)
    storm.set_task("s", 1, TaskInfo(component_id="spout", component_type="spout"))
    storm.set_task("s", 2, TaskInfo(component_id="count"))
    storm.setup_heartbeats("s")
    storm.set_task_heartbeat("s", 1, HEARTBEAT)
    storm.set_task_heartbeat("s", 2, TaskHeartbeat(time_secs=5, uptime_secs=1))
    storm.set_supervisor_heartbeat("sup", SUPERVISOR)

    # read back through another session, so nothing is served from memory
    reader = open_storm()
    assert reader.assignments() == ["s"]
    assert reader.assignment_info("s") == ASSIGNMENT
    assert reader.active_storms() == ["s"]
    assert reader.storm_base("s") == BASE
    assert reader.task_storms() == ["s"]
    assert reader.task_ids("s") == [1, 2]
    assert reader.task_info("s", 1) == TaskInfo(component_id="spout", component_type="spout")
    assert reader.task_info("s", "2") == TaskInfo(component_id="count")
    assert reader.task_heartbeat("s", 1) == HEARTBEAT
    assert reader.task_heartbeat("s", 2) == TaskHeartbeat(time_secs=5, uptime_secs=1)
    assert reader.supervisors() == ["sup"]
    assert reader.supervisor_info("sup") == SUPERVISOR
    assert reader.heartbeat_storms() == ["s"]
    assert reader.heartbeat_tasks("s") == [1, 2]


def test_overwrites_replace(storm):
    storm.set_supervisor_heartbeat("sup", SUPERVISOR)
    later = SupervisorInfo(time_secs=2, hostname="h", worker_ports=[1], uptime_secs=3)
    storm.set_supervisor_heartbeat("sup", later)
    assert storm.supervisor_info("sup") == later
    storm.set_task_heartbeat("s", 1, HEARTBEAT)
    storm.set_task_heartbeat("s", 1, TaskHeartbeat(time_secs=9, uptime_secs=9))
    assert storm.task_heartbeat("s", 1) == TaskHeartbeat(time_secs=9, uptime_secs=9)


def test_longest_id_is_accepted(storm):
    storm_id = "x" * 255
    storm.activate_storm(storm_id, BASE)
    assert storm.storm_base(storm_id) == BASE
    assert storm.active_storms() == [storm_id]


def test_deactivate_remove_and_teardown(storm):
    storm.set_assignment("s", ASSIGNMENT)
    storm.activate_storm("s", BASE)
    storm.set_task("s", 1, TaskInfo(component_id="spout"))
    storm.set_task_heartbeat("s", 1, HEARTBEAT)
    storm.report_task_error("s", 1, "boom")

    storm.deactivate_storm("s")
    assert storm.storm_base("s") is None
    assert storm.assignment_info("s") == ASSIGNMENT  # inactive, not removed

    storm.remove_task_heartbeat("s", 1)
    assert storm.task_heartbeat("s", 1) is None
    assert storm.heartbeat_tasks("s") == []

    storm.remove_storm("s")
    assert storm.assignments() == []
    assert storm.task_storms() == []
    assert storm.heartbeat_storms() == ["s"]  # torn down separately

    storm.teardown_heartbeats("s")
    assert storm.heartbeat_storms() == []
    assert storm.task_error_storms() == ["s"]
    storm.teardown_task_errors("s")
    assert storm.task_error_storms() == []
    assert storm.task_errors("s", 1) == []

    # and again, on nodes that are gone: no error
    storm.deactivate_storm("s")
    storm.remove_task_heartbeat("s", 1)
    storm.remove_storm("s")
    storm.teardown_heartbeats("s")
    storm.teardown_task_errors("s")


def test_setup_heartbeats_makes_the_storm_node(storm):
    storm.setup_heartbeats("s")
    assert storm.heartbeat_storms() == ["s"]
    assert storm.heartbeat_tasks("s") == []


def test_non_task_children_are_skipped(storm, cluster_state):
    storm.set_task("s", 3, TaskInfo(component_id="c"))
    cluster_state.set_data("/tasks/s/notatask", b"{}")
    storm.set_task_heartbeat("s", 4, HEARTBEAT)
    cluster_state.set_data("/taskbeats/s/-2", b"{}")
    assert storm.task_ids("s") == [3]
    assert storm.heartbeat_tasks("s") == [4]


def test_remove_storm_deletes_tasks_before_the_assignment(storm, state_factory):
    storm.set_assignment("s", ASSIGNMENT)
    storm.set_task("s", 1, TaskInfo(component_id="spout"))
    storm.set_task("s", 2, TaskInfo(component_id="count"))

    watcher = state_factory()
    events = []
    done = threading.Event()

    def record(event_type, path):
        events.append((event_type, path))
        if path == "/assignments/s":
            done.set()

    watcher.register(record)
    watcher.get_children("/tasks/s", True)
    watcher.get_data("/assignments/s", True)
    storm.remove_storm("s")
    assert done.wait(TIMEOUT)
    watcher.close()
    paths_in_order = [path for _, path in events]
    assert paths_in_order.index("/tasks/s") < paths_in_order.index("/assignments/s")
    assert ("node-deleted", "/assignments/s") in events


# -- callbacks ----------------------------------------------------------------


def test_assignments_callback_fires_once(storm, open_storm):
    writer = open_storm()
    calls = Calls()
    assert storm.assignments(calls) == []
    writer.set_assignment("s1", ASSIGNMENT)
    assert calls.wait()
    assert calls.args == [()]

    # the watch and the callback are spent: a raw watch on the same node
    # fires through the dispatcher, which finds no callback to call
    storm.cluster_state.get_children("/assignments", True)
    writer.set_assignment("s2", ASSIGNMENT)
    drain(storm)
    assert calls.args == [()]

    # re-armed, it fires again
    assert storm.assignments(calls) == ["s1", "s2"]
    writer.remove_storm("s1")
    assert calls.wait(2)
    assert calls.args == [(), ()]


def test_assignment_info_callback_gets_the_storm_id(storm, open_storm):
    writer = open_storm()
    calls_s1, calls_s2 = Calls(), Calls()
    assert storm.assignment_info("s1", calls_s1) is None
    assert storm.assignment_info("s2", calls_s2) is None
    writer.set_assignment("s1", ASSIGNMENT)
    assert calls_s1.wait()
    assert calls_s1.args == [("s1",)]
    drain(storm)
    assert calls_s2.args == []

    storm.cluster_state.get_data("/assignments/s1", True)
    writer.set_assignment("s1", ASSIGNMENT)
    drain(storm)
    assert calls_s1.args == [("s1",)]

    assert storm.assignment_info("s1", calls_s1) == ASSIGNMENT
    writer.remove_storm("s1")
    assert calls_s1.wait(2)
    assert calls_s1.args == [("s1",), ("s1",)]


def test_storm_base_callback_gets_the_storm_id(storm, open_storm):
    writer = open_storm()
    calls = Calls()
    assert storm.storm_base("s", calls) is None
    writer.activate_storm("s", BASE)
    assert calls.wait()
    assert calls.args == [("s",)]

    storm.cluster_state.get_data("/storms/s", True)
    writer.activate_storm("s", StormBase(storm_name="renamed", launch_time_secs=1))
    drain(storm)
    assert calls.args == [("s",)]

    assert storm.storm_base("s", calls) == StormBase(storm_name="renamed", launch_time_secs=1)
    writer.deactivate_storm("s")
    assert calls.wait(2)
    assert calls.args == [("s",), ("s",)]


def test_supervisors_callback_fires_once(storm, open_storm):
    writer = open_storm()
    calls = Calls()
    assert storm.supervisors(calls) == []
    writer.set_supervisor_heartbeat("sup1", SUPERVISOR)
    assert calls.wait()
    assert calls.args == [()]

    storm.cluster_state.get_children("/supervisors", True)
    writer.set_supervisor_heartbeat("sup2", SUPERVISOR)
    drain(storm)
    assert calls.args == [()]

    assert storm.supervisors(calls) == ["sup1", "sup2"]
    writer.cluster_state.close()  # both heartbeats vanish with the session
    assert calls.wait(2)
    assert calls.args == [(), ()]


def test_a_read_without_callback_leaves_the_armed_one(storm, open_storm):
    writer = open_storm()
    calls = Calls()
    storm.assignments(calls)
    storm.assignments()
    writer.set_assignment("s", ASSIGNMENT)
    assert calls.wait()
    assert calls.args == [()]


def test_a_failing_callback_does_not_stop_dispatch(storm, open_storm):
    writer = open_storm()

    def fail():
        raise RuntimeError("callback bug")

    storm.assignments(fail)
    writer.set_assignment("s", ASSIGNMENT)
    drain(storm)  # the dispatcher survived and still delivers
    calls = Calls()
    storm.supervisors(calls)
    writer.set_supervisor_heartbeat("sup", SUPERVISOR)
    assert calls.wait()


def test_unknown_subtree_events_are_logged_not_fatal(storm, caplog):
    caplog.set_level(logging.WARNING, logger="clusterstate.storm")
    state = storm.cluster_state
    state.get_data("/elsewhere", True)
    state.set_data("/elsewhere", b"x")
    wait_for(lambda: any("/elsewhere" in r.getMessage() for r in caplog.records), timeout=TIMEOUT)
    drain(storm)


def test_callbacks_survive_session_expiry(storm, open_storm):
    writer = open_storm()
    storm.set_assignment("s", ASSIGNMENT)
    storm.set_supervisor_heartbeat("sup", SUPERVISOR)
    storm.assignments(Calls())  # a watch the expiry drops
    expire_session(storm.cluster_state)
    wait_for(lambda: storm.cluster_state.connected, timeout=TIMEOUT)
    assert storm.assignment_info("s") == ASSIGNMENT
    assert storm.assignments() == ["s"]
    assert storm.supervisors() == []  # the old session's heartbeat is gone

    calls, info_calls = Calls(), Calls()
    storm.assignments(calls)
    storm.assignment_info("s", info_calls)
    writer.set_assignment("t", ASSIGNMENT)
    writer.set_assignment("s", ASSIGNMENT)
    assert calls.wait()
    assert info_calls.wait()
    assert calls.args == [()]
    assert info_calls.args == [("s",)]


# -- ephemeral heartbeats ------------------------------------------------------


def test_ephemeral_heartbeats_vanish_with_their_session(open_storm):
    beating, reader = open_storm(), open_storm()
    beating.set_supervisor_heartbeat("sup", SUPERVISOR)
    beating.setup_heartbeats("s")
    beating.set_task_heartbeat("s", 1, HEARTBEAT)
    beating.set_task("s", 1, TaskInfo(component_id="spout"))
    assert reader.supervisors() == ["sup"]
    assert reader.heartbeat_tasks("s") == [1]

    beating.cluster_state.close()
    wait_for(lambda: reader.supervisors() == [] and reader.heartbeat_tasks("s") == [], TIMEOUT)
    assert reader.task_heartbeat("s", 1) is None
    assert reader.supervisor_info("sup") is None
    assert reader.task_info("s", 1) == TaskInfo(component_id="spout")  # persistent
    assert reader.heartbeat_storms() == ["s"]


# -- task errors ----------------------------------------------------------------


def _names(state, path="/taskerrors/s/1"):
    return state.get_children(path, False)


def test_report_and_read_errors(storm, clock):
    clock.now = 1000.7
    storm.report_task_error("s", 1, "first")
    clock.now = 1002
    try:
        raise RuntimeError("second went wrong")
    except RuntimeError as exc:
        storm.report_task_error("s", 1, exc)
    errors = storm.task_errors("s", 1)
    assert [e.time_secs for e in errors] == [1000, 1002]
    assert errors[0] == TaskError(error="first", time_secs=1000)
    assert errors[1].error.startswith("Traceback (most recent call last):")
    assert "RuntimeError: second went wrong" in errors[1].error
    assert storm.task_error_storms() == ["s"]
    assert storm.task_errors("s", 2) == []
    for name in _names(storm.cluster_state):
        time_secs, seq = parse_error_name(name)
        assert seq is not None and name.startswith(f"{time_secs}-")


def test_error_text_is_utf8(storm, cluster_state):
    storm.report_task_error("s", 1, "naïve — ✓")
    (name,) = _names(cluster_state)
    assert cluster_state.get_data(f"/taskerrors/s/1/{name}", False) == "naïve — ✓".encode()
    assert storm.task_errors("s", 1)[0].error == "naïve — ✓"


def test_error_must_be_exception_or_text(storm, cluster_state):
    with pytest.raises(TypeError):
        storm.report_task_error("s", 1, 42)
    assert cluster_state.get_children("/taskerrors", False) == []


def test_same_second_errors_are_all_kept(storm, clock):
    clock.now = 2000
    for i in range(7):
        storm.report_task_error("s", 1, f"e{i}")
    assert storm.task_errors("s", 1) == [TaskError(f"e{i}", 2000) for i in range(7)]


def test_only_the_newest_ten_are_kept(storm, clock):
    clock.now = 2000
    for i in range(13):
        storm.report_task_error("s", 1, f"e{i}")
    assert len(_names(storm.cluster_state)) == MAX_TASK_ERRORS
    assert storm.task_errors("s", 1) == [TaskError(f"e{i}", 2000) for i in range(3, 13)]


def test_the_cap_is_per_task(storm):
    for i in range(12):
        storm.report_task_error("s", 1, f"a{i}")
        storm.report_task_error("s", 2, f"b{i}")
    assert [e.error for e in storm.task_errors("s", 1)] == [f"a{i}" for i in range(2, 12)]
    assert [e.error for e in storm.task_errors("s", 2)] == [f"b{i}" for i in range(2, 12)]


def test_original_bare_names_are_read_first_by_time(storm, cluster_state, clock):
    # the original named each error by its time alone; such nodes sort first
    cluster_state.set_data("/taskerrors/s/1/1500", b"bare late")
    cluster_state.set_data("/taskerrors/s/1/1400", b"bare early")
    cluster_state.set_data("/taskerrors/s/1/not-an-error", b"ignored")
    clock.now = 1000  # a sequential error with an older time still comes after
    storm.report_task_error("s", 1, "seq a")
    clock.now = 1600
    storm.report_task_error("s", 1, "seq b")
    assert storm.task_errors("s", 1) == [
        TaskError("bare early", 1400),
        TaskError("bare late", 1500),
        TaskError("seq a", 1000),
        TaskError("seq b", 1600),
    ]

    # at the cap, the bare ones are the oldest: they go first
    for i in range(8):
        storm.report_task_error("s", 1, f"more {i}")
    errors = storm.task_errors("s", 1)
    assert [e.error for e in errors] == ["seq a", "seq b"] + [f"more {i}" for i in range(8)]
    assert "1400" not in _names(cluster_state)
    assert "1500" not in _names(cluster_state)
    assert "not-an-error" in _names(cluster_state)  # not an error node: left alone


def test_reader_caps_at_ten_even_when_more_are_stored(storm, cluster_state):
    for t in range(100, 112):
        cluster_state.set_data(f"/taskerrors/s/1/{t}", f"old {t}".encode())
    errors = storm.task_errors("s", 1)
    assert errors == [TaskError(f"old {t}", t) for t in range(102, 112)]


def test_concurrent_reporters_keep_exactly_the_newest_ten(open_storm, state_factory):
    sessions, threads_per_session, reports_per_thread = 5, 10, 2
    reporters = [open_storm() for _ in range(sessions)]
    created = []
    created_lock = threading.Lock()
    failures = []
    start = threading.Barrier(sessions * threads_per_session)

    def report(sc, n):
        try:
            start.wait(TIMEOUT)
            for i in range(reports_per_thread):
                path = sc.report_task_error("s", 1, f"error {n}.{i}")
                with created_lock:
                    created.append((path, f"error {n}.{i}"))
        except Exception as exc:  # pragma: no cover - reported below
            failures.append(exc)

    threads = [
        threading.Thread(target=report, args=(reporters[k % sessions], k))
        for k in range(sessions * threads_per_session)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT * 6)
    assert not failures
    assert not any(t.is_alive() for t in threads)
    assert len(created) == sessions * threads_per_session * reports_per_thread

    def seq(path):
        return parse_error_name(path.rsplit("/", 1)[1])[1]

    newest = sorted(created, key=lambda c: seq(c[0]))[-MAX_TASK_ERRORS:]
    reader = mk_storm_cluster_state(state_factory())
    try:
        remaining = reader.cluster_state.get_children("/taskerrors/s/1", False)
        assert sorted(remaining) == sorted(p.rsplit("/", 1)[1] for p, _ in newest)
        assert [e.error for e in reader.task_errors("s", 1)] == [text for _, text in newest]
    finally:
        reader.disconnect()
        reader.cluster_state.close()


class DeletesBetweenListAndRead(Recording):
    """A real ClusterState on which another client deletes a node right after a listing."""

    def __init__(self, inner, victim):
        super().__init__(inner)
        self.victim = victim

    def get_children_many(self, paths, watch=False):
        result = self._inner.get_children_many(paths, watch)
        self._inner.delete_node(self.victim)
        return result


def test_errors_deleted_between_list_and_read_are_skipped(storm, cluster_state, clock):
    created = []
    for i in range(3):
        clock.now = 3000 + i
        created.append(storm.report_task_error("s", 1, f"e{i}"))
    racing = StormClusterState(DeletesBetweenListAndRead(cluster_state, created[1]))
    try:
        assert racing.task_errors("s", 1) == [TaskError("e0", 3000), TaskError("e2", 3002)]
    finally:
        racing.disconnect()


def test_task_errors_many(storm):
    storm.report_task_error("s", 1, "a")
    storm.report_task_error("t", 2, "b")
    got = storm.task_errors_many([("s", 1), ("t", 2), ("t", 3)])
    assert got == {
        ("s", 1): [TaskError("a", 1_300_000_000)],
        ("t", 2): [TaskError("b", 1_300_000_000)],
        ("t", 3): [],
    }


# -- bad ids and bad data ---------------------------------------------------------


def _storm_id_calls(sc, bad):
    yield lambda: sc.assignment_info(bad)
    yield lambda: sc.assignment_info(bad, Calls())
    yield lambda: sc.storm_base(bad)
    yield lambda: sc.storm_base(bad, Calls())
    yield lambda: sc.task_ids(bad)
    yield lambda: sc.task_info(bad, 1)
    yield lambda: sc.task_heartbeat(bad, 1)
    yield lambda: sc.heartbeat_tasks(bad)
    yield lambda: sc.task_errors(bad, 1)
    yield lambda: sc.task_errors_many([("ok", 1), (bad, 1)])
    yield lambda: sc.set_task(bad, 1, TaskInfo(component_id="c"))
    yield lambda: sc.set_task_heartbeat(bad, 1, HEARTBEAT)
    yield lambda: sc.remove_task_heartbeat(bad, 1)
    yield lambda: sc.activate_storm(bad, BASE)
    yield lambda: sc.deactivate_storm(bad)
    yield lambda: sc.set_assignment(bad, ASSIGNMENT)
    yield lambda: sc.remove_storm(bad)
    yield lambda: sc.setup_heartbeats(bad)
    yield lambda: sc.teardown_heartbeats(bad)
    yield lambda: sc.teardown_task_errors(bad)
    yield lambda: sc.report_task_error(bad, 1, "boom")
    yield lambda: sc.supervisor_info(bad)
    yield lambda: sc.set_supervisor_heartbeat(bad, SUPERVISOR)


def _task_id_calls(sc, bad):
    yield lambda: sc.task_info("s", bad)
    yield lambda: sc.task_heartbeat("s", bad)
    yield lambda: sc.task_errors("s", bad)
    yield lambda: sc.set_task("s", bad, TaskInfo(component_id="c"))
    yield lambda: sc.set_task_heartbeat("s", bad, HEARTBEAT)
    yield lambda: sc.remove_task_heartbeat("s", bad)
    yield lambda: sc.report_task_error("s", bad, "boom")


def test_bad_ids_raise_and_touch_nothing(cluster_state):
    recording = Recording(cluster_state)
    sc = StormClusterState(recording)
    try:
        recording.calls.clear()
        for bad in BAD_IDS:
            for call in _storm_id_calls(sc, bad):
                with pytest.raises(ValueError):
                    call()
        for bad in BAD_TASK_IDS:
            for call in _task_id_calls(sc, bad):
                with pytest.raises(ValueError):
                    call()
        assert recording.calls == []
        assert sc._assignment_info_callbacks == {} and sc._storm_base_callbacks == {}
        # and nothing was written anywhere
        for subtree in ("assignments", "tasks", "storms", "supervisors", "taskbeats"):
            assert cluster_state.get_children(f"/{subtree}", False) == []
        assert cluster_state.get_children("/taskerrors", False) == []
    finally:
        sc.disconnect()


def test_wrong_record_types_raise_and_touch_nothing(cluster_state):
    recording = Recording(cluster_state)
    sc = StormClusterState(recording)
    try:
        recording.calls.clear()
        with pytest.raises(TypeError):
            sc.set_assignment("s", BASE)
        with pytest.raises(TypeError):
            sc.activate_storm("s", {"storm_name": "x", "launch_time_secs": 1})
        with pytest.raises(TypeError):
            sc.set_task("s", 1, "spout")
        with pytest.raises(TypeError):
            sc.set_task_heartbeat("s", 1, SUPERVISOR)
        with pytest.raises(TypeError):
            sc.set_supervisor_heartbeat("sup", HEARTBEAT)
        assert recording.calls == []
    finally:
        sc.disconnect()


@pytest.mark.parametrize(
    ("path", "read"),
    [
        ("/assignments/s", lambda sc: sc.assignment_info("s")),
        ("/storms/s", lambda sc: sc.storm_base("s")),
        ("/tasks/s/1", lambda sc: sc.task_info("s", 1)),
        ("/taskbeats/s/1", lambda sc: sc.task_heartbeat("s", 1)),
        ("/supervisors/sup", lambda sc: sc.supervisor_info("sup")),
    ],
)
@pytest.mark.parametrize("data", [b"not json", b"\xff\xfe", b"[]", b'{"wrong": 1}'])
def test_unreadable_data_names_the_path(storm, cluster_state, path, read, data):
    cluster_state.set_data(path, data)
    with pytest.raises(UnreadableNodeError) as info:
        read(storm)
    assert info.value.path == path
    assert path in str(info.value)
