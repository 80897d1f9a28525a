"""One elected leader among the daphnes behind Redis (stormui.leader): exactly one leads,
a killed leader is replaced, and every page resyncs and gets each change once."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import time
import uuid

import pytest

from clusterstate import StormBase
from stormui.leader import Candidate
from tests.helpers import (
    WAIT,
    dashboard_runs,
    open_socket,
    receive_until,
    storm_session,
    the_leader,
    wait_for,
)
from tests.stormui.conftest import HEALTHY, PAUSED, known_cluster_behind_redis
from tests.stormui.test_isolation import ROOT, outside_env

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def farm(zk_server, tmp_path_factory, server_database_factory):
    """Redis and two daphnes on the known cluster, neither told to relay."""
    folder = tmp_path_factory.mktemp("leader")
    with known_cluster_behind_redis(zk_server, folder, server_database_factory(folder)) as got:
        yield got


@pytest.fixture
def writer(farm):
    with storm_session(farm[1]) as storm_state:
        yield storm_state


def errors_once(feed, writer, texts):
    """Report each of ``texts`` in turn: the feed gets each once (a repeat of one would come
    before the next)."""
    for text in texts:
        writer.report_task_error(HEALTHY, 3, text)
        error = receive_until(feed, lambda m: m["type"] == "error")
        assert error["error"] == text


def test_one_leads_and_another_takes_over_when_it_is_killed(farm, writer):
    procs, _ = farm
    urls = list(procs)
    leader = the_leader(urls)
    (follower,) = [url for url in urls if url != leader]
    with contextlib.ExitStack() as stack:
        feed = stack.enter_context(open_socket(follower, "/ws/errors/"))
        cluster = stack.enter_context(open_socket(follower, "/ws/cluster/"))
        for ws in (feed, cluster):
            assert json.loads(ws.recv(timeout=WAIT))["type"] == "snapshot"
        errors_once(feed, writer, ["before the kill", "still before"])
        # the leader writes the history: its run has begun
        wait_for(lambda: dashboard_runs(follower)["dashboard-started"], interval=0.1)

        procs[leader].kill()  # SIGKILL: its election node goes with its session
        procs[leader].wait()
        assert the_leader([follower]) == follower
        # every page starts again from a snapshot: what it had came from the old leader
        assert receive_until(feed, lambda m: m["type"] == "snapshot").get("resync")
        receive_until(cluster, lambda m: m["type"] == "snapshot")
        errors_once(feed, writer, ["after the kill", "and after"])
        writer.activate_storm(PAUSED, StormBase("paused", int(time.time())))
        receive_until(
            cluster,
            lambda m: (
                m["type"] == "cluster"
                and {s["id"]: s["status"] for s in m["storms"]}[PAUSED] == "ACTIVE"
            ),
        )
    # the new leader writes the history on: the killed one's run is closed at its last
    # alive time, before the new one's start
    runs = wait_for(lambda: (r := dashboard_runs(follower))["dashboard-stopped"] and r)
    (killed_start,) = runs["dashboard-started"][:-1]  # oldest first
    assert killed_start <= runs["dashboard-stopped"][-1] <= runs["dashboard-started"][-1]


@pytest.mark.parametrize(
    "where, ok", [("stormui", False), ("/storm/ui", False), ("/storm", False), ("/storm-ui", True)]
)
def test_the_election_root_is_absolute_and_outside_storms(tmp_path, where, ok):
    start_up_takes(
        tmp_path,
        "STORMUI_ZK_DASHBOARD_ROOT",
        ok,
        STORMUI_ZK_ROOT="/storm",
        STORMUI_ZK_DASHBOARD_ROOT=where,
    )


def start_up_takes(tmp_path, name: str, ok: bool, **env) -> None:
    """``manage.py check`` with ``env``: it passes if ``ok``, else stops naming ``name``."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "check"],
        cwd=tmp_path,
        env=outside_env(STORMUI_DOTENV="off", **env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    if ok:
        assert done.returncode == 0, done.stderr
    else:
        last = done.stderr.strip().splitlines()[-1]
        assert "ImproperlyConfigured" in last and name in last, last


@pytest.mark.asyncio
async def test_a_leader_whose_session_is_lost_steps_down_and_stands_again(zk_server, settings):
    from kazoo.client import KazooClient

    settings.STORMUI_ZK_SERVERS = [zk_server.connect_string]
    settings.STORMUI_ZK_DASHBOARD_ROOT = f"/t/{uuid.uuid4().hex}-dashboard"
    loop = asyncio.get_running_loop()
    changes = []

    def candidate(name):
        async def elected():
            changes.append((name, "elected"))

        async def deposed():
            changes.append((name, "deposed"))

        return Candidate(loop, on_elected=elected, on_deposed=deposed)

    async def until(predicate):
        # the stewards run on this loop: wait off it
        await asyncio.to_thread(wait_for, predicate, interval=0.05)

    first, second = candidate("first"), candidate("second")
    first.start()
    await until(lambda: first.in_office)
    second.start()
    try:
        await until(lambda: second.client.connected)
        assert not second.leading
        # the ZooKeeper FAQ's way to end a session: another client joins it and closes it
        other = KazooClient(hosts=zk_server.connect_string, client_id=first.client.client_id)
        other.start(timeout=30)
        other.stop()
        other.close()
        await until(lambda: second.in_office)
        await until(lambda: not first.leading and first.client.connected)
        # (the first may win the session back for a moment before it is closed: it stepped
        # down, and may have taken over again, before it learnt the session was lost)
        await until(lambda: [c for c in changes if c[0] == "first"][-1] == ("first", "deposed"))
        assert not first.leading and not first.in_office  # it stands again, behind the leader
        await asyncio.to_thread(second.withdraw)
        await until(lambda: first.in_office)
        assert not second.leading
    finally:
        await asyncio.to_thread(first.withdraw)
        await asyncio.to_thread(second.withdraw)


@pytest.mark.asyncio
async def test_a_blip_the_loop_sleeps_through_still_has_the_pages_resync(zk_server, settings):
    """The election's session suspended and back before the loop steps down (or while it
    takes over): nothing is stepped down or taken over again, but ``on_resumed`` runs, so
    that the pages get what the relay did not send meanwhile."""
    from kazoo.protocol.states import KazooState

    settings.STORMUI_ZK_SERVERS = [zk_server.connect_string]
    settings.STORMUI_ZK_DASHBOARD_ROOT = f"/t/{uuid.uuid4().hex}-dashboard"
    loop = asyncio.get_running_loop()
    changes = []

    def blip():  # as kazoo's thread would say it, with no await between: the loop sleeps
        candidate._on_state(KazooState.SUSPENDED)
        candidate._on_state(KazooState.CONNECTED)

    async def elected():
        changes.append("elected")
        if changes.count("elected") == 1:
            blip()  # during the first take-over

    async def deposed():
        changes.append("deposed")

    async def resumed():
        changes.append("resumed")

    async def until(predicate):
        await asyncio.to_thread(wait_for, predicate, interval=0.05)

    candidate = Candidate(loop, on_elected=elected, on_deposed=deposed, on_resumed=resumed)
    candidate.start()
    try:
        await until(lambda: changes == ["elected", "resumed"])
        assert candidate.in_office
        blip()
        await until(lambda: changes == ["elected", "resumed", "resumed"])
        assert candidate.in_office and candidate.terms == 1
    finally:
        await asyncio.to_thread(candidate.withdraw)


@pytest.mark.asyncio
async def test_the_elections_session_timeout_is_the_setting(zk_server, settings):
    """``STORMUI_LEADER_SESSION_SECS`` is what the election's session asks ZooKeeper for (and
    gets: the suite's server allows sessions from 1 s), so a killed leader's node goes then."""
    settings.STORMUI_ZK_SERVERS = [zk_server.connect_string]
    settings.STORMUI_ZK_DASHBOARD_ROOT = f"/t/{uuid.uuid4().hex}-dashboard"
    settings.STORMUI_LEADER_SESSION_SECS = 2.5
    loop = asyncio.get_running_loop()

    async def nothing():
        pass

    candidate = Candidate(loop, on_elected=nothing, on_deposed=nothing)
    candidate.start()
    try:
        await asyncio.to_thread(wait_for, lambda: candidate.in_office, interval=0.05)
        # as ZooKeeper granted it (kazoo keeps the negotiated timeout)
        assert candidate.client._session_timeout == 2500
    finally:
        await asyncio.to_thread(candidate.withdraw)


@pytest.mark.parametrize("value, ok", [("2.5", True), ("0.5", False), ("soon", False)])
def test_the_leader_session_setting_is_checked_at_start_up(tmp_path, value, ok):
    start_up_takes(tmp_path, "STORMUI_LEADER_SESSION_SECS", ok, STORMUI_LEADER_SESSION_SECS=value)


@pytest.mark.asyncio
@pytest.mark.parametrize("replica, afresh", [("lead", False), ("follow", True), (None, True)])
async def test_a_take_over_tried_again_keeps_the_cluster_it_read(monkeypatch, replica, afresh):
    """A take-over whose relay could not send at first (Redis timing out) is tried again: the
    source it opened on ZooKeeper is kept, not read whole again (30 s at 20,000 tasks); a
    follower's copy or no source at all is replaced by one reading ZooKeeper."""
    from types import SimpleNamespace

    from stormui import live

    resets, resumed = [], []
    monkeypatch.setattr(
        live,
        "current_source",
        lambda: None if replica is None else SimpleNamespace(replica=replica),
    )
    monkeypatch.setattr(live, "reset_source", lambda **kw: resets.append(kw))

    async def resume():
        resumed.append(True)

    monkeypatch.setattr(live, "resume", resume)
    await live.take_over()
    assert (resets, resumed) == ([{"seed_next": True}] if afresh else [], [True])


def test_a_new_leader_does_not_wait_for_its_follower_source_to_close(monkeypatch):
    """Taking over, the follower's source is stopped at once and closed in the background
    (its threads' ends held a take-over up by a second and more at 20,000 tasks); the next
    source begins with its mirror, the generation it read and its last view."""
    import threading
    from types import SimpleNamespace

    from stormui import source as source_module

    release, closed, began = threading.Event(), threading.Event(), []

    def close():
        release.wait()
        closed.set()

    mirror, view = object(), object()
    follower = SimpleNamespace(
        replica="follow",
        mirror=mirror,
        state=SimpleNamespace(last_generation="gen-1"),
        _current=lambda: (view, 7),
        closing=lambda: began.append(True),
        close=close,
    )
    monkeypatch.setattr(source_module, "_source", follower)
    try:
        done = threading.Event()

        def reset():
            source_module.reset_source(seed_next=True)
            done.set()

        threading.Thread(target=reset, daemon=True).start()
        assert done.wait(10)  # it returned while the close is held
        assert began == [True] and not closed.is_set()
        assert source_module._source is None
        assert source_module._seed == (mirror, "gen-1", view)
    finally:
        release.set()
        monkeypatch.setattr(source_module, "_seed", None)
    assert closed.wait(10)
