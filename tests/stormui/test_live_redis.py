"""Many daphnes behind Redis: the elected one (stormui.leader) feeds the sockets of every
daphne, each change exactly once."""

from __future__ import annotations

import contextlib
import json
import time

import pytest

from bench import live_servers
from clusterstate import StormBase
from tests.helpers import (
    WAIT,
    open_socket,
    receive_until,
    storm_session,
)
from tests.stormui.conftest import HEALTHY, PAUSED, known_cluster_behind_redis

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def farm(zk_server, tmp_path_factory, server_database_factory):
    """Redis and two daphnes, one of them elected leader, all on the known cluster."""
    folder = tmp_path_factory.mktemp("live-redis")
    database = server_database_factory(folder)
    with known_cluster_behind_redis(zk_server, folder, database) as (procs, conf):
        urls = list(procs)
        live_servers.wait_leader(urls)
        yield urls, conf


@pytest.fixture
def writer(farm):
    """A Storm session on the farm's root, with the real clock."""
    with storm_session(farm[1]) as storm_state:
        yield storm_state


def test_a_change_reaches_sockets_on_both_daphnes_once(farm, writer):
    urls, _ = farm
    with contextlib.ExitStack() as stack:
        feeds = [stack.enter_context(open_socket(url, "/ws/errors/")) for url in urls]
        clusters = [stack.enter_context(open_socket(url, "/ws/cluster/")) for url in urls]
        for ws in feeds + clusters:
            assert json.loads(ws.recv(timeout=WAIT))["type"] == "snapshot"

        writer.report_task_error(HEALTHY, 3, "seen by every daphne")
        for ws in feeds:
            error = receive_until(ws, lambda m: m["type"] == "error")
            assert error["error"] == "seen by every daphne"
            assert error["component_id"] == "count" and error["host"] == "host-a.example"
        # once: the daphnes do not relay as well (a repeat would come before the next error)
        writer.report_task_error(HEALTHY, 3, "the next one")
        for ws in feeds:
            error = receive_until(ws, lambda m: m["type"] == "error")
            assert error["error"] == "the next one"

        writer.activate_storm(PAUSED, StormBase("paused", int(time.time())))
        for ws in clusters:
            receive_until(
                ws,
                lambda m: (
                    m["type"] == "cluster"
                    and {s["id"]: s["status"] for s in m["storms"]}[PAUSED] == "ACTIVE"
                ),
            )


def test_storm_sockets_on_both_daphnes(farm, writer):
    urls, _ = farm
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(open_socket(url, f"/ws/storms/{HEALTHY}/")) for url in urls]
        for ws in sockets:
            assert json.loads(ws.recv(timeout=WAIT))["type"] == "snapshot"
        writer.remove_task_heartbeat(HEALTHY, 4)
        for ws in sockets:
            receive_until(
                ws,
                lambda m: m["type"] == "storm" and not {t["id"]: t["alive"] for t in m["tasks"]}[4],
            )
