"""The derived figures of ``stormui.cluster``, built from a known cluster in ZooKeeper.

Each test builds the view at a fixed ``now`` through the source's reader (the
mirror, or ``StormClusterState`` straight on ZooKeeper) and compares it with
figures worked out in ``conftest.py`` from what was written.
"""

from __future__ import annotations

import time

import pytest

from clusterstate import (
    Assignment,
    StormBase,
    TaskError,
    TaskHeartbeat,
    TaskInfo,
    mk_distributed_cluster_state,
    mk_storm_cluster_state,
    precedence,
)
from clusterstate.memstate import MemoryStore, mk_memory_cluster_state
from clusterstate.paths import task_path, taskbeat_path
from clusterstate.records import encode
from stormui.cluster import (
    WINDOWS,
    StormRecords,
    TaskRecords,
    build_cluster_view,
    build_storm_view,
    derive_storm,
    page_window,
    parse_window,
    select_errors,
)
from stormui.source import get_source
from tests.helpers import wait_for
from tests.stormui.conftest import (
    BROKEN,
    HEALTHY,
    HOSTILE_ERROR,
    MULTILINE_ERROR,
    PAUSED,
    SUPERVISOR_TIMEOUT,
    TASK_TIMEOUT,
    TROUBLED,
    bolt_stats,
    expected_window,
    spout_stats,
)


@pytest.fixture(params=[False, True], ids=["direct", "mirror"])
def stormui_mirror(request):
    return request.param


def _kwargs(now):
    return {
        "now": now,
        "connected": True,
        "synced_at": now,
        "task_timeout": TASK_TIMEOUT,
        "supervisor_timeout": SUPERVISOR_TIMEOUT,
    }


@pytest.fixture
def built(known_cluster):
    """(known, view, now): the cluster view built at a fixed time just after the writes."""
    now = known_cluster.written_at + 5
    view = build_cluster_view(get_source().reader, **_kwargs(now))
    return known_cluster, view, now


def test_cluster_totals(built):
    known, view, now = built
    assert set(view.storms) == {HEALTHY, TROUBLED, PAUSED, BROKEN}
    assert view.slots_total == known.slots_total == 8  # sup-a and sup-b; sup-stale is lost
    assert view.slots_used == known.slots_used == 7
    assert view.slots_free == 1
    assert view.tasks_total == len(known.tasks) == 13
    assert view.tasks_alive == known.tasks_alive(now)
    assert view.tasks_dead == len(known.tasks) - known.tasks_alive(now)
    assert view.supervisors_present == len(known.supervisors) == 3
    recent = [e for e in known.errors() if e[0] >= now - 600]
    assert view.errors_last_10m == len(recent) == 5
    assert view.as_of == now
    assert view.zk_connected is True


def test_storm_status_name_uptime(built):
    known, view, now = built
    healthy = view.storms[HEALTHY]
    assert (healthy.status, healthy.name) == ("ACTIVE", "healthy")
    assert healthy.launch_time_secs == known.storms[HEALTHY]["launch"]
    assert healthy.uptime_secs == now - known.storms[HEALTHY]["launch"]
    assert healthy.master_code_dir == f"/nimbus/stormdist/{HEALTHY}"
    assert not healthy.unreadable

    paused = view.storms[PAUSED]
    assert (paused.status, paused.name, paused.uptime_secs) == ("INACTIVE", PAUSED, None)
    assert paused.tasks_total == 1 and not paused.unreadable

    broken = view.storms[BROKEN]
    assert broken.unreadable
    assert broken.unreadable_paths == (f"/storms/{BROKEN}",)
    assert (broken.name, broken.uptime_secs, broken.launch_time_secs) == (BROKEN, None, None)
    assert broken.status == "INACTIVE"
    assert broken.tasks_total == 1  # its assignment was readable


