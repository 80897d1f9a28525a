"""Storm UI's REST API and the error feed, over a known cluster in ZooKeeper.

Every number is checked against figures worked out in ``conftest.py`` from
what was written, never against the code under test.
"""

from __future__ import annotations

import time

import pytest
from django.contrib.auth import get_user_model
from django.urls import include, path

from clusterstate.records import WINDOWS
from stormui.source import get_source
from tests.stormui.conftest import (
    BROKEN,
    HEALTHY,
    HOSTILE_ERROR,
    MULTILINE_ERROR,
    PAUSED,
    TASK_TIMEOUT,
    TROUBLED,
    expected_window,
)

# the API as stormui.urls mounts it, without depending on the pages' URLconf
urlpatterns = [path("api/", include("stormui.urls.api"))]
pytestmark = pytest.mark.urls(__name__)

# Storm's names of the windows, in order, and ours
API_WINDOWS = ["600", "10800", "86400", ":all-time"]
assert [w.lstrip(":") for w in API_WINDOWS] == list(WINDOWS)

HOSTS = {"sup-a": "host-a.example", "sup-b": "host-b.example", "sup-gone": "host-gone.example"}


@pytest.fixture(params=[False, True], ids=["direct", "mirror"])
def stormui_mirror(request):
    return request.param


def get_json(client, url, status=200):
    response = client.get(url)
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    return response.json()


def view_time() -> int:
    """When the figures the next request shows were computed, at the earliest: with the
    mirror a request shows the last view built, which may predate the request, and views
    only ever get newer. Ages and liveness are as of then."""
    return int(get_source().cluster_view().as_of)


def assert_ints(obj, *keys):
    for key in keys:
        assert type(obj[key]) is int, (key, obj[key])


def test_cluster_summary(known_cluster, client):
    known = known_cluster
    before = view_time()
    data = get_json(client, "/api/v1/cluster/summary")
    assert data["supervisors"] == len(known.supervisors) == 3
    assert data["topologies"] == len(known.storms) == 4
    assert data["slotsTotal"] == known.slots_total
    assert data["slotsUsed"] == known.slots_used
    assert data["slotsFree"] == known.slots_total - known.slots_used
    assert data["tasksTotal"] == len(known.tasks)
    assert data["tasksAlive"] == known.tasks_alive(before)
    assert data["tasksDead"] == len(known.tasks) - known.tasks_alive(before)
    assert data["errorsLast10m"] == sum(1 for e in known.errors() if e[0] >= before - 600)
    assert data["zkConnected"] is True
    assert_ints(data, "supervisors", "topologies", "slotsTotal", "slotsUsed", "slotsFree")
    assert_ints(data, "tasksTotal", "tasksAlive", "errorsLast10m")


def test_supervisor_summary(known_cluster, client):
    known = known_cluster
    sups = {s["id"]: s for s in get_json(client, "/api/v1/supervisor/summary")["supervisors"]}
    assert set(sups) == {"sup-a", "sup-b", "sup-stale", known.lost_supervisor}
    for sid, info in known.supervisors.items():
        used = {t.port for t in known.tasks.values() if t.node == sid}
        assert sups[sid]["host"] == info.hostname
        assert sups[sid]["uptimeSeconds"] == info.uptime_secs
        assert sups[sid]["slotsTotal"] == len(info.worker_ports)
        assert sups[sid]["slotsUsed"] == len(used)
        assert_ints(sups[sid], "uptimeSeconds", "slotsTotal", "slotsUsed")
    assert sups["sup-a"]["lost"] is False
    assert sups["sup-stale"]["lost"] is True
    gone = sups[known.lost_supervisor]
    assert gone["lost"] is True and gone["host"] == "host-gone.example"
    assert (gone["slotsTotal"], gone["slotsUsed"], gone["uptimeSeconds"]) == (0, 1, None)


