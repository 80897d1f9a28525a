"""The live sockets end to end: Channels' communicator against the known cluster in a real
ZooKeeper, the source's mirror and the relay running for real."""

from __future__ import annotations

import asyncio
import time

import pytest
from channels.auth import AuthMiddlewareStack
from channels.routing import URLRouter
from channels.security.websocket import AllowedHostsOriginValidator
from channels.testing import WebsocketCommunicator
from django.urls import path

from clusterstate import (
    StormBase,
    SupervisorInfo,
    TaskError,
    TaskHeartbeat,
    precedence,
)
from clusterstate.mirror import MirrorChange
from stormui import consumers, live, metrics, scheduler
from stormui.asgi import application
from tests.stormui.conftest import HEALTHY, PAUSED, TROUBLED, bolt_stats, expected_window

# the ASGI stack (sessions, auth, Channels' connection clean-up) touches the database
pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(120), pytest.mark.django_db]

ORIGIN = b"http://localhost"
# how long a socket may take to get what it waits for, on a machine that may be busy with
# other work: a wait ends as soon as the message comes; the bound only decides when it fails
WAIT = 30


def connect(path_: str, origin: bytes = ORIGIN, app=application) -> WebsocketCommunicator:
    return WebsocketCommunicator(app, path_, headers=[(b"origin", origin), (b"host", b"localhost")])


async def receive_until(comm, predicate, timeout: float = WAIT, seen: list | None = None):
    """The first message matching ``predicate``; the ones before it go into ``seen``."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no matching message within {timeout}s; saw {seen}")
        # receive_nothing waits without cancelling the application, as a timed-out receive does
        if await comm.receive_nothing(timeout=min(left, 0.5), interval=0.005):
            continue
        message = await comm.receive_json_from()
        if predicate(message):
            return message
        if seen is not None:
            seen.append(message)


async def until(predicate, timeout: float = WAIT) -> None:
    """Wait, without blocking the loop, until ``predicate()`` holds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {predicate}")
        await asyncio.sleep(0.02)


def paused_is_active(message: dict) -> bool:
    """A cluster update that shows the paused storm activated."""
    return (
        message["type"] == "cluster"
        and {s["id"]: s for s in message["storms"]}[PAUSED]["status"] == "ACTIVE"
    )


async def test_cluster_socket_sends_snapshot_then_changes(live_cluster, writer):
    comm = connect("/ws/cluster/")
    connected, _ = await comm.connect(timeout=WAIT)
    assert connected
    snapshot = await comm.receive_json_from(timeout=WAIT)
    assert snapshot["type"] == "snapshot"
    assert snapshot["zk_connected"] is True
    storms = {s["id"]: s for s in snapshot["storms"]}
    assert set(storms) == set(live_cluster.storms)
    assert storms[PAUSED]["status"] == "INACTIVE"
    assert snapshot["summary"]["storms"] == len(live_cluster.storms)
    alive_before = snapshot["summary"]["tasks_alive"]
    # the cluster page's newest errors come with it
    assert snapshot["latest_errors"][0]["error"] == "spout error, newest"

    await asyncio.to_thread(writer.activate_storm, PAUSED, StormBase("paused", int(time.time())))
    update = await receive_until(
        comm,
        paused_is_active,
    )
    assert update["summary"]["storms"] == len(live_cluster.storms)

    # each supervisor comes with its workers, and which of their tasks are dead
    sups = {s["id"]: s for s in snapshot["supervisors"]}
    assert sups["sup-stale"]["lost"] is True and sups["sup-a"]["lost"] is False
    workers = {(w["storm_id"], w["port"]): w for w in sups["sup-a"]["workers"]}
    assert workers[(HEALTHY, 6700)]["task_ids"] == [1, 3, 5]
    assert workers[(HEALTHY, 6700)]["tasks_alive"] == 3
    assert workers[(HEALTHY, 6700)]["dead_task_ids"] == []
    gone = {(w["storm_id"], w["port"]): w for w in sups["sup-gone"]["workers"]}
    assert gone[(TROUBLED, 6700)]["dead_task_ids"] == [11, 12]

    await asyncio.to_thread(writer.remove_task_heartbeat, HEALTHY, 1)
    update = await receive_until(
        comm, lambda m: m["type"] == "cluster" and m["summary"]["tasks_alive"] < alive_before
    )
    assert update["summary"]["tasks_alive"] == alive_before - 1
    healthy = {s["id"]: s for s in update["storms"]}[HEALTHY]
    assert healthy["tasks_alive"] == healthy["tasks_total"] - 1
    sup_a = {s["id"]: s for s in update["supervisors"]}["sup-a"]
    worker = {(w["storm_id"], w["port"]): w for w in sup_a["workers"]}[(HEALTHY, 6700)]
    assert (worker["tasks_alive"], worker["dead_task_ids"]) == (2, [1])

    # a stale supervisor that beats again is no longer lost
    info = live_cluster.supervisors["sup-stale"]
    fresh = SupervisorInfo(int(time.time()), info.hostname, info.worker_ports, info.uptime_secs)
    await asyncio.to_thread(writer.set_supervisor_heartbeat, "sup-stale", fresh)
    await receive_until(
        comm,
        lambda m: (
            m["type"] == "cluster"
            and not {s["id"]: s for s in m["supervisors"]}["sup-stale"]["lost"]
        ),
    )
    await comm.disconnect()