def test_workers_are_distinct_node_port_pairs(built):
    known, view, _ = built
    for storm_id, storm in view.storms.items():
        expected = known.workers(storm_id)
        assert {(w.node_id, w.port) for w in storm.workers} == expected
        assert storm.workers_total == len(expected)
        for w in storm.workers:
            assert w.supervisor_id == w.node_id
            assert w.host == {"sup-a": "host-a.example", "sup-b": "host-b.example"}.get(
                w.node_id, "host-gone.example"
            )
            want = [
                t.task_id
                for t in known.storm_tasks(storm_id)
                if (t.node, t.port)
                == (
                    w.node_id,
                    w.port,
                )
            ]
            assert list(w.task_ids) == want
    assert view.storms[HEALTHY].workers_total == 2  # five tasks on two slots


def _assert_window(ws, expected, window):
    assert ws.window == window
    assert (ws.emitted, ws.transferred, ws.acked, ws.failed) == (
        expected["emitted"],
        expected["transferred"],
        expected["acked"],
        expected["failed"],
    )
    if expected["latency"] is None:
        assert ws.latency_ms is None
    else:
        assert ws.latency_ms == pytest.approx(expected["latency"])


def test_storm_stats_by_window(built):
    known, view, _ = built
    for storm_id in (HEALTHY, TROUBLED, PAUSED):
        beats = [t.beat.stats for t in known.storm_tasks(storm_id) if t.beat and t.beat.stats]
        spouts = [s for s in beats if s["type"] == "spout"]
        for w in WINDOWS:
            counts = expected_window(beats, w, counts_only=True)
            spout = expected_window(spouts, w)
            expected = {**spout, "emitted": counts["emitted"], "transferred": counts["transferred"]}
            _assert_window(view.storms[storm_id].window_stats[w], expected, w)
    # the numbers do move with the window, and bolts add to emitted but not to acked
    healthy = view.storms[HEALTHY].window_stats
    assert healthy["600"].emitted < healthy["all-time"].emitted
    assert healthy["600"].acked == sum(
        sum(spout_stats(seed)["acked"]["600"].values()) for seed in (1, 2)
    )


def test_component_stats_types_and_liveness(built):
    known, view, now = built
    for storm_id in (HEALTHY, TROUBLED):
        storm = view.storms[storm_id]
        for cid, comp in storm.components.items():
            tasks = known.component_tasks(storm_id, cid)
            assert list(comp.task_ids) == [t.task_id for t in tasks]
            assert comp.tasks_alive == sum(1 for t in tasks if t.alive(now))
            stats = [t.beat.stats for t in tasks if t.beat and t.beat.stats]
            for w in WINDOWS:
                _assert_window(comp.window_stats[w], expected_window(stats, w), w)

    troubled = view.storms[TROUBLED]
    types = {cid: c.component_type for cid, c in troubled.components.items()}
    # src has no component_type in its info: its stats say spout; mystery has neither
    assert types == {"src": "spout", "sink": "bolt", "mystery": "unknown"}
    assert [c.component_id for c in troubled.spouts] == ["src"]
    assert [c.component_id for c in troubled.bolts] == ["mystery", "sink"]
    healthy = view.storms[HEALTHY]
    assert [c.component_id for c in healthy.spouts] == ["words"]
    # bolt 5 has two inputs: its latency is weighted by each input's acked count
    count = healthy.components["count"].window_stats["all-time"]
    stats = [bolt_stats(1), bolt_stats(2), bolt_stats(3, ("words", "other"))]
    assert count.latency_ms == pytest.approx(expected_window(stats, "all-time")["latency"])