def test_topology_summary(known_cluster, client):
    known = known_cluster
    before = view_time()
    tops = {t["id"]: t for t in get_json(client, "/api/v1/topology/summary")["topologies"]}
    after = int(time.time()) + 1  # ages and uptimes are as of some time in between
    assert set(tops) == set(known.storms)
    for storm_id, storm in known.storms.items():
        top = tops[storm_id]
        assert top["tasksTotal"] == len(known.storm_tasks(storm_id))
        assert top["workersTotal"] == len(known.workers(storm_id))
        assert_ints(top, "tasksTotal", "workersTotal")
        if storm["active"]:
            assert (top["status"], top["name"]) == ("ACTIVE", storm["name"])
            assert before - storm["launch"] <= top["uptimeSeconds"] <= after - storm["launch"]
            assert_ints(top, "uptimeSeconds")
        else:
            assert (top["status"], top["name"], top["uptimeSeconds"]) == (
                "INACTIVE",
                storm_id,
                None,
            )
    assert tops[BROKEN]["unreadable"] is True
    assert all("unreadable" not in tops[s] for s in (HEALTHY, TROUBLED, PAUSED))


def _expected_storm_window(known, storm_id, window):
    stats = [t.beat.stats for t in known.storm_tasks(storm_id) if t.beat and t.beat.stats]
    counts = expected_window(stats, window, counts_only=True)
    spouts = expected_window([s for s in stats if s["type"] == "spout"], window)
    return {**spouts, "emitted": counts["emitted"], "transferred": counts["transferred"]}


def _assert_stats(row, expected, latency_key):
    for key in ("emitted", "transferred", "acked", "failed"):
        assert row[key] == expected[key], key
        assert type(row[key]) is int
    assert row[latency_key] == f"{expected['latency'] or 0.0:.3f}"


def test_topology_detail(known_cluster, client):
    for window in (*WINDOWS, ":all-time", None):
        check_topology_detail(known_cluster, client, window)


def check_topology_detail(known, client, window):
    url = f"/api/v1/topology/{TROUBLED}" + (f"?window={window}" if window else "")
    before = view_time()
    data = get_json(client, url)
    after = int(time.time()) + 1  # ages are as of some time in between
    chosen = "all-time" if window in (None, ":all-time") else window
    assert data["window"] == (":all-time" if chosen == "all-time" else chosen)
    assert (data["id"], data["name"], data["status"]) == (TROUBLED, "troubled", "ACTIVE")
    assert data["tasksTotal"] == 6 == len(known.storm_tasks(TROUBLED))
    assert data["workersTotal"] == len(known.workers(TROUBLED))

    assert [row["window"] for row in data["topologyStats"]] == API_WINDOWS
    assert [row["windowPretty"] for row in data["topologyStats"]] == [
        "10m 0s",
        "3h 0m 0s",
        "1d 0h 0m 0s",
        "All time",
    ]
    for row in data["topologyStats"]:
        window_name = row["window"].lstrip(":")
        _assert_stats(row, _expected_storm_window(known, TROUBLED, window_name), "completeLatency")

    spouts = {s["spoutId"]: s for s in data["spouts"]}
    bolts = {b["boltId"]: b for b in data["bolts"]}
    assert set(spouts) == {"src"} and set(bolts) == {"sink", "mystery"}
    for cid, row in [*spouts.items(), *bolts.items()]:
        tasks = known.component_tasks(TROUBLED, cid)
        assert row["tasks"] == len(tasks)
        stats = [t.beat.stats for t in tasks if t.beat and t.beat.stats]
        key = "completeLatency" if cid in spouts else "processLatency"
        _assert_stats(row, expected_window(stats, chosen), key)
        errors = known.errors(TROUBLED, cid)
        if errors:
            newest_time, task_id, text, _ = errors[0]
            task = known.tasks[(TROUBLED, task_id)]
            assert row["lastError"] == text
            assert (row["errorHost"], row["errorPort"]) == (HOSTS[task.node], task.port)
            assert before - newest_time <= row["errorLapsedSecs"] <= after - newest_time
            assert row["errorTime"] == newest_time and type(row["errorTime"]) is int
        else:
            assert row["lastError"] == "" and row["errorLapsedSecs"] is None
            assert row["errorTime"] is None
        assert row["errorWorkerLogLink"] is None  # STORMUI_LOGVIEWER_URL unset
        assert row["executors"] == row["tasks"]
        encoded = row["encodedSpoutId"] if cid in spouts else row["encodedBoltId"]
        assert encoded == cid
    assert bolts["mystery"]["componentType"] == "unknown"
    assert bolts["sink"]["lastError"] == "dead task's error"
    assert spouts["src"]["lastError"] == "spout error, newest"

    workers = {(w["supervisorId"], w["port"]): w for w in data["workers"]}
    assert set(workers) == known.workers(TROUBLED)
    for (node, port), w in workers.items():
        ids = [t.task_id for t in known.storm_tasks(TROUBLED) if (t.node, t.port) == (node, port)]
        assert w["taskIds"] == ids and w["tasks"] == len(ids)
        assert type(w["port"]) is int
        assert (w["topologyId"], w["topologyName"]) == (TROUBLED, "troubled")
        counts = {}
        for t in known.storm_tasks(TROUBLED):
            if (t.node, t.port) == (node, port) and t.component_id is not None:
                counts[t.component_id] = counts.get(t.component_id, 0) + 1
        assert w["componentNumTasks"] == counts
        assert w["workerLogLink"] is None
    assert workers[("sup-gone", 6700)]["host"] == "host-gone.example"