async def test_a_storms_own_change_goes_out_at_once_whatever_the_window(
    live_cluster, writer, monkeypatch
):
    """Tasks come and go all the time on a large cluster: a window that they keep busy must
    not hold up a storm's status, which an operator watches for."""
    monkeypatch.setattr(live, "UPDATE_SECS", 3600.0)  # no window ends while this test runs
    comm = connect("/ws/cluster/")
    connected, _ = await comm.connect(timeout=WAIT)
    assert connected
    snapshot = await comm.receive_json_from(timeout=WAIT)
    alive_before = snapshot["summary"]["tasks_alive"]
    # the first change of a spell goes at once; it opens the window
    await asyncio.to_thread(writer.remove_task_heartbeat, HEALTHY, 1)
    await receive_until(
        comm, lambda m: m["type"] == "cluster" and m["summary"]["tasks_alive"] < alive_before
    )
    # a task gone now waits for the window: the storm's activation does not
    await asyncio.to_thread(writer.remove_task_heartbeat, HEALTHY, 3)
    await asyncio.to_thread(writer.activate_storm, PAUSED, StormBase("paused", int(time.time())))
    update = await receive_until(
        comm,
        paused_is_active,
    )
    # what waited goes with it: the update is built from the whole view as it is now
    assert update["summary"]["tasks_alive"] == alive_before - 2
    await comm.disconnect()


async def test_storm_socket_follows_its_storm(live_cluster, writer):
    comm = connect(f"/ws/storms/{HEALTHY}/")
    assert (await comm.connect(timeout=WAIT))[0]
    snapshot = await comm.receive_json_from(timeout=WAIT)
    assert snapshot["type"] == "snapshot" and snapshot["storm"]["id"] == HEALTHY
    assert {t["id"]: t["alive"] for t in snapshot["tasks"]} == dict.fromkeys(range(1, 6), True)
    assert {c["id"] for c in snapshot["spouts"]} == {"words"}

    await asyncio.to_thread(writer.remove_task_heartbeat, HEALTHY, 2)
    update = await receive_until(
        comm,
        lambda m: m["type"] == "storm" and not {t["id"]: t for t in m["tasks"]}[2]["alive"],
    )
    assert update["storm"]["tasks_alive"] == 4
    spout = update["spouts"][0]
    assert spout["tasks_alive"] == 1

    # its errors come as they are reported, with the task's component and worker
    before = int(time.time())
    await asyncio.to_thread(writer.report_task_error, HEALTHY, 3, "count failed")
    error = await receive_until(comm, lambda m: m["type"] == "error")
    # and as every error list renders it
    html = error.pop("html")
    assert html.startswith('<li id="error-')
    assert 'class="error-item recent" data-storm-id="healthy-1-1000" data-task-id="3"' in html
    assert '<pre class="error-text">count failed</pre>' in html
    assert error == {
        "type": "error",
        "storm_id": HEALTHY,
        "task_id": 3,
        "component_id": "count",
        "time_secs": error["time_secs"],
        "error": "count failed",
        "host": "host-a.example",
        "port": 6700,
    }
    assert before <= error["time_secs"] <= time.time()  # stamped when it was reported

    # when the storm goes, the page is told
    await asyncio.to_thread(writer.deactivate_storm, HEALTHY)
    await asyncio.to_thread(writer.remove_storm, HEALTHY)
    removed = await receive_until(comm, lambda m: m.get("removed"))
    assert removed["type"] == "storm" and removed["storm_id"] == HEALTHY
    await comm.disconnect()