def test_tasks_alive_dead_stale_and_unreadable(built):
    known, view, now = built
    tasks = view.storms[TROUBLED].tasks
    assert list(tasks) == [10, 11, 12, 13, 14, 15]
    dead = tasks[11]
    assert not dead.alive and dead.heartbeat_age_secs is None and dead.uptime_secs is None
    stale = tasks[12]
    assert not stale.alive
    assert stale.heartbeat_age_secs == now - known.tasks[(TROUBLED, 12)].beat.time_secs
    assert stale.heartbeat_age_secs > TASK_TIMEOUT
    fresh = tasks[13]
    assert fresh.alive and fresh.heartbeat_age_secs == 6  # written 1 s before written_at
    assert (fresh.node_id, fresh.host, fresh.port) == ("sup-b", "host-b.example", 6701)
    assert fresh.start_time_secs == known.tasks[(TROUBLED, 13)].start_time_secs
    assert fresh.stats == known.tasks[(TROUBLED, 13)].beat.stats
    assert fresh.window_stats["600"].emitted == sum(bolt_stats(6)["emitted"]["600"].values())

    bad = tasks[15]
    assert bad.unreadable == (f"/tasks/{TROUBLED}/15",)
    assert bad.component_id is None and bad.alive and bad.component_type == "bolt"
    assert all(15 not in c.task_ids for c in view.storms[TROUBLED].components.values())
    assert all(not t.unreadable for t in tasks.values() if t.task_id != 15)


def test_errors_newest_first_with_ties_kept_stable(built):
    known, view, now = built
    troubled = view.storms[TROUBLED]

    def rows(errors):
        return [(e.time_secs, e.task_id, e.error, e.storm_id) for e in errors]

    assert rows(troubled.errors) == known.errors(TROUBLED)
    for cid, comp in troubled.components.items():
        assert rows(comp.errors) == known.errors(TROUBLED, cid)
    sink = troubled.components["sink"]
    # three errors in one second: task 11's, then task 13's own newest first (B before A)
    assert [e.error for e in sink.errors[:3]] == ["dead task's error", "timeout B", "timeout A"]
    assert sink.last_error.error == "dead task's error"
    assert sink.errors[-1].error == HOSTILE_ERROR
    assert (sink.errors[-1].host, sink.errors[-1].port) == ("host-gone.example", 6700)
    src = troubled.components["src"]
    assert src.errors[-1].error == MULTILINE_ERROR  # whole, line breaks kept
    assert troubled.components["mystery"].last_error is None
    # a task keeps its own errors oldest first
    assert [e.error for e in troubled.tasks[13].errors] == ["timeout A", "timeout B"]
    assert troubled.tasks[13].last_error.error == "timeout B"

    assert rows(view.recent_errors) == known.errors()[:50]
    assert len(view.recent_errors) == 7


def test_supervisors_lost_stale_and_slots(built):
    known, view, now = built
    sups = view.supervisors
    assert list(sups) == ["sup-a", "sup-b", "sup-gone", "sup-stale"]
    a = sups["sup-a"]
    assert (a.host, a.lost, a.present, a.uptime_secs) == ("host-a.example", False, True, 1000)
    assert a.slots_total == 4
    assert a.slots_used == len({k.port for k in known.tasks.values() if k.node == "sup-a"}) == 2
    assert sups["sup-b"].slots_used == 4
    gone = sups["sup-gone"]
    assert (gone.lost, gone.present, gone.host, gone.slots_total) == (
        True,
        False,
        "host-gone.example",
        0,
    )
    assert [(w.storm_id, w.port) for w in gone.workers] == [(TROUBLED, 6700)]
    stale = sups["sup-stale"]
    assert (stale.lost, stale.present, stale.slots_total, stale.workers) == (True, True, 2, ())
    assert now - known.supervisors["sup-stale"].time_secs > SUPERVISOR_TIMEOUT


def test_build_storm_view_is_the_cluster_views_storm(built):
    _, view, now = built
    reader = get_source().reader
    for storm_id, storm in view.storms.items():
        alone = build_storm_view(reader, storm_id, **_kwargs(now))
        assert alone == storm
    assert build_storm_view(reader, "no-such-storm", **_kwargs(now)) is None
    for hostile in ("..", "a/b", "", "x" * 300, "a\x00b"):
        assert build_storm_view(reader, hostile, **_kwargs(now)) is None


