"""A second simulator run takes down what the first left, as nimbus does on start-up; on the
in-memory store and ZooKeeper."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from clusterstate.storm import mk_storm_cluster_state
from tests.clusterstate.test_simulate import REPO, START, advance, make
from tests.helpers import wait_for


@pytest.fixture
def reader(state_factory):
    scs = mk_storm_cluster_state(state_factory())
    yield scs
    scs.disconnect()


def everything(reader) -> set[str]:
    """Every storm id with anything left in the store."""
    return (
        set(reader.active_storms())
        | set(reader.assignments())
        | set(reader.task_storms())
        | set(reader.heartbeat_storms())
        | set(reader.task_error_storms())
    )


def assert_alive(reader, storms: set[str]) -> None:
    """Exactly ``storms`` are in the store, each active with every task beating."""
    assert everything(reader) == storms
    assert set(reader.active_storms()) == storms
    for storm_id in storms:
        tasks = reader.assignment_info(storm_id).task_node_port
        assert sorted(reader.heartbeat_tasks(storm_id)) == sorted(tasks), storm_id


def first_run(state_factory, reader, **kwargs) -> set[str]:
    """A run that stops with its storms still in the store, one half taken down."""
    sim, clock = make(state_factory, error_rate=5, **kwargs)
    advance(sim, clock, 3)
    storms = set(reader.active_storms())
    assert len(storms) == 4 and reader.task_error_storms()
    sim.stop()
    assert reader.supervisors() == [] and set(reader.active_storms()) == storms
    # one takedown cut short: its storm node and assignment gone, tasks and errors left
    cut = sorted(storms)[0]
    reader.deactivate_storm(cut)
    reader.remove_storm(cut)
    reader.setup_heartbeats(cut)
    assert cut in everything(reader) and cut not in reader.assignments()
    return storms


@pytest.mark.parametrize("seed", [8, 7], ids=["new-ids", "same-seed"])
def test_a_second_run_takes_down_the_first_runs_storms(state_factory, reader, seed):
    old = first_run(state_factory, reader)
    # a later run; with the same seed its supervisors have the old ones' ids
    sim, clock = make(state_factory, seed=seed)
    clock.now = START + 600
    try:
        advance(sim, clock, 2)
        new = set(sim.storms)
        assert len(new) == 4 and not new & old
        assert_alive(reader, new)
        assert sim.counts()["leftovers_taken_down"] == 4
    finally:
        sim.stop()


def test_storms_of_a_running_cluster_stay_and_go_when_it_does(state_factory, reader):
    a, clock_a = make(state_factory, seed=1)
    b, clock_b = make(state_factory, seed=2)
    clock_b.now = START + 600  # other storm ids
    try:
        advance(a, clock_a, 2)
        advance(b, clock_b, 2)
        advance(a, clock_a, 2)
        ours_a, ours_b = set(a.storms), set(b.storms)
        # each keeps the other's storms while their supervisors live
        assert_alive(reader, ours_a | ours_b)
        assert a.counts()["leftovers_taken_down"] == b.counts()["leftovers_taken_down"] == 0
        a.stop()  # its supervisors go: nothing will ever beat for its storms again
        advance(b, clock_b, 15)
        assert_alive(reader, ours_b)
        assert b.counts()["leftovers_taken_down"] == 4
    finally:
        a.stop()
        b.stop()


def test_shards_look_once_and_leave_each_other_alone(state_factory, reader):
    old = first_run(state_factory, reader, seed=3)
    sims = [make(state_factory, shard=(i, 2))[0] for i in (0, 1)]
    clocks = []
    for sim in sims:
        sim._time.now = START + 600
        clocks.append(sim._time)
    try:
        for _ in range(8):
            for sim, clock in zip(sims, clocks, strict=True):
                advance(sim, clock, 0.25)
        new = set(sims[0].storms) | set(sims[1].storms)
        assert len(new) == 4 and not new & old
        assert set(reader.active_storms()) == new
        assert set(reader.assignments()) == new
        # remains of the cut takedown are a whole-cluster simulator's to clear, not a shard's
        assert sum(s.counts()["leftovers_taken_down"] for s in sims) == 3
    finally:
        for sim in sims:
            sim.stop()


def run_cli(zk_server, root):
    return subprocess.run(
        [sys.executable, "-m", "clusterstate.simulate", "--zk", zk_server.connect_string]
        + ["--root", root, "--duration", "3", "--heartbeat-secs", "0.5", "--churn-secs", "0"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_second_cli_run_on_zookeeper_shows_no_ghosts(zk_server, zk_conf):
    root = zk_conf["storm.zookeeper.root"]
    reader = mk_storm_cluster_state(zk_conf)
    try:
        done = run_cli(zk_server, root)
        assert done.returncode == 0, done.stderr
        first = set(reader.active_storms())
        assert len(first) == 4
        done = run_cli(zk_server, root)
        assert done.returncode == 0, done.stderr
        assert "took down 4 storms left by an earlier run" in done.stderr
        second = set(reader.active_storms())
        assert len(second) == 4 and not second & first
        assert set(reader.assignments()) == second
    finally:
        reader.disconnect()


def test_manage_py_simulate_stops_cleanly_on_sigterm(zk_server, zk_conf, tmp_path):
    # as make stop stops it: its supervisors must vanish at once, not a session timeout later
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STORMUI_", "DJANGO_"))}
    env.update(
        STORMUI_ZK_SERVERS=zk_server.connect_string,
        STORMUI_ZK_ROOT=zk_conf["storm.zookeeper.root"],
        STORMUI_VAR_DIR=str(tmp_path),
    )
    log_path = tmp_path / "simulate.log"
    reader = mk_storm_cluster_state(zk_conf)
    with open(log_path, "w") as log_file:
        proc = subprocess.Popen(
            # no churn and no losses: the storms and supervisors counted are the ones it began with
            [
                sys.executable,
                "manage.py",
                "simulate",
                "--heartbeat-secs",
                "0.5",
                "--churn-secs",
                "0",
                "--supervisor-loss-rate",
                "0",
            ],
            cwd=REPO,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(lambda: len(reader.supervisors()) == 3, timeout=60)
        wait_for(lambda: len(reader.active_storms()) == 4, timeout=60)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log_path.read_text()
        assert reader.supervisors() == [], log_path.read_text()
        assert len(reader.active_storms()) == 4
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.disconnect()


def test_a_new_storm_shows_every_task_alive_at_once(state_factory, reader):
    sim, clock = make(state_factory, heartbeat_secs=3.0)
    try:
        for _ in range(200):  # the first master tick: within a tenth of a beat
            if reader.active_storms():
                break
            advance(sim, clock, 0.01, tick=0.01)
        # activated with every task's first heartbeat already written
        assert_alive(reader, set(reader.active_storms()))
        assert len(reader.active_storms()) == 4
    finally:
        sim.stop()