async def test_component_socket_is_narrowed_to_its_tasks_with_their_stats(live_cluster, writer):
    whole = connect(f"/ws/storms/{HEALTHY}/")
    comm = connect(f"/ws/storms/{HEALTHY}/?component=count")
    assert (await whole.connect(timeout=WAIT))[0] and (await comm.connect())[0]
    plain = await whole.receive_json_from(timeout=WAIT)
    assert all("stats" not in t for t in plain["tasks"])  # the storm page's stays lean
    snapshot = await comm.receive_json_from(timeout=WAIT)
    assert snapshot["type"] == "snapshot" and snapshot["component_id"] == "count"
    assert [c["id"] for c in snapshot["bolts"]] == ["count"] and snapshot["spouts"] == []
    tasks = {t["id"]: t for t in snapshot["tasks"]}
    assert set(tasks) == {3, 4, 5}
    assert {(w["node_id"], w["port"]) for w in snapshot["workers"]} == {
        ("sup-a", 6700),
        ("sup-b", 6700),
    }
    for window in ("600", "10800", "86400", "all-time"):
        want = expected_window([bolt_stats(2)], window)
        got = tasks[4]["stats"][window]
        assert (got["emitted"], got["transferred"], got["acked"], got["failed"]) == (
            want["emitted"],
            want["transferred"],
            want["acked"],
            want["failed"],
        )
        assert got["latency_ms"] == pytest.approx(want["latency"])
    assert tasks[4]["last_error"]["error"] == "healthy storm's old error"
    assert tasks[3]["last_error"] is None and tasks[3]["heartbeat_age_secs"] is not None

    # a new heartbeat: the task's figures and age follow
    beat = TaskHeartbeat(int(time.time()), 100, bolt_stats(9))
    await asyncio.to_thread(writer.set_task_heartbeat, HEALTHY, 3, beat)
    want = expected_window([bolt_stats(9)], "600")["emitted"]
    seen: list = []
    update = await receive_until(
        comm,
        lambda m: (
            m["type"] == "storm"
            and {t["id"]: t for t in m["tasks"]}[3]["stats"]["600"]["emitted"] == want
        ),
        seen=seen,
    )
    assert {t["id"] for t in update["tasks"]} == {3, 4, 5}
    assert {t["id"]: t for t in update["tasks"]}[3]["uptime_secs"] == 100
    # only the narrowed messages: the whole storm's never reach this socket
    assert all(m.get("component_id") == "count" for m in seen if m["type"] == "storm")

    # its errors come as they are reported, and the next update carries the task's last one
    await asyncio.to_thread(writer.report_task_error, HEALTHY, 5, "count 5 failed")
    error = await receive_until(comm, lambda m: m["type"] == "error")
    assert (error["task_id"], error["component_id"], error["error"]) == (
        5,
        "count",
        "count 5 failed",
    )
    update = await receive_until(
        comm,
        lambda m: m["type"] == "storm" and {t["id"]: t for t in m["tasks"]}[5]["last_error"],
    )
    assert {t["id"]: t for t in update["tasks"]}[5]["last_error"]["error"] == "count 5 failed"
    await comm.disconnect()
    await whole.disconnect()


async def test_unknown_component_gets_the_whole_storm(live_cluster):
    comm = connect(f"/ws/storms/{HEALTHY}/?component=no-such")
    assert (await comm.connect(timeout=WAIT))[0]
    snapshot = await comm.receive_json_from(timeout=WAIT)
    assert "component_id" not in snapshot and len(snapshot["tasks"]) == 5
    await comm.disconnect()