def test_a_view_built_reusing_storms_reads_only_the_others(built):
    _, view, now = built
    reader = get_source().reader
    first, *rest = sorted(view.storms)
    reuse = {storm_id: view.storms[storm_id] for storm_id in rest}
    again = build_cluster_view(reader, **_kwargs(now), reuse=reuse)
    assert all(again.storms[storm_id] is reuse[storm_id] for storm_id in rest)
    assert again.storms[first] is not view.storms[first]
    assert again == view  # the same figures: the cluster's own computed afresh
    # a storm no longer listed goes, even if offered for reuse
    gone = build_cluster_view(reader, **_kwargs(now), reuse={"gone-1-1": view.storms[first]})
    assert "gone-1-1" not in gone.storms and gone == view


def test_a_background_build_lets_news_pass_before_each_storm_it_reads(built):
    _, view, now = built
    reader = get_source().reader
    first, *rest = sorted(view.storms)
    checkpoints = []
    again = build_cluster_view(
        reader, **_kwargs(now), between=lambda: checkpoints.append(len(checkpoints))
    )
    assert again == view and len(checkpoints) == len(view.storms)
    # storms taken as they were are no work: no checkpoint for them
    checkpoints.clear()
    reuse = {storm_id: view.storms[storm_id] for storm_id in rest}
    build_cluster_view(reader, **_kwargs(now), reuse=reuse, between=lambda: checkpoints.append(1))
    assert checkpoints == [1]


def test_the_source_builds_in_the_background_letting_news_pass(built, monkeypatch):
    gate = precedence.Gate(max_wait=0.01)
    monkeypatch.setattr(precedence, "NEWS", gate)
    gate.begin()  # news held: each storm of a background build waits (at half pace)
    get_source()._build(background=True)
    assert gate.waits >= 1
    waits = gate.waits
    get_source()._build()  # a build someone waits for never does
    assert gate.waits == waits
    gate.end()


def test_a_closing_sources_background_build_stops_at_the_next_storm(built, monkeypatch):
    from stormui import source as source_module

    source = get_source()
    read = []
    real = source_module.cluster.build_cluster_view

    def build(reader, *, between, **kwargs):
        def counted():
            read.append(1)
            if len(read) == 2:
                source._closing.set()  # closed while the build is under way
            between()

        return real(reader, between=counted, **kwargs)

    monkeypatch.setattr(source_module.cluster, "build_cluster_view", build)
    try:
        with pytest.raises(source_module._Closed):
            source._build(background=True)
        assert len(read) == 2 < len(built[1].storms)
    finally:
        source._closing.clear()


@pytest.mark.parametrize("stormui_mirror", [True], ids=["mirror"])  # (views are the mirror's)
def test_a_connection_flip_rebuilds_the_cluster_figures_not_every_storm(built, stormui_mirror):
    """A follower connected again to a new leader's copy with nothing missed, or a mirror
    resynced after a lost connection (which tells what differs storm by storm), keeps the
    storms' views: at 20,000 tasks a whole build held every page's snapshot up by seconds."""
    from clusterstate.mirror import MirrorChange

    source = get_source()
    before = source.cluster_view()
    version = source.mirror.version
    source._on_change(MirrorChange("connection", version=version + 1))
    again = source._build(base=source._built)[0]
    assert again is not before
    assert all(again.storms[s] is before.storms[s] for s in before.storms)
    # a change that every storm's figures depend on is still built afresh
    source._on_change(MirrorChange("tasks", version=version + 2))
    whole = source._build(base=source._built)[0]
    assert all(whole.storms[s] is not again.storms[s] for s in again.storms)


