"""The simulator, read back through StormClusterState, on the in-memory store and ZooKeeper."""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from clusterstate.records import WINDOWS, check_stats
from clusterstate.simulate import (
    SimulationConfig,
    Simulator,
    add_arguments,
    config_from_args,
    main,
    simulator_from_args,
)
from clusterstate.storm import MAX_TASK_ERRORS, mk_storm_cluster_state
from tests.helpers import expire_session, wait_for

REPO = Path(__file__).resolve().parents[2]
START = 1_700_000_000.0

# a quiet cluster: nothing dies, nothing churns, unless a test asks
QUIET = dict(
    heartbeat_secs=1.0,
    churn_secs=0,
    task_death_rate=0,
    supervisor_loss_rate=0,
    error_rate=0,
    seed=7,
)


class Clock:
    def __init__(self, now: float = START):
        self.now = now

    def __call__(self) -> float:
        return self.now


class Recording:
    """A state factory that keeps the sessions it opened, to act on them from outside."""

    def __init__(self, factory):
        self.factory = factory
        self.states = []

    def __call__(self):
        state = self.factory()
        self.states.append(state)
        return state


def make(state_factory, **kwargs):
    clock = Clock()
    sim = Simulator(SimulationConfig(**{**QUIET, **kwargs}), state_factory, time_fn=clock)
    return sim, clock


def advance(sim, clock, secs: float, tick: float = 0.25) -> None:
    for _ in range(round(secs / tick)):
        clock.now += tick
        sim.step()


@pytest.fixture
def reader(state_factory):
    scs = mk_storm_cluster_state(state_factory())
    yield scs
    scs.disconnect()


@pytest.fixture
def stopping():
    """Simulators to stop at teardown, whatever the test did."""
    sims = []
    yield sims.append
    for sim in sims:
        sim.stop()


def check_consistent(reader) -> dict:
    """Assert the cluster reads back whole; return {storm id: assignment}."""
    supervisors = {sid: reader.supervisor_info(sid) for sid in reader.supervisors()}
    assignments = {sid: reader.assignment_info(sid) for sid in reader.assignments()}
    assert set(reader.active_storms()) <= set(assignments), "an active storm lacks an assignment"
    for storm_id, assignment in assignments.items():
        assert assignment is not None
        assert assignment.task_node_port, storm_id
        assert set(reader.task_ids(storm_id)) == set(assignment.task_node_port)
        for task_id in assignment.task_node_port:
            info = reader.task_info(storm_id, task_id)
            assert info is not None and info.component_type in ("spout", "bolt")
            assert info.component_id.endswith(("-spout", "-bolt"))
        for node, port in assignment.task_node_port.values():
            assert node in supervisors, f"{storm_id} is assigned to unknown supervisor {node}"
            assert port in supervisors[node].worker_ports
            assert assignment.node_host[node] == supervisors[node].hostname
        assert set(assignment.task_start_time_secs) == set(assignment.task_node_port)
    for storm_id in reader.heartbeat_storms():
        beating = reader.heartbeat_tasks(storm_id)
        if not beating:
            continue
        assert storm_id in assignments, f"heartbeats of unassigned storm {storm_id}"
        for task_id in beating:
            assert task_id in assignments[storm_id].task_node_port
            beat = reader.task_heartbeat(storm_id, task_id)
            if beat is None:
                continue
            check_stats(beat.stats)
            assert beat.stats["type"] == reader.task_info(storm_id, task_id).component_type
    return assignments


def all_time_emitted(reader) -> dict:
    out = {}
    for storm_id in reader.heartbeat_storms():
        for task_id in reader.heartbeat_tasks(storm_id):
            beat = reader.task_heartbeat(storm_id, task_id)
            if beat is not None and beat.stats["type"] == "spout":
                out[(storm_id, task_id)] = sum(beat.stats["emitted"]["all-time"].values())
    return out