@pytest.mark.parametrize("stormui_mirror", [False])
async def test_without_the_mirror_the_relay_polls(live_cluster, writer, monkeypatch):
    monkeypatch.setattr(live, "TICK_SECS", 0.5)
    errors = connect("/ws/errors/")
    storm = connect(f"/ws/storms/{HEALTHY}/?component=count")
    assert (await errors.connect(timeout=WAIT))[0] and (await storm.connect())[0]
    assert (await errors.receive_json_from(timeout=WAIT))["type"] == "snapshot"
    assert (await storm.receive_json_from(timeout=WAIT))["type"] == "snapshot"
    relay = live.current_relay()
    assert relay.polling
    # the first poll only learns the errors there are; written after it, an error is new
    await until(lambda: relay.sent["cluster"] >= 1)

    # a new error is found by the next poll, and comes once; the errors there before the
    # first poll never come as new (they would arrive ahead of it)
    await asyncio.to_thread(writer.report_task_error, HEALTHY, 3, "polled error")
    await asyncio.to_thread(writer.report_task_error, HEALTHY, 3, "polled error")
    first = await receive_until(errors, lambda m: m["type"] == "error")
    second = await receive_until(errors, lambda m: m["type"] == "error")
    assert (first["error"], first["component_id"], first["port"]) == ("polled error", "count", 6700)
    assert second["error"] == "polled error"  # the same text twice is two errors
    # a later error, found by a later poll, is the next error to come: no repeat before it
    await asyncio.to_thread(writer.report_task_error, HEALTHY, 4, "polled later")
    later = await receive_until(errors, lambda m: m["type"] == "error")
    assert later["error"] == "polled later"
    got = await receive_until(storm, lambda m: m["type"] == "error")
    assert got["task_id"] == 3

    # and heartbeats: the task's figures follow with no change notification
    beat = TaskHeartbeat(int(time.time()), 77, bolt_stats(5))
    await asyncio.to_thread(writer.set_task_heartbeat, HEALTHY, 3, beat)
    update = await receive_until(
        storm,
        lambda m: m["type"] == "storm" and {t["id"]: t for t in m["tasks"]}[3]["uptime_secs"] == 77,
    )
    emitted = {t["id"]: t for t in update["tasks"]}[3]["stats"]["all-time"]["emitted"]
    assert emitted == expected_window([bolt_stats(5)], "all-time")["emitted"]
    await errors.disconnect()
    await storm.disconnect()


async def test_errors_arrive_in_order_each_once(live_cluster, writer):
    comm = connect("/ws/errors/")
    assert (await comm.connect(timeout=WAIT))[0]
    snapshot = await comm.receive_json_from(timeout=WAIT)
    assert snapshot["type"] == "snapshot"
    expected = [text for _, _, text, _ in live_cluster.errors()]
    assert [e["error"] for e in snapshot["errors"]] == expected
    assert not snapshot.get("resync")

    # a burst of 30 over six tasks, five each (a task keeps ten)
    written = []

    def burst():
        for i in range(30):
            task = 1 + i % 5 if i % 6 else 10
            storm = HEALTHY if task != 10 else TROUBLED
            text = f"burst {i:02d}"
            writer.report_task_error(storm, task, text)
            written.append((storm, task, text))

    await asyncio.to_thread(burst)
    got = []
    while len(got) < 30:
        message = await receive_until(comm, lambda m: m["type"] == "error")
        got.append(message)
    # nothing more: each arrived once (a repeat would come before the next error written)
    await asyncio.to_thread(writer.report_task_error, HEALTHY, 1, "after the burst")
    after = await receive_until(comm, lambda m: m["type"] == "error")
    assert after["error"] == "after the burst"
    assert sorted(m["error"] for m in got) == [t for _, _, t in written]
    # in order: each task's errors as written, and the whole burst as the mirror reported it
    for storm, task in {(s, t) for s, t, _ in written}:
        mine = [m["error"] for m in got if (m["storm_id"], m["task_id"]) == (storm, task)]
        assert mine == [t for s, k, t in written if (s, k) == (storm, task)]
    first = next(m for m in got if m["task_id"] == 10)
    assert first["component_id"] == "src" and first["port"] == 6702
    await comm.disconnect()