def test_healthy_topology_stats_move_with_window(known_cluster, client):
    short = get_json(client, f"/api/v1/topology/{HEALTHY}?window=600")
    long = get_json(client, f"/api/v1/topology/{HEALTHY}?window=86400")
    expected = _expected_storm_window(known_cluster, HEALTHY, "86400")
    assert long["spouts"][0]["acked"] == expected["acked"]
    assert short["spouts"][0]["acked"] < long["spouts"][0]["acked"]
    assert [b["boltId"] for b in short["bolts"]] == ["count"]
    assert short["workersTotal"] == 2


def test_component_detail(known_cluster, client):
    known = known_cluster
    before = view_time()
    data = get_json(client, f"/api/v1/topology/{TROUBLED}/component/sink?window=10800")
    after = int(time.time()) + 1  # ages are as of some time in between
    assert (data["id"], data["topologyId"], data["componentType"]) == ("sink", TROUBLED, "bolt")
    tasks = known.component_tasks(TROUBLED, "sink")
    assert data["tasks"] == len(tasks) == 3
    stats = [t.beat.stats for t in tasks if t.beat and t.beat.stats]
    _assert_stats(data, expected_window(stats, "10800"), "processLatency")
    assert [r["window"] for r in data["boltStats"]] == API_WINDOWS
    for row in data["boltStats"]:
        _assert_stats(row, expected_window(stats, row["window"].lstrip(":")), "processLatency")
        assert row["executeLatency"] is None and row["executed"] is None
    assert (data["executors"], data["topologyStatus"]) == (3, "ACTIVE")
    assert data["encodedTopologyId"] == TROUBLED
    executors = data["executorStats"]
    assert [e["id"] for e in executors] == [f"[{t.task_id}-{t.task_id}]" for t in tasks]
    assert [e["taskId"] for e in executors] == [t.task_id for t in tasks]

    rows = {r["id"]: r for r in data["taskStats"]}
    assert list(rows) == [t.task_id for t in tasks]
    for task in tasks:
        row = rows[task.task_id]
        assert row["alive"] is task.alive(before)
        assert (row["host"], row["port"]) == (HOSTS[task.node], task.port)
        if task.beat is None:
            assert row["heartbeatAgeSecs"] is None and row["uptimeSeconds"] is None
            _assert_stats(row, expected_window([], "10800"), "processLatency")
        else:
            assert (
                before - task.beat.time_secs
                <= row["heartbeatAgeSecs"]
                <= after - task.beat.time_secs
            )
            assert row["uptimeSeconds"] == task.beat.uptime_secs
            _assert_stats(row, expected_window([task.beat.stats], "10800"), "processLatency")
    assert [rows[t]["alive"] for t in (11, 12, 13)] == [False, False, True]
    assert rows[12]["heartbeatAgeSecs"] > TASK_TIMEOUT

    errors = data["componentErrors"]
    expected = known.errors(TROUBLED, "sink")
    assert [(e["taskId"], e["error"]) for e in errors] == [(r[1], r[2]) for r in expected]
    assert [e["error"] for e in errors] == [
        "dead task's error",
        "timeout B",
        "timeout A",
        HOSTILE_ERROR,
    ]
    for e, (time_secs, task_id, _, _) in zip(errors, expected, strict=True):
        assert type(e["taskId"]) is int and type(e["errorPort"]) is int
        assert e["errorTime"] == e["time"] == time_secs * 1000
        assert e["errorWorkerLogLink"] is None
        assert before - time_secs <= e["errorLapsedSecs"] <= after - time_secs
        assert e["errorPort"] == known.tasks[(TROUBLED, task_id)].port