def test_short_run_reads_back_consistently(state_factory, reader):
    sim, clock = make(state_factory)
    try:
        advance(sim, clock, 4)
        assignments = check_consistent(reader)
        assert len(assignments) == 4
        assert sorted(reader.active_storms()) == sorted(assignments)
        assert len(reader.supervisors()) == 3
        for storm_id, assignment in assignments.items():
            assert len(assignment.task_node_port) == 15
            base = reader.storm_base(storm_id)
            assert base.launch_time_secs == int(START)
            assert storm_id.startswith(base.storm_name + "-")
            # every task is up and beating, spouts and bolts alike
            assert sorted(reader.heartbeat_tasks(storm_id)) == sorted(assignment.task_node_port)
            infos = [reader.task_info(storm_id, t) for t in assignment.task_node_port]
            types = {info.component_type for info in infos}
            assert types == {"spout", "bolt"}
            beat = reader.task_heartbeat(storm_id, 1)
            assert beat.time_secs >= int(START) + 3
            assert set(beat.stats["emitted"]) == set(WINDOWS)
        info = reader.supervisor_info(reader.supervisors()[0])
        assert info.worker_ports == (6700, 6701, 6702, 6703)
        assert info.uptime_secs >= 3
    finally:
        sim.stop()


def test_counts_grow_between_reads(state_factory, reader):
    sim, clock = make(state_factory)
    try:
        advance(sim, clock, 3)
        first = all_time_emitted(reader)
        advance(sim, clock, 3)
        second = all_time_emitted(reader)
        assert first and set(first) == set(second)
        assert all(second[k] > first[k] for k in first), (first, second)
        assert all(v % 20 == 0 for v in second.values()), "Storm's sampled counts go by 20"
        storm_id, task_id = next(iter(second))
        stats = reader.task_heartbeat(storm_id, task_id).stats
        assert stats["acked"]["all-time"]["default"] <= stats["emitted"]["all-time"]["default"]
        assert stats["complete_latencies"]["600"]["default"] > 0
    finally:
        sim.stop()


def test_bolt_stats_are_keyed_by_input(state_factory, reader):
    sim, clock = make(state_factory, storms=6)
    try:
        advance(sim, clock, 3)
        for storm_id in reader.assignments():
            for task_id in reader.heartbeat_tasks(storm_id):
                stats = reader.task_heartbeat(storm_id, task_id).stats
                if stats["type"] != "bolt":
                    continue
                acked = stats["acked"]["all-time"]
                assert acked, "a bolt acks what its inputs send it"
                for component, streams in acked.items():
                    assert component.endswith(("-spout", "-bolt"))
                    assert set(streams) == set(stats["process_latencies"]["all-time"][component])
    finally:
        sim.stop()


def test_errors_only_on_error_tasks_and_at_most_ten(state_factory, reader):
    sim, clock = make(state_factory, error_rate=25, error_task_fraction=0.2)
    try:
        advance(sim, clock, 8, tick=0.5)
        erring = {(t.storm.id, t.id) for t in sim.tasks() if t.error_prone}
        seen = {}
        for storm_id in reader.task_error_storms():
            for task_id in reader.task_ids(storm_id):
                errors = reader.task_errors(storm_id, task_id)
                if errors:
                    seen[(storm_id, task_id)] = errors
    finally:
        sim.stop()
    assert len(erring) == 4 * 3  # a fifth of each storm's 15 tasks
    assert seen and set(seen) <= erring
    assert sim.counts()["errors"] > MAX_TASK_ERRORS * len(seen), "enough errors to need trimming"
    assert max(len(e) for e in seen.values()) == MAX_TASK_ERRORS
    for errors in seen.values():
        assert len(errors) <= MAX_TASK_ERRORS
        for error in errors:
            assert error.error.startswith("java.") and "\n\tat " in error.error
            assert int(START) <= error.time_secs <= clock.now