async def test_status_and_resync_after_zookeeper_reconnect(live_cluster):
    from stormui.source import get_source
    from tests.helpers import expire_session

    comm = connect("/ws/errors/")
    assert (await comm.connect(timeout=WAIT))[0]
    assert (await comm.receive_json_from(timeout=WAIT))["type"] == "snapshot"
    source = get_source()
    await asyncio.to_thread(expire_session, source.state)
    seen: list = []
    down = await receive_until(
        comm, lambda m: m["type"] == "status" and not m["zk_connected"], seen=seen
    )
    assert set(down) == {"type", "zk_connected", "synced_at", "html"}
    assert set(down["html"]) == {"zk-status"}
    assert 'data-connected="false"' in down["html"]["zk-status"]
    up = await receive_until(comm, lambda m: m["type"] == "status" and m["zk_connected"])
    assert up["synced_at"] >= down["synced_at"]
    snapshot = await receive_until(comm, lambda m: m["type"] == "snapshot")
    assert snapshot["resync"] is True and snapshot["zk_connected"] is True
    await comm.disconnect()


async def test_a_leader_that_withheld_sends_resyncs_every_page_when_it_leads_again(
    live_cluster, writer, monkeypatch
):
    """A leader whose election's session is suspended sends nothing (it cannot know whether
    it still leads); when the same session comes back it leads on with the same relay. What
    it withheld meanwhile no page got: every page starts again from a snapshot."""
    comm = connect("/ws/errors/")
    assert (await comm.connect(timeout=WAIT))[0]
    assert (await comm.receive_json_from(timeout=WAIT))["type"] == "snapshot"
    relay = live.current_relay()
    sent = relay.sent["errors"]
    monkeypatch.setattr(live, "relays_here", lambda: False)
    await asyncio.to_thread(writer.report_task_error, HEALTHY, 1, "while suspended")
    await until(lambda: relay.sent["errors"] > sent)  # its turn to go came, and went
    monkeypatch.setattr(live, "relays_here", lambda: True)
    await asyncio.to_thread(writer.report_task_error, HEALTHY, 2, "leading again")
    seen: list = []
    first = await receive_until(
        comm, lambda m: m["type"] == "snapshot" or m.get("error") == "leading again", seen=seen
    )
    assert first["type"] == "snapshot" and first["resync"] is True, first
    assert {"while suspended", "leading again"} <= {e["error"] for e in first["errors"]}
    assert not [m for m in seen if m["type"] == "error"], seen
    # and on as before: each error once
    await asyncio.to_thread(writer.report_task_error, HEALTHY, 3, "and on")
    seen = []
    after = await receive_until(comm, lambda m: m["type"] == "error", seen=seen)
    assert after["error"] == "and on", (after, seen)
    await comm.disconnect()


async def test_the_relay_listens_once_its_layer_answers_again(live_cluster, monkeypatch):
    """The layer away for a moment as a relay starts (Redis timing out right after a
    take-over): its listener joins its group once the layer answers, so the take-over that
    waits for it (``ensure_relay``) does not wait for good."""
    from asgiref.sync import sync_to_async
    from channels.layers import get_channel_layer

    from stormui.source import get_source

    layer = get_channel_layer()
    real_group_add = layer.group_add
    failed = []

    async def group_add(group, channel):
        if group == live.RELAY_GROUP and len(failed) < 2:
            failed.append(group)
            raise ConnectionError("the layer is away")
        return await real_group_add(group, channel)

    monkeypatch.setattr(layer, "group_add", group_add)
    monkeypatch.setattr(live, "JOIN_RETRY_FIRST_SECS", 0.01)
    source = await sync_to_async(get_source)()
    relay = live.Relay(source, layer, asyncio.get_running_loop())
    relay.start()
    try:
        await asyncio.wait_for(relay.listening.wait(), WAIT)
        assert failed == [live.RELAY_GROUP] * 2
        # and it hears which pages are open
        await layer.group_send(live.RELAY_GROUP, {"type": "pages.open", "keys": [["cluster"]]})
        await until(lambda: ("cluster",) in relay.pages)
    finally:
        relay.stop()