def test_spout_component_with_full_multiline_error(known_cluster, client):
    data = get_json(client, f"/api/v1/topology/{TROUBLED}/component/src")
    assert data["componentType"] == "spout" and data["window"] == ":all-time"
    assert "spoutSummary" in data and "completeLatency" in data
    assert [e["error"] for e in data["componentErrors"]] == [
        "spout error, newest",
        MULTILINE_ERROR,
    ]
    assert len(data["componentErrors"][1]["error"]) == len(MULTILINE_ERROR)


def test_error_feed(known_cluster, client):
    known = known_cluster

    def rows(data):
        return [(e["time_secs"], e["task_id"], e["error"], e["storm_id"]) for e in data["errors"]]

    everything = get_json(client, "/api/errors")
    assert rows(everything) == known.errors()
    first = everything["errors"][0]
    assert first == {
        "type": "error",
        "storm_id": TROUBLED,
        "task_id": 10,
        "component_id": "src",
        "time_secs": known.errors()[0][0],
        "error": "spout error, newest",
        "host": "host-a.example",
        "port": 6702,
    }
    assert rows(get_json(client, f"/api/errors?storm={HEALTHY}")) == known.errors(HEALTHY)
    assert rows(get_json(client, f"/api/errors?storm={TROUBLED}&component=sink")) == known.errors(
        TROUBLED, "sink"
    )
    since = known.written_at - 100
    assert rows(get_json(client, f"/api/errors?since={since}")) == [
        r for r in known.errors() if r[0] >= since
    ]
    assert rows(get_json(client, "/api/errors?limit=2")) == known.errors()[:2]
    assert get_json(client, "/api/errors?storm=unknown-storm") == {"errors": []}
    hostile = [e for e in everything["errors"] if e["task_id"] == 12]
    assert [e["error"] for e in hostile] == [HOSTILE_ERROR]  # exactly as written
    full = [e for e in everything["errors"] if e["time_secs"] == known.written_at - 1000]
    assert [e["error"] for e in full] == [MULTILINE_ERROR]


BAD_FEED_QUERIES = [
    "limit=0",
    "limit=1001",
    "limit=x",
    "limit=-1",
    "since=abc",
    "since=-5",
    "storm=..",
    "storm=a%2Fb",
]


def test_error_feed_bad_params(known_cluster, client):
    for query in BAD_FEED_QUERIES:
        data = get_json(client, f"/api/errors?{query}", status=400)
        assert set(data) == {"error"}, query


NOT_FOUND_URLS = [
    "/api/v1/topology/no-such-storm",
    "/api/v1/topology/..",
    "/api/v1/topology/.",
    "/api/v1/topology/%2F",
    "/api/v1/topology/a%2Fb",
    "/api/v1/topology/" + "x" * 300,
    "/api/v1/topology/%00",
    "/api/v1/topology/a%00b",
    f"/api/v1/topology/{HEALTHY}/component/no-such",
    f"/api/v1/topology/{HEALTHY}/component/..",
    f"/api/v1/topology/{HEALTHY}/component/a%2Fb",
    f"/api/v1/topology/{HEALTHY}/component/%0a",
    "/api/v1/topology/..%2F..%2Fetc/component/x",
    "/api/v1/nothing-here",
    "/api/v1/cluster/summary/",
]