def test_liveness_moves_with_now(built):
    known, _, now = built
    later = build_cluster_view(get_source().reader, **_kwargs(now + TASK_TIMEOUT))
    assert later.tasks_alive == known.tasks_alive(now + TASK_TIMEOUT)
    assert later.tasks_alive < known.tasks_alive(now)
    assert later.storms[HEALTHY].uptime_secs == now + TASK_TIMEOUT - known.storms[HEALTHY]["launch"]
    # errors_last_10m counts from the new now
    far = build_cluster_view(get_source().reader, **_kwargs(now + 560))
    assert far.errors_last_10m == sum(1 for e in known.errors() if e[0] >= now - 40) == 1
    assert far.slots_total == 0  # every supervisor's time_secs is now stale


def test_select_errors(built):
    known, view, now = built
    rows = lambda errors: [(e.time_secs, e.task_id, e.error, e.storm_id) for e in errors]  # noqa: E731
    assert rows(select_errors(view)) == known.errors()
    assert rows(select_errors(view, storm=HEALTHY)) == known.errors(HEALTHY)
    assert rows(select_errors(view, storm=TROUBLED, component="sink")) == known.errors(
        TROUBLED, "sink"
    )
    since = now - 100
    assert rows(select_errors(view, since=since)) == [e for e in known.errors() if e[0] >= since]
    assert rows(select_errors(view, limit=2)) == known.errors()[:2]
    assert [e.error for e in select_errors(view, text="TIMEOUT")] == ["timeout B", "timeout A"]
    assert select_errors(view, storm="nope") == []


def test_parse_window():
    assert parse_window(None) == "all-time"
    assert parse_window(":all-time") == "all-time"
    assert [parse_window(w) for w in WINDOWS] == list(WINDOWS)
    for bad in ("5", "all", "600 ", "-1"):
        with pytest.raises(ValueError):
            parse_window(bad)
        assert page_window(bad) == "all-time"  # a page shows its default instead
    assert page_window("10800") == "10800" and page_window(":all-time") == "all-time"


def test_unreadable_assignment_and_supervisor(zk_conf):
    """A garbage /assignments node and a garbage supervisor node are marked, never raised."""
    state = mk_distributed_cluster_state(zk_conf)
    storm_state = mk_storm_cluster_state(state)
    try:
        now = int(time.time())
        storm_state.activate_storm("s-1", StormBase("s", now - 10))
        storm_state.set_task("s-1", 1, TaskInfo("c", "bolt"))
        state.set_data("/assignments/s-1", b'{"master_code_dir": 5}')
        state.set_ephemeral_node("/supervisors/sup-x", b"[]")
        view = build_cluster_view(storm_state, **_kwargs(now))
        storm = view.storms["s-1"]
        assert storm.unreadable and storm.unreadable_paths == ("/assignments/s-1",)
        assert (storm.status, storm.name, storm.uptime_secs) == ("ACTIVE", "s", 10)
        assert storm.tasks_total == 1 and storm.workers == ()  # tasks from /tasks
        sup = view.supervisors["sup-x"]
        assert sup.unreadable and sup.present and not sup.lost and sup.host is None
        assert view.slots_total == 0 and view.supervisors_present == 1
    finally:
        storm_state.disconnect()
        state.close()
        cleaner = mk_distributed_cluster_state({**zk_conf, "storm.zookeeper.root": "/"})
        cleaner.delete_node(zk_conf["storm.zookeeper.root"])
        cleaner.close()