async def test_the_first_request_starts_the_relay_once_without_waiting(live_cluster, monkeypatch):
    # no page open: HTTP requests come first, at once, then a socket; one relay starts
    starts = []
    real_start = live.Relay.start
    monkeypatch.setattr(live.Relay, "start", lambda self: starts.append(self) or real_start(self))
    served = []

    async def app(scope, receive, send):
        served.append(live.current_relay())

    requests = scheduler.StartsScheduler(app)
    await asyncio.gather(*(requests({"type": "http"}, None, None) for _ in range(5)))
    assert served == [None] * 5  # each answered without waiting for the relay
    comm = connect("/ws/cluster/")
    assert (await comm.connect(timeout=WAIT))[0]
    assert (await comm.receive_json_from(timeout=WAIT))["type"] == "snapshot"
    await until(lambda: live._starting is not None and live._starting.done())
    relay = live.current_relay()
    assert starts == [relay] and not relay.done
    await requests({"type": "http"}, None, None)  # a later request finds it running
    assert starts == [relay]
    await comm.disconnect()


async def test_other_origin_refused(live_cluster):
    for url in ("/ws/cluster/", "/ws/errors/", f"/ws/storms/{HEALTHY}/"):
        comm = connect(url, origin=b"http://evil.example")
        connected, _ = await comm.connect(timeout=WAIT)
        assert not connected, url
        await comm.disconnect()


async def test_anonymous_refused_when_login_required(live_cluster, settings):
    settings.STORMUI_LOGIN_REQUIRED = True
    for url in ("/ws/cluster/", "/ws/errors/", f"/ws/storms/{HEALTHY}/"):
        comm = connect(url)
        assert (await comm.connect(timeout=WAIT))[0]
        closed = await comm.receive_output(timeout=WAIT)
        assert closed == {"type": "websocket.close", "code": consumers.CLOSE_LOGGED_OUT}, url
        await comm.disconnect()


async def test_unknown_or_bad_storm_closed(live_cluster):
    for storm_id in ("no-such-storm-1-1", "bad%20id", "..."):
        comm = connect(f"/ws/storms/{storm_id}/")
        connected, _ = await comm.connect(timeout=WAIT)
        assert connected
        closed = await comm.receive_output(timeout=WAIT)
        assert closed == {"type": "websocket.close", "code": consumers.CLOSE_NOT_FOUND}, storm_id
        await comm.disconnect()


async def test_storm_group_names_are_valid():
    import re

    for storm_id in ("a", "x" * 500, "wörds-1-2", "a/b c"):
        name = live.storm_group(storm_id)
        assert re.fullmatch(r"[A-Za-z0-9._-]{1,99}", name)
    assert live.storm_group("a-1-1") != live.storm_group("a-1-2")


# -- slow sockets ----------------------------------------------------------------

gate = {"open": None, "sent": 0}


class SlowErrorsConsumer(consumers.ErrorsConsumer):
    """Sends its snapshot, then stalls every send until the test opens the gate."""

    outbox_limit = 3

    async def send(self, text_data=None, bytes_data=None, close=False):
        if gate["sent"] > 0:
            await gate["open"].wait()
        gate["sent"] += 1
        await super().send(text_data=text_data, bytes_data=bytes_data, close=close)


class StuckErrorsConsumer(SlowErrorsConsumer):
    send_timeout = 0.5


slow_app = AllowedHostsOriginValidator(
    AuthMiddlewareStack(
        URLRouter(
            [
                path("ws/slow/", SlowErrorsConsumer.as_asgi()),
                path("ws/stuck/", StuckErrorsConsumer.as_asgi()),
                path("ws/errors/", consumers.ErrorsConsumer.as_asgi()),
            ]
        )
    )
)