def test_unknown_or_hostile_ids_are_json_404s(known_cluster, client):
    for url in NOT_FOUND_URLS:
        data = get_json(client, url, status=404)
        assert set(data) == {"error"}, url


def test_bad_window_is_400(known_cluster, client):
    for window in ("5", "all", "600s", "-1", "%00"):
        data = get_json(client, f"/api/v1/topology/{HEALTHY}?window={window}", status=400)
        assert "window" in data["error"]
        data = get_json(client, f"/api/v1/topology/{HEALTHY}/component/words?window={window}", 400)
        assert "window" in data["error"]
    # an empty window is the default, not an error
    assert get_json(client, f"/api/v1/topology/{HEALTHY}?window=")["window"] == ":all-time"


def test_unreadable_storm_answers_200(known_cluster, client):
    data = get_json(client, f"/api/v1/topology/{BROKEN}")
    assert data["unreadable"] is True
    assert (data["name"], data["status"], data["uptimeSeconds"]) == (BROKEN, "INACTIVE", None)
    assert data["tasksTotal"] == 1 and data["workersTotal"] == 1


def test_inactive_storm_detail(known_cluster, client):
    data = get_json(client, f"/api/v1/topology/{PAUSED}")
    assert (data["status"], data["uptimeSeconds"], data["name"]) == ("INACTIVE", None, PAUSED)
    assert [b["boltId"] for b in data["bolts"]] == ["only"] and data["spouts"] == []


def test_only_get(known_cluster, client):
    response = client.post("/api/v1/cluster/summary")
    assert response.status_code == 405
    assert response["Content-Type"] == "application/json" and "error" in response.json()


@pytest.mark.django_db
def test_login_required_is_401_json_not_a_redirect(known_cluster, client, settings):
    settings.STORMUI_LOGIN_REQUIRED = True
    for url in ("/api/v1/cluster/summary", f"/api/v1/topology/{HEALTHY}", "/api/errors"):
        response = client.get(url)
        assert response.status_code == 401
        assert response["Content-Type"] == "application/json"
        assert "error" in response.json()
    user = get_user_model().objects.create_user("reader", password="pw-for-tests-only")
    client.force_login(user)
    data = get_json(client, "/api/v1/cluster/summary")
    assert data["tasksTotal"] == len(known_cluster.tasks)


def test_cluster_summary_storm_fields(known_cluster, client):
    data = get_json(client, "/api/v1/cluster/summary")
    assert isinstance(data["stormVersion"], str) and "0.5" in data["stormVersion"]
    assert data["nimbusUptime"] is None  # the 0.5 layout has no record of Nimbus
    assert data["executorsTotal"] == data["tasksTotal"] == len(known_cluster.tasks)
    tops = get_json(client, "/api/v1/topology/summary")["topologies"]
    assert all(t["executorsTotal"] == t["tasksTotal"] for t in tops)


def test_spout_output_stats_per_stream(known_cluster, client):
    # words: tasks 1 and 2 (spout_stats seeds 1 and 2); all time is the 4th window (k = 4)
    data = get_json(client, f"/api/v1/topology/{HEALTHY}/component/words")
    assert "inputStats" not in data
    rows = {r["stream"]: r for r in data["outputStats"]}
    assert list(rows) == ["default", "other"]  # __ack_init is a system stream: sys=true
    assert rows["default"] == {
        "stream": "default",
        "emitted": 400 + 800,
        "transferred": 360 + 720,
        "acked": 320 + 640,
        "failed": 4 + 8,
        "completeLatency": f"{(14.0 * 320 + 24.0 * 640) / 960:.3f}",  # weighted by acked
    }
    assert rows["other"] == {
        "stream": "other",
        "emitted": 0,
        "transferred": 0,
        "acked": 20 + 20,
        "failed": 0,
        "completeLatency": "3.500",
    }
    everything = get_json(client, f"/api/v1/topology/{HEALTHY}/component/words?sys=true")
    system = [r for r in everything["outputStats"] if r["stream"] == "__ack_init"]
    assert system == [
        {
            "stream": "__ack_init",
            "emitted": 28 + 56,
            "transferred": 28 + 56,
            "acked": 0,
            "failed": 0,
            "completeLatency": "0.000",
        }
    ]


