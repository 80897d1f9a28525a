"""Several processes running the schedule at once run each due removal once.

Two runners, each a process of its own on one database of the lane (a SQLite
file, or PostgreSQL), are let go at the same moment on many due removals; each
removal is claimed, run and audited by exactly one of them.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest

from bench import live_servers
from tests.helpers import wait_for

pytestmark = pytest.mark.timeout(180)

DUE = 150

SEED = f"""
import django
django.setup()
from django.utils import timezone
from stormui.models import ScheduledRemoval
ScheduledRemoval.objects.bulk_create(
    ScheduledRemoval(storm_id=f"gone-{{i}}-1", due_at=timezone.now()) for i in range({DUE})
)
"""

# connects to ZooKeeper, says it is ready, waits for the go file, then runs what is due
# once and prints how many it ran
RUNNER = """
import os, sys, time
import django
django.setup()
from stormui.scheduler import run_due
from stormui.source import get_source
while not get_source().zk_connected:
    time.sleep(0.01)
open(sys.argv[1] + ".ready." + sys.argv[2], "w").close()
while not os.path.exists(sys.argv[1]):
    time.sleep(0.002)
print(len(run_due()))
"""

REPORT = """
import json
import django
django.setup()
from stormui.models import AuditEntry, ScheduledRemoval
print(json.dumps({
    "pending": ScheduledRemoval.objects.filter(done_at=None).count(),
    "attempts": sorted(set(ScheduledRemoval.objects.values_list("attempts", flat=True))),
    "audited": list(AuditEntry.objects.values_list("storm_id", "via", "outcome")),
}))
"""


def python(env, code, *args, **kwargs):
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        cwd=live_servers.ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def finish(proc) -> str:
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    return out


def test_two_runners_run_each_due_removal_once(zk_server, server_database_factory, tmp_path):
    env = live_servers.server_env(
        zk_server.connect_string,
        f"/t/{uuid.uuid4().hex}",
        server_database_factory(tmp_path),
        # only the two runners below run the schedule
        STORMUI_SCHEDULER_THREAD="false",
        STORMUI_MIRROR="off",
    )
    live_servers.migrate(env)
    finish(python(env, SEED))
    go = tmp_path / "go"
    runners = [python(env, RUNNER, str(go), str(i)) for i in range(2)]
    try:
        for i, runner in enumerate(runners):
            ready = tmp_path / f"go.ready.{i}"
            wait_for(lambda r=runner, f=ready: f.exists() or r.poll() is not None, timeout=60)
            assert runner.poll() is None, runner.stdout.read()
        go.touch()
        ran = [int(finish(runner)) for runner in runners]
    finally:
        for runner in runners:
            live_servers.stop(runner)
    report = json.loads(finish(python(env, REPORT)))
    assert sum(ran) == DUE
    assert report["pending"] == 0
    assert report["attempts"] == [1]  # claimed once each
    audited = report["audited"]
    assert len(audited) == DUE
    assert {storm_id for storm_id, _, _ in audited} == {f"gone-{i}-1" for i in range(DUE)}
    assert {(via, outcome) for _, via, outcome in audited} == {("schedule", "not-found")}