async def test_slow_socket_is_resynced_and_does_not_hold_up_others(live_cluster, writer):
    gate.update(open=asyncio.Event(), sent=0)
    dropped = metrics.messages.get("dropped")
    slow = connect("/ws/slow/", app=slow_app)
    fast = connect("/ws/errors/", app=slow_app)
    assert (await slow.connect(timeout=WAIT))[0] and (await fast.connect())[0]
    assert (await slow.receive_json_from(timeout=WAIT))["type"] == "snapshot"
    assert (await fast.receive_json_from(timeout=WAIT))["type"] == "snapshot"

    # one error at a time, each a batch of its own: the slow socket's outbox overflows
    for i in range(8):
        text = f"slow {i}"
        await asyncio.to_thread(writer.report_task_error, HEALTHY, 1 + i % 5, text)
        got = await receive_until(fast, lambda m: m["type"] == "error")
        assert got["error"] == text  # the stalled socket delays no one
    gate["open"].set()
    first = await slow.receive_json_from(timeout=WAIT)
    assert first["type"] == "error" and first["error"] == "slow 0"  # it was being sent
    resync = await slow.receive_json_from(timeout=WAIT)
    assert resync["type"] == "snapshot" and resync["resync"] is True
    assert {f"slow {i}" for i in range(8)} <= {e["error"] for e in resync["errors"]}
    assert metrics.messages.get("dropped") > dropped  # stormui_messages_dropped_total
    # what overflowed is dropped, not sent after the snapshot: the next message is what comes next
    await asyncio.to_thread(writer.report_task_error, HEALTHY, 1, "after the resync")
    after = await receive_until(slow, lambda m: m["type"] == "error")
    assert after["error"] == "after the resync"
    await slow.disconnect()
    await fast.disconnect()


async def test_stuck_socket_is_closed(live_cluster, writer):
    gate.update(open=asyncio.Event(), sent=0)
    stuck = connect("/ws/stuck/", app=slow_app)
    assert (await stuck.connect(timeout=WAIT))[0]
    assert (await stuck.receive_json_from(timeout=WAIT))["type"] == "snapshot"
    await asyncio.to_thread(writer.report_task_error, HEALTHY, 1, "never read")
    closed = await stuck.receive_output(timeout=WAIT)
    assert closed == {"type": "websocket.close", "code": consumers.CLOSE_TOO_SLOW}
    await stuck.disconnect()


async def test_a_burst_larger_than_the_outbox_reaches_a_socket_that_keeps_up(live_cluster):
    from stormui import consumers, live

    comm = connect("/ws/errors/")
    assert (await comm.connect(timeout=WAIT))[0]
    snapshot = await comm.receive_json_from(timeout=WAIT)
    assert snapshot["type"] == "snapshot"
    relay = live.current_relay()
    count = consumers.OUTBOX_LIMIT + 50
    batch = [
        (10**9 + i, live.encode({"type": "error", "error": f"burst {i}"})) for i in range(count)
    ]
    # one relay batch, as a burst of errors within one window would be
    await relay.layer.group_send(
        live.ERRORS_GROUP, {"type": "errors.reported", "source": relay.token, "errors": batch}
    )
    received = [(await comm.receive_json_from(timeout=WAIT)) for _ in range(count)]
    assert [m["error"] for m in received] == [f"burst {i}" for i in range(count)]
    # each once: the next batch's error is the next message
    after = [(10**9 + count, live.encode({"type": "error", "error": "after the burst"}))]
    await relay.layer.group_send(
        live.ERRORS_GROUP, {"type": "errors.reported", "source": relay.token, "errors": after}
    )
    assert (await comm.receive_json_from(timeout=WAIT))["error"] == "after the burst"
    await comm.disconnect()


