"""Two processes removing the same storms at once: for each storm one says it removed it
and the other that nothing was left, as when one process serves both.

The two are dashboards of their own on one database of the lane (a SQLite file or
PostgreSQL) and one ZooKeeper, let go at the same moment on the same storms.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid

import pytest

from bench import live_servers
from clusterstate import (
    Assignment,
    StormBase,
    TaskInfo,
    mk_distributed_cluster_state,
    mk_storm_cluster_state,
)
from tests.helpers import storm_conf, wait_for

pytestmark = pytest.mark.timeout(180)

STORMS = [f"twice-{i}-1" for i in range(30)]

# connects to ZooKeeper, says it is ready, waits for the go file, then removes every storm
# in turn and prints the outcomes
REMOVER = """
import json, os, sys, time
import django
django.setup()
from stormui import actions
from stormui.source import get_source
while not get_source().state.connected:
    time.sleep(0.01)
go, me, storms = sys.argv[1], sys.argv[2], sys.argv[3:]
open(go + ".ready." + me, "w").close()
while not os.path.exists(go):
    time.sleep(0.002)
print(json.dumps([actions._attempt(actions.Action.REMOVE, s).outcome for s in storms]))
"""


def test_two_processes_removing_one_storm_give_one_success_one_not_found(
    zk_server, server_database_factory, tmp_path
):
    root = f"/t/{uuid.uuid4().hex}"
    conf = storm_conf(zk_server, root)
    state = mk_distributed_cluster_state(conf)
    writer = mk_storm_cluster_state(state)
    try:
        now = int(time.time())
        for storm_id in STORMS:
            writer.set_task(storm_id, 1, TaskInfo("spout", "spout"))
            writer.set_assignment(
                storm_id, Assignment("/x", {"s": "host"}, {1: ["s", 6700]}, {1: now})
            )
            writer.activate_storm(storm_id, StormBase("twice", now))
        env = live_servers.server_env(
            zk_server.connect_string,
            root,
            server_database_factory(tmp_path),
            STORMUI_SCHEDULER_THREAD="false",
            STORMUI_MIRROR="off",
        )
        live_servers.migrate(env)
        go = tmp_path / "go"
        removers = [
            subprocess.Popen(
                [sys.executable, "-c", REMOVER, str(go), str(i), *STORMS],
                cwd=live_servers.ROOT,
                env=env,
                stdout=subprocess.PIPE,
                text=True,
            )
            for i in range(2)
        ]
        try:
            for i, remover in enumerate(removers):
                ready = tmp_path / f"go.ready.{i}"
                wait_for(lambda r=remover, f=ready: f.exists() or r.poll() is not None, 60)
                assert remover.poll() is None, remover.stdout.read()
            go.touch()
            outcomes = []
            for remover in removers:
                out, _ = remover.communicate(timeout=120)
                assert remover.returncode == 0, out
                outcomes.append(json.loads(out))
        finally:
            for remover in removers:
                live_servers.stop(remover)
        for storm_id, pair in zip(STORMS, zip(*outcomes, strict=True), strict=True):
            assert sorted(pair) == ["not-found", "success"], storm_id
            assert state.get_data(f"/storms/{storm_id}") is None
    finally:
        writer.disconnect()
        state.close()
        cleaner = mk_distributed_cluster_state({**conf, "storm.zookeeper.root": "/"})
        try:
            cleaner.delete_node(root)
        finally:
            cleaner.close()