@pytest.mark.parametrize("session_per", ["worker", "supervisor"])
def test_lost_supervisor_vanishes_its_tasks_move_and_it_returns(state_factory, reader, session_per):
    sim, clock = make(state_factory, session_per=session_per, heartbeat_secs=0.5)
    try:
        advance(sim, clock, 2)
        assignments = check_consistent(reader)
        on_node = Counter(n for a in assignments.values() for n, _ in a.task_node_port.values())
        victim = on_node.most_common(1)[0][0]

        sim.lose_supervisor(victim, return_after=sim.reassign_secs + 4 * sim.monitor_secs)
        assert victim not in reader.supervisors()
        for storm_id, assignment in assignments.items():
            beating = set(reader.heartbeat_tasks(storm_id))
            for task_id, (node, _) in assignment.task_node_port.items():
                assert (task_id in beating) == (node != victim)

        # nimbus moves the tasks once the supervisor has been gone long enough
        advance(sim, clock, sim.reassign_secs + 2 * sim.monitor_secs)
        assignments = check_consistent(reader)
        nodes = {n for a in assignments.values() for n, _ in a.task_node_port.values()}
        assert victim not in nodes
        for storm_id, assignment in assignments.items():
            assert sorted(reader.heartbeat_tasks(storm_id)) == sorted(assignment.task_node_port)
        assert sim.counts()["reassigned"] == on_node[victim]

        advance(sim, clock, 2 * sim.monitor_secs)
        assert victim in reader.supervisors()
        assert reader.supervisor_info(victim).uptime_secs < 5
        check_consistent(reader)
    finally:
        sim.stop()


def test_random_losses_and_deaths_keep_the_cluster_readable(state_factory, reader):
    sim, clock = make(
        state_factory, heartbeat_secs=0.5, supervisor_loss_rate=0.2, task_death_rate=2
    )
    try:
        advance(sim, clock, 20, tick=0.5)
        counts = sim.counts()
        assert counts["supervisor_losses"] and counts["supervisor_returns"]
        assert counts["task_deaths"] and counts["task_restarts"]
        # some supervisor may be gone right now and its tasks not yet moved: skip those
        live = set(reader.supervisors())
        assert len(live) == counts["supervisors"]
        for storm_id in reader.assignments():
            assignment = reader.assignment_info(storm_id)
            beating = set(reader.heartbeat_tasks(storm_id))
            assert beating <= set(assignment.task_node_port)
            assert set(reader.task_ids(storm_id)) == set(assignment.task_node_port)
    finally:
        sim.stop()


def test_churn_removes_storms_fully_and_keeps_the_target(state_factory, reader):
    sim, clock = make(state_factory, storms=2, churn_secs=3, error_rate=20, error_task_fraction=1.0)
    try:
        advance(sim, clock, 3.5)  # first churn: one storm deactivated, one submitted
        inactive = [s.id for s in sim.storms.values() if s.phase == "inactive"]
        assert len(inactive) == 1
        victim = inactive[0]
        assert victim not in reader.active_storms() and reader.storm_base(victim) is None
        assert reader.assignment_info(victim) is not None, "deactivating keeps the assignment"
        assert len(reader.active_storms()) == 2
        assert victim in reader.task_error_storms() and reader.heartbeat_tasks(victim)

        advance(sim, clock, 3)  # second churn: it is removed
        assert victim in sim.removed_storm_ids
        assert reader.assignment_info(victim) is None
        assert victim not in reader.assignments()
        assert reader.task_ids(victim) == []
        assert victim not in reader.task_storms()
        assert reader.heartbeat_tasks(victim) == []
        assert victim not in reader.heartbeat_storms()
        assert victim not in reader.task_error_storms()
        assert all(reader.task_errors(victim, t) == [] for t in range(1, 16))
        assert len(reader.active_storms()) == 2
        assert len(reader.assignments()) == 3  # two active, one just deactivated
        advance(sim, clock, 1)
        check_consistent(reader)
    finally:
        sim.stop()


def test_stop_closes_every_session(state_factory, reader):
    sim, clock = make(state_factory)
    advance(sim, clock, 2)
    storms = reader.assignments()
    assert len(reader.supervisors()) == 3 and storms
    sim.stop()
    assert reader.supervisors() == []
    assert all(reader.heartbeat_tasks(s) == [] for s in storms)
    assert reader.assignments() == storms, "a cluster going down keeps its storms"
    sim.stop()  # harmless twice


def test_remove_on_stop_leaves_nothing(state_factory, reader):
    sim, clock = make(state_factory, remove_on_stop=True, error_rate=5)
    advance(sim, clock, 2)
    sim.stop()
    assert reader.assignments() == [] and reader.active_storms() == []
    assert reader.task_storms() == [] and reader.task_error_storms() == []