async def test_another_process_batch_leaves_out_what_the_snapshot_held(live_cluster):
    """A follower's socket: its snapshot comes from its own source, the errors from the
    leader's relay (another process: versions do not compare). An error the snapshot held
    does not come again when the leader's batch brings it; the rest of the batch does."""
    from stormui import live
    from stormui.source import get_source

    comm = connect("/ws/errors/")
    assert (await comm.connect(timeout=WAIT))[0]
    snapshot = await comm.receive_json_from(timeout=WAIT)
    assert snapshot["type"] == "snapshot" and snapshot["errors"]
    view = await asyncio.to_thread(get_source().cluster_view)
    held = [e for storm in view.storms.values() for e in storm.errors][:2]
    assert all(live.error_key(e) for e in held)
    assert {e.error for e in held} <= {m["error"] for m in snapshot["errors"]}

    def entry(version, text, key):
        return [version, live.encode({"type": "error", "error": text}), key]

    batch = [
        *(entry(1, e.error, live.error_key(e)) for e in held),
        entry(2, "new to it", f"{HEALTHY}/1/{10**9}"),
    ]
    relay = live.current_relay()
    await relay.layer.group_send(
        live.ERRORS_GROUP,
        {"type": "errors.reported", "source": "another.process", "errors": batch},
    )
    assert (await comm.receive_json_from(timeout=WAIT))["error"] == "new to it"
    # an error its snapshot did not hold comes, however its version compares
    later = [entry(0, "older version", f"{HEALTHY}/1/{10**9 + 1}")]
    await relay.layer.group_send(
        live.ERRORS_GROUP,
        {"type": "errors.reported", "source": "another.process", "errors": later},
    )
    assert (await comm.receive_json_from(timeout=WAIT))["error"] == "older version"
    await comm.disconnect()


async def test_another_process_errors_outlive_a_snapshot_asked_for(live_cluster):
    """A follower's socket asked to resync gets the leader's batch before its snapshot is
    built: the snapshot comes from its own copy of the cluster, which may not hold those
    errors yet, so they stay queued and come after it (those it held do not)."""
    from stormui import live

    comm = connect("/ws/errors/")
    assert (await comm.connect(timeout=WAIT))[0]
    first = await comm.receive_json_from(timeout=WAIT)
    assert first["type"] == "snapshot"
    relay = live.current_relay()
    held = first["errors"][0]
    batch = [
        [1, live.encode({"type": "error", "error": "not in its copy yet"}), f"{HEALTHY}/1/{10**9}"]
    ]
    await relay.layer.group_send(live.STATUS_GROUP, {"type": "resync.requested"})
    await relay.layer.group_send(
        live.ERRORS_GROUP,
        {"type": "errors.reported", "source": "another.process", "errors": batch},
    )
    snapshot = await comm.receive_json_from(timeout=WAIT)
    assert snapshot["type"] == "snapshot" and snapshot["resync"] is True
    assert held["error"] in {e["error"] for e in snapshot["errors"]}
    assert (await comm.receive_json_from(timeout=WAIT))["error"] == "not in its copy yet"
    await comm.disconnect()


async def test_the_relay_holds_an_error_as_news_until_its_sockets_have_it(
    live_cluster, monkeypatch
):
    """Background work (the view builder, heartbeat polls, the history) steps aside while
    news is held (clusterstate.precedence): the relay holds an error from the moment the
    mirror tells it (before the mirror lets go of its own hold) until it is sent."""
    gate = precedence.Gate(max_wait=0.05)
    monkeypatch.setattr(precedence, "NEWS", gate)
    comm = connect("/ws/errors/")
    assert (await comm.connect(timeout=WAIT))[0]
    assert (await comm.receive_json_from(timeout=WAIT))["type"] == "snapshot"
    source = live.get_source()
    await until(lambda: (relay := live.current_relay()) is not None and relay.source is source)
    relay = live.current_relay()
    error = TaskError("news", int(time.time()), 0)
    change = MirrorChange("errors", HEALTHY, 1, (error,), live.source_version(source) + 1000)
    # as the mirror tells it (here on the loop, which so cannot take it meanwhile)
    relay._on_change(change)
    assert gate.pending == 1
    message = await receive_until(comm, lambda m: m["type"] == "error")
    assert message["error"] == "news"
    await until(lambda: gate.pending == 0)  # let go once sent
    # and a change that is no news (heartbeat data) is not held
    relay._on_change(MirrorChange("heartbeats", None, None, (), live.source_version(source) + 1001))
    assert gate.pending == 0
    await comm.disconnect()