@pytest.mark.slow
def test_twenty_thousand_tasks_rebuild_from_cached_sums(monkeypatch):
    """The mirror serves ~20,000 tasks; a rebuild sums again only the tasks that beat since
    the last build (how fast pages answer at this size: ``bench/page_latency.py``)."""
    from clusterstate.mirror import ClusterMirror
    from stormui import cluster

    store = MemoryStore()
    state = mk_memory_cluster_state(store, "/storm")
    writer = mk_storm_cluster_state(state)
    now = int(time.time())
    per_storm = 1000
    # encoded once and written raw: the writes, not the build, would dominate the test's time
    spout_beats = [encode(TaskHeartbeat(now, 10, spout_stats(i + 1))) for i in range(7)]
    bolt_beats = [encode(TaskHeartbeat(now, 10, bolt_stats(i + 1))) for i in range(5)]
    infos = {c: encode(TaskInfo(c)) for c in ["spout"] + [f"bolt{i}" for i in range(5)]}
    for s in range(20):
        storm_id = f"wordcount-{s}-1700000000"
        writer.activate_storm(storm_id, StormBase(f"wordcount-{s}", now - 100))
        tnp = {}
        for t in range(per_storm):
            spout = t < 100
            state.set_data(task_path(storm_id, t), infos["spout" if spout else f"bolt{t % 5}"])
            beat = spout_beats[t % 7] if spout else bolt_beats[t % 5]
            state.set_ephemeral_node(taskbeat_path(storm_id, t), beat)
            tnp[t] = [f"n{t % 50}", 6700 + t % 4]
        hosts = {f"n{i}": f"h{i}" for i in range(50)}
        writer.set_assignment(storm_id, Assignment("x", hosts, tnp, dict.fromkeys(tnp, now)))
        for t in range(0, per_storm, 50):
            writer.report_task_error(storm_id, t, "boom")
    mirror = ClusterMirror(mk_memory_cluster_state(store, "/storm"), heartbeat_secs=60)
    mirror.start(wait=120)
    try:
        summed = []
        sums = cluster._stats_sums

        def counted(stats):
            summed.append(stats)
            return sums(stats)

        monkeypatch.setattr(cluster, "_stats_sums", counted)
        build_cluster_view(mirror, **_kwargs(now))  # fills the sums cache
        assert len(summed) == 20_000
        summed.clear()
        view = build_cluster_view(mirror, **_kwargs(now))
        assert summed == []  # no task beat: every task's sums came from the cache
        assert view.tasks_total == view.tasks_alive == 20_000
        assert view.slots_used == len({(t % 50, t % 4) for t in range(per_storm)})
        assert view.errors_last_10m == 400
        spouts = [spout_stats(t % 7 + 1) for t in range(100)]
        expected = expected_window(spouts, "600")["acked"]
        assert view.storms["wordcount-3-1700000000"].window_stats["600"].acked == expected

        # a task joins: only its sums are worked out, every other task's come from the cache
        storm_id, new_task = "wordcount-3-1700000000", per_storm
        state.set_data(task_path(storm_id, new_task), infos["spout"])
        writer.set_task_heartbeat(storm_id, new_task, TaskHeartbeat(now, 10, spout_stats(9)))
        tnp = {t: [f"n{t % 50}", 6700 + t % 4] for t in range(per_storm + 1)}
        writer.set_assignment(storm_id, Assignment("x", hosts, tnp, dict.fromkeys(tnp, now)))
        wait_for(
            lambda: (
                mirror.task_heartbeat(storm_id, new_task) is not None
                and mirror.task_info(storm_id, new_task) is not None
                and len(mirror.assignment_info(storm_id).task_node_port) == per_storm + 1
            ),
            timeout=60,
        )
        summed.clear()
        view = build_cluster_view(mirror, **_kwargs(now))
        assert summed == [spout_stats(9)]
        assert view.tasks_total == view.tasks_alive == 20_001
        expected = expected_window([*spouts, spout_stats(9)], "600")["acked"]
        assert view.storms[storm_id].window_stats["600"].acked == expected
    finally:
        mirror.stop()


# -- the derivation alone, from hand-built records ------------------------------------


def _windows(value) -> dict:
    return {w: value for w in WINDOWS}


def _spout(emitted, transferred, acked, failed, latency) -> dict:
    return {
        "type": "spout",
        "emitted": _windows({"default": emitted}),
        "transferred": _windows({"default": transferred}),
        "acked": _windows({"default": acked}),
        "failed": _windows({"default": failed}),
        "complete_latencies": _windows({"default": latency}),
    }