def test_expired_sessions_write_again_next_beat(state_factory, reader):
    opened = Recording(state_factory)
    sim, clock = make(opened, session_per="supervisor")
    try:
        advance(sim, clock, 2)
        assert len(opened.states) == 4  # three supervisors and the master
        storms = reader.assignments()
        for state in opened.states:
            expire_session(state)
        assert reader.supervisors() == []
        assert all(reader.heartbeat_tasks(s) == [] for s in storms)
        advance(sim, clock, 1.5)
        assert len(reader.supervisors()) == 3
        check_consistent(reader)
        assert all(len(reader.heartbeat_tasks(s)) == 15 for s in storms)
    finally:
        sim.stop()


def test_disconnected_writes_are_retried_not_fatal(stopping):
    from clusterstate.memstate import MemoryStore, mk_memory_cluster_state

    store = MemoryStore()
    opened = Recording(lambda: mk_memory_cluster_state(store, "/storm"))
    reader = mk_storm_cluster_state(mk_memory_cluster_state(store, "/storm"))
    sim, clock = make(opened)
    stopping(sim)
    advance(sim, clock, 2)
    sid = reader.supervisors()[0]
    before = reader.supervisor_info(sid).time_secs
    for state in opened.states:
        state.suspend()
    advance(sim, clock, 2)
    assert sim.counts()["failures"] > 0
    assert reader.supervisor_info(sid).time_secs == before
    for state in opened.states:
        state.resume()
    advance(sim, clock, 2)
    assert reader.supervisor_info(sid).time_secs > before
    check_consistent(reader)


def test_heartbeats_are_spread_over_the_interval():
    from clusterstate.memstate import MemoryStore, mk_memory_cluster_state

    store = MemoryStore()
    sim, clock = make(
        lambda: mk_memory_cluster_state(store, "/storm"),
        supervisors=10,
        storms=10,
        tasks_per_storm=50,
        heartbeat_secs=5.0,
    )
    try:
        advance(sim, clock, 5)  # everything submitted and beating
        per_tick = []
        for _ in range(40):
            before = sim.counts()["task_beats"]
            advance(sim, clock, 0.25)
            per_tick.append(sim.counts()["task_beats"] - before)
    finally:
        sim.stop()
    assert sim.session_per == "supervisor"  # 500 tasks would need too many worker sessions
    mean = sum(per_tick) / len(per_tick)
    assert mean == pytest.approx(500 * 0.25 / 5.0, rel=0.05)
    assert max(per_tick) <= 2 * mean and min(per_tick) >= mean / 2, per_tick


def test_threaded_run_and_stop(state_factory, reader):
    sim = Simulator(
        SimulationConfig(**{**QUIET, "heartbeat_secs": 0.3, "error_rate": 2}), state_factory
    )
    sim.start()
    try:
        wait_for(lambda: len(reader.active_storms()) == 4)
        wait_for(lambda: all(len(reader.heartbeat_tasks(s)) == 15 for s in reader.active_storms()))
        check_consistent(reader)
        first = all_time_emitted(reader)
        wait_for(lambda: all(all_time_emitted(reader)[k] > v for k, v in first.items()))
        wait_for(lambda: reader.task_error_storms())
    finally:
        sim.stop()
    assert reader.supervisors() == []
    assert sim.counts()["failures"] == 0


def test_flags_build_the_simulator():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(
        "--supervisors 100 --storms 100 --tasks-per-storm 200 --heartbeat-secs 30 "
        "--error-task-fraction 0.1 --error-rate 2 --churn-secs 0 --seed 3".split()
    )
    sim = simulator_from_args(args, lambda: None)
    assert (sim.target_storms, sim.tasks_per_storm, sim.heartbeat_secs) == (100, 200, 30.0)
    assert (sim.error_rate, sim.error_task_fraction, sim.churn_secs) == (2.0, 0.1, 0.0)
    assert len(sim.supervisors) == 100 and sim.session_per == "supervisor"
    assert args.duration == 0
    with pytest.raises(SystemExit):
        parser.parse_args(["--error-rate", "-1"])
    with pytest.raises(SystemExit):
        main(["--memory", "--heartbeat-secs", "0"])


