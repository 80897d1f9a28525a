"""Admin actions across processes on one database of the lane (a SQLite file or PostgreSQL)
and one ZooKeeper.

- Two processes removing the same storms at once: for each storm one says it removed it
  and the other that nothing was left, as when one process serves both.
- The relaying process keeps the storms' bases; another process activates with them.
- A daphne that relays keeps them from its first HTTP request, before any socket opens.
"""

from __future__ import annotations

import http.cookiejar
import json
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
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
from tests.helpers import delete_roots, storm_conf, wait_for
from tests.stormui.conftest import HEALTHY
from tests.stormui.served import Served

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
        delete_roots(conf, root)


# waits until the relaying process has stored the storm's base, then deactivates and
# activates it, and tries to activate a storm never seen active; prints the outcomes (it runs
# in the repository's folder, so the tests' helpers import)
ACTIVATOR = """
import json, sys
import django
django.setup()
from stormui import actions
from stormui.models import SeenStormBase
from stormui.source import get_source
from tests.helpers import wait_for
seen, never = sys.argv[1], sys.argv[2]
wait_for(lambda: get_source().state.connected, message="never connected to ZooKeeper")
wait_for(
    lambda: SeenStormBase.objects.filter(storm_id=seen).exists(),
    60,
    message="the relay never stored the base",
)
outcomes = [
    actions._attempt(actions.Action.DEACTIVATE, seen).outcome,
    get_source().storm_state.storm_base(seen) is None,
    actions._attempt(actions.Action.ACTIVATE, seen).outcome,
    actions._attempt(actions.Action.ACTIVATE, never).outcome,
]
print(json.dumps(outcomes))
"""


def test_the_relay_keeps_the_base_that_another_process_activates_with(
    zk_server, server_database_factory, tmp_path
):
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed (apt-get install redis-server)")
    root = f"/t/{uuid.uuid4().hex}"
    conf = storm_conf(zk_server, root)
    state = mk_distributed_cluster_state(conf)
    writer = mk_storm_cluster_state(state)
    seen, never = "seen-1-1", "never-2-2"
    base = StormBase("seen", int(time.time()) - 60)
    procs = []
    try:
        for storm_id in (seen, never):
            writer.set_task(storm_id, 1, TaskInfo("spout", "spout"))
            writer.set_assignment(
                storm_id,
                Assignment("/x", {"s": "host"}, {1: ["s", 6700]}, {1: base.launch_time_secs}),
            )
        writer.activate_storm(seen, base)
        redis, redis_url = live_servers.start_redis(tmp_path)
        procs.append(redis)
        env = live_servers.server_env(
            zk_server.connect_string,
            root,
            server_database_factory(tmp_path),
            REDIS_URL=redis_url,
            STORMUI_SCHEDULER_THREAD="false",
        )
        live_servers.migrate(env)
        procs.append(live_servers.start_relay(env, tmp_path))
        activator = subprocess.Popen(
            [sys.executable, "-c", ACTIVATOR, seen, never],
            cwd=live_servers.ROOT,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        procs.append(activator)
        out, _ = activator.communicate(timeout=120)
        assert activator.returncode == 0, out
        assert json.loads(out) == ["success", True, "success", "not-found"]
        assert writer.storm_base(seen) == base
        assert writer.storm_base(never) is None
    finally:
        for proc in reversed(procs):
            live_servers.stop(proc)
        writer.disconnect()
        state.close()
        delete_roots(conf, root)


# makes a superuser to act with, then waits until the serving process has stored the storm's
# base; the environment holds the credentials
RECORDED = """
import os, sys
import django
django.setup()
from django.contrib.auth import get_user_model
from stormui.models import SeenStormBase
from tests.helpers import wait_for
get_user_model().objects.create_superuser(
    os.environ["NEW_USER_NAME"], None, os.environ["NEW_USER_PASSWORD"]
)
storm_id = sys.argv[1]
wait_for(
    lambda: SeenStormBase.objects.filter(storm_id=storm_id).exists(),
    message="the serving process never stored the base",
)
"""


def logged_in(url: str, username: str, password: str):
    """An opener with a session on the dashboard at ``url``, and its CSRF token."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPCookieProcessor(jar)
    )

    def csrf_token():
        return next(c.value for c in jar if c.name == "csrftoken")

    opener.open(url + "/accounts/login/", timeout=30).read()
    form = {"username": username, "password": password, "csrfmiddlewaretoken": csrf_token()}
    with opener.open(
        url + "/accounts/login/", urllib.parse.urlencode(form).encode(), timeout=30
    ) as response:
        assert response.url == url + "/", "the login failed"
    return opener, csrf_token()  # a login rotates the token


def test_a_daphne_records_bases_from_its_first_request_without_a_socket(
    zk_server, server_database_factory, tmp_path
):
    # daphne relays itself (no REDIS_URL); Served waited for its first page, over HTTP: no
    # socket has opened, and none will
    served = Served(zk_server, tmp_path, server_database_factory(tmp_path))
    try:
        recorded = subprocess.run(
            [sys.executable, "-c", RECORDED, HEALTHY],
            cwd=live_servers.ROOT,
            env={**served.env, "NEW_USER_NAME": "olga", "NEW_USER_PASSWORD": "s3cret-pass"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert recorded.returncode == 0, recorded.stderr
        base = served.writer.storm_base(HEALTHY)
        served.writer.deactivate_storm(HEALTHY)
        opener, token = logged_in(served.url, "olga", "s3cret-pass")
        request = urllib.request.Request(
            f"{served.url}/api/v1/topology/{HEALTHY}/activate",
            data=b"",
            headers={"X-CSRFToken": token},
        )
        try:
            with opener.open(request, timeout=30) as response:
                status, body = response.status, json.load(response)
        except urllib.error.HTTPError as exc:
            status, body = exc.code, exc.read().decode()
        assert (status, body) == (
            200,
            {"topologyOperation": "activate", "topologyId": HEALTHY, "status": "success"},
        )
        assert served.writer.storm_base(HEALTHY) == base
    finally:
        served.close()