def _bolt(emitted, acked, failed, latency) -> dict:
    return {
        "type": "bolt",
        "emitted": _windows({"default": emitted}),
        "transferred": _windows({"default": emitted}),
        "acked": _windows({"spout": {"default": acked}}),
        "failed": _windows({"spout": {"default": failed}}),
        "process_latencies": _windows({"spout": {"default": latency}}),
    }


def test_derive_storm_from_records_alone():
    records = StormRecords(
        storm_id="s1",
        base=StormBase(storm_name="word count", launch_time_secs=1000),
        assignment=Assignment(
            master_code_dir="/code/s1",
            node_host={"n1": "h1"},
            task_node_port={1: ("n1", 6700), 2: ("n1", 6701), 3: ("n1", 6700)},
            task_start_time_secs={1: 1000, 2: 1000, 3: 1001},
        ),
        tasks=(
            TaskRecords(
                1,
                TaskInfo("spout", "spout"),
                TaskHeartbeat(1990, 990, _spout(10, 8, 6, 1, 5.0)),
                (),
            ),
            TaskRecords(
                2,
                TaskInfo("spout", "spout"),
                TaskHeartbeat(1995, 995, _spout(20, 20, 2, 0, 11.0)),
                (),
            ),
            TaskRecords(
                3,
                TaskInfo("count"),  # no type: its stats tell
                TaskHeartbeat(1900, 899, _bolt(4, 3, 1, 2.0)),  # 100 s old: dead
                (TaskError("first", 1940), TaskError("boom", 1950)),
            ),
            TaskRecords(4, None, None, (), ("/tasks/s1/4",)),
        ),
    )

    storm = derive_storm(records, now=2000, task_timeout=30)

    assert (storm.name, storm.status, storm.uptime_secs) == ("word count", "ACTIVE", 1000)
    assert storm.master_code_dir == "/code/s1"
    assert (storm.tasks_total, storm.tasks_alive) == (4, 2)
    for w in WINDOWS:
        ws = storm.window_stats[w]
        # every task's emitted and transferred; acked, failed and latency of the spouts only
        assert (ws.emitted, ws.transferred, ws.acked, ws.failed) == (34, 32, 8, 1)
        assert ws.latency_ms == (5.0 * 6 + 11.0 * 2) / 8
    spout, count = storm.components["spout"], storm.components["count"]
    assert (spout.component_type, spout.task_ids, spout.tasks_alive) == ("spout", (1, 2), 2)
    assert (count.component_type, count.task_ids, count.tasks_alive) == ("bolt", (3,), 0)
    assert count.window_stats["600"].acked == 3 and count.window_stats["600"].latency_ms == 2.0
    assert [(w.node_id, w.port, w.task_ids) for w in storm.workers] == [
        ("n1", 6700, (1, 3)),
        ("n1", 6701, (2,)),
    ]
    assert [(e.error, e.task_id, e.component_id, e.host, e.port) for e in storm.errors] == [
        ("boom", 3, "count", "h1", 6700),
        ("first", 3, "count", "h1", 6700),
    ]
    assert storm.tasks[3].heartbeat_age_secs == 100 and not storm.tasks[3].alive
    assert storm.tasks[4].component_type == "unknown"
    assert storm.tasks[4].unreadable == ("/tasks/s1/4",)
    assert not storm.unreadable


def test_derive_storm_of_an_inactive_storm_without_tasks():
    records = StormRecords(
        storm_id="s2",
        base=None,
        assignment=None,
        tasks=(),
        unreadable=True,
        unreadable_paths=("/storms/s2",),
    )
    storm = derive_storm(records, now=2000, task_timeout=30)
    assert (storm.name, storm.status, storm.uptime_secs) == ("s2", "INACTIVE", None)
    assert storm.unreadable and storm.unreadable_paths == ("/storms/s2",)
    assert storm.window_stats["all-time"].emitted == 0
    assert storm.window_stats["all-time"].latency_ms is None