def test_bolt_input_and_output_stats_per_stream(known_cluster, client):
    # count: tasks 3, 4, 5 (bolt_stats seeds 1, 2, 3; task 5 also reads "other"); 600 (k = 1)
    data = get_json(client, f"/api/v1/topology/{HEALTHY}/component/count?window=600")
    assert data["window"] == "600"
    assert data["outputStats"] == [{"stream": "default", "emitted": 240, "transferred": 180}]
    other, words = data["inputStats"]  # by (component, stream)
    assert words == {
        "component": "words",
        "encodedComponent": "words",
        "stream": "default",
        "processLatency": f"{(2.5 * 20 + 4.0 * 40 + 5.5 * 60) / 120:.3f}",
        "acked": 20 + 40 + 60,
        "failed": 1 + 2 + 3,
        "executeLatency": None,
        "executed": None,
    }
    assert (other["component"], other["stream"], other["acked"], other["failed"]) == (
        "other",
        "default",
        61,
        4,
    )
    assert other["processLatency"] == "6.500"


def test_troubled_bolt_input_stats_by_window(known_cluster, client):
    # sink: task 11 has no heartbeat, 12 reads words (seed 4), 13 reads src (seed 6); k = 2
    data = get_json(client, f"/api/v1/topology/{TROUBLED}/component/sink?window=10800")
    assert [
        (r["component"], r["acked"], r["failed"], r["processLatency"]) for r in data["inputStats"]
    ] == [("src", 240, 6, "11.000"), ("words", 160, 4, "8.000")]
    assert data["outputStats"] == [{"stream": "default", "emitted": 800, "transferred": 600}]


def test_topology_workers(known_cluster, client):
    data = get_json(client, f"/api/v1/topology-workers/{TROUBLED}")
    pairs = {(w["host"], w["port"]) for w in data["hostPortList"]}
    assert pairs == {(HOSTS[n], p) for n, p in known_cluster.workers(TROUBLED)}
    get_json(client, "/api/v1/topology-workers/no-such-storm", status=404)


def test_supervisor_by_id_or_host(known_cluster, client):
    by_id = get_json(client, "/api/v1/supervisor?id=sup-b")
    by_host = get_json(client, "/api/v1/supervisor?host=host-b.example")
    assert by_id == by_host
    assert (by_id["id"], by_id["host"]) == ("sup-b", "host-b.example")
    on_b = {(t.storm_id, t.port) for t in known_cluster.tasks.values() if t.node == "sup-b"}
    assert {(w["topologyId"], w["port"]) for w in by_id["workers"]} == on_b
    for w in by_id["workers"]:
        assert w["supervisorId"] == "sup-b" and type(w["port"]) is int
    get_json(client, "/api/v1/supervisor?id=nobody", status=404)
    get_json(client, "/api/v1/supervisor", status=400)


def test_log_links_from_the_logviewer_setting(known_cluster, client, settings):
    settings.STORMUI_LOGVIEWER_URL = "http://{host}:8000/log?file=worker-{port}.log&t={task_id}"
    data = get_json(client, f"/api/v1/topology/{TROUBLED}")
    workers = {w["port"]: w for w in data["workers"] if w["supervisorId"] == "sup-b"}
    assert workers[6701]["workerLogLink"] == (
        "http://host-b.example:8000/log?file=worker-6701.log&t="
    )
    sink = next(b for b in data["bolts"] if b["boltId"] == "sink")
    assert sink["errorWorkerLogLink"] == (
        "http://host-gone.example:8000/log?file=worker-6700.log&t=11"
    )
    comp = get_json(client, f"/api/v1/topology/{TROUBLED}/component/sink")
    links = {e["taskId"]: e["workerLogLink"] for e in comp["executorStats"]}
    assert links[13] == "http://host-b.example:8000/log?file=worker-6701.log&t=13"
    assert comp["componentErrors"][0]["errorWorkerLogLink"] == sink["errorWorkerLogLink"]