def test_flag_defaults_are_the_config_defaults():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert config_from_args(parser.parse_args([])) == SimulationConfig()
    assert "(default 0.003)" in parser.format_help()


@pytest.mark.parametrize(
    "bad",
    [
        {"supervisors": 0},
        {"tasks_per_storm": 0},
        {"heartbeat_secs": 0},
        {"error_rate": -1},
        {"error_task_fraction": 1.5},
        {"session_per": "task"},
        {"shard": (2, 2)},
    ],
)
def test_config_refuses_bad_values(bad):
    with pytest.raises(ValueError):
        SimulationConfig(**bad)


def test_a_shard_without_a_supervisor_is_refused():
    with pytest.raises(ValueError):
        Simulator(SimulationConfig(supervisors=1, shard=(1, 2)), lambda: None)


def run_cli(*args, timeout=60):
    return subprocess.run(
        [sys.executable, "-m", "clusterstate.simulate", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_cli_memory_smoke():
    done = run_cli("--memory", "--duration", "2", "--heartbeat-secs", "0.5")
    assert done.returncode == 0, done.stderr
    assert "submitted" in done.stderr and "simulator stopped" in done.stderr


def test_cli_writes_storms_to_zookeeper(zk_server, zk_conf):
    root = zk_conf["storm.zookeeper.root"]
    done = run_cli(
        *("--zk", zk_server.connect_string, "--root", root),
        *("--duration", "3", "--heartbeat-secs", "0.5", "--churn-secs", "0"),
    )
    assert done.returncode == 0, done.stderr
    reader = mk_storm_cluster_state(zk_conf)
    try:
        assert len(reader.active_storms()) == 4
        for storm_id in reader.assignments():
            assert len(reader.task_ids(storm_id)) == 15
        assert reader.supervisors() == [], "sessions were closed on exit"
    finally:
        reader.disconnect()


def test_shards_play_one_cluster_without_collisions(state_factory, reader):
    clock = Clock()
    sims = [
        Simulator(SimulationConfig(**QUIET, shard=(i, 2)), state_factory, time_fn=clock)
        for i in (0, 1)
    ]
    try:
        for _ in range(12):
            clock.now += 0.25
            for sim in sims:
                sim.step()
        assert [len(s.supervisors) for s in sims] == [2, 1]  # three supervisors between two
        assignments = check_consistent(reader)
        assert len(assignments) == 4 and len(reader.supervisors()) == 3
        names = [reader.storm_base(storm_id).storm_name for storm_id in assignments]
        assert len(set(names)) == 4, names
        hosts = {reader.supervisor_info(s).hostname for s in reader.supervisors()}
        assert len(hosts) == 3
    finally:
        for sim in sims:
            sim.stop()


def test_cli_processes_share_the_cluster(zk_server, zk_conf):
    root = zk_conf["storm.zookeeper.root"]
    done = run_cli(
        *("--zk", zk_server.connect_string, "--root", root, "--processes", "2"),
        *("--duration", "3", "--heartbeat-secs", "0.5", "--churn-secs", "0"),
    )
    assert done.returncode == 0, done.stderr
    assert "[1/2]" in done.stderr and "[2/2]" in done.stderr
    reader = mk_storm_cluster_state(zk_conf)
    try:
        assert len(reader.active_storms()) == 4
        assert reader.supervisors() == []
    finally:
        reader.disconnect()


def test_cli_stops_cleanly_on_sigterm(zk_server, zk_conf, tmp_path):
    root = zk_conf["storm.zookeeper.root"]
    log_path = tmp_path / "simulate.log"
    with open(log_path, "w") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "clusterstate.simulate", "--zk", zk_server.connect_string]
            + ["--root", root, "--heartbeat-secs", "0.5"],
            cwd=REPO,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        reader = mk_storm_cluster_state(zk_conf)
        try:
            wait_for(lambda: len(reader.supervisors()) == 3, timeout=30)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0, log_path.read_text()
            assert reader.supervisors() == []
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            reader.disconnect()
