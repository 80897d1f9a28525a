"""The timeline (stormui.history.timeline) against a real ZooKeeper and a real database: each
kind from a real change, admin actions naming their user once, restart counts, a restart
telling the gap and nothing twice, the API, the pages, and the live page."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from django.contrib.auth.models import User
from django.db import DatabaseError, connection
from django.test import Client

from clusterstate import Assignment, StormBase, SupervisorInfo, TaskHeartbeat, TaskInfo
from stormui import actions, live
from stormui.history import recorder as rec
from stormui.history import timeline
from stormui.history.recorder import HistoryRecorder
from stormui.models import (
    RecorderRun,
    SeenStormBase,
    TimelineEvent,
    TimelineMark,
    Via,
)
from stormui.source import get_source
from tests.helpers import expire_session, wait_for
from tests.stormui.conftest import HEALTHY, PAUSED, TASK_TIMEOUT, TROUBLED, spout_stats

pytestmark = pytest.mark.django_db

WAIT = 30
HOSTILE = "<script>alert(1)</script>&\"'"


class Recording:
    """A recorder of the timeline alone, driven by hand (one ``record()`` is one pass)."""

    def __init__(self):
        self.source = get_source()
        self.part = timeline.Part(self.source)
        self.recorder = HistoryRecorder(self.source, [self.part])
        self.recorder._unsubscribe = self.source.subscribe(self.recorder._on_change)

    def start(self) -> Recording:
        assert self.recorder.record()  # the run starts
        assert self.recorder.record()  # the cluster as the mirror holds it: the baseline
        assert self.part._baselined
        return self

    def until(self, predicate, message: str = ""):
        return wait_for(
            lambda: self.recorder.record() and predicate(), timeout=WAIT, message=message
        )

    def close(self) -> None:  # killed: it never says it stopped
        self.recorder._unsubscribe()


@pytest.fixture
def recording(known_cluster):
    recording = Recording().start()
    yield recording
    recording.close()


def told(**filters) -> list[tuple]:
    rows = TimelineEvent.objects.filter(**filters).order_by("time", "id")
    return list(rows.values_list("kind", "storm_id", "task_id", "supervisor_id", "user"))


def kinds(**filters) -> list[str]:
    return [row[0] for row in told(**filters)]


def has(kind: str, **filters) -> bool:
    return TimelineEvent.objects.filter(kind=kind, **filters).exists()


def assignment(storm_id: str, tasks=(1,)) -> Assignment:
    now = int(time.time())
    return Assignment(
        f"/nimbus/{storm_id}",
        {"sup-a": "host-a.example"},
        {t: ["sup-a", 6700] for t in tasks},
        {t: now for t in tasks},
    )


# -- from ZooKeeper's changes ------------------------------------------------------------------


def test_the_cold_load_sets_the_baseline_and_invents_nothing(recording, known_cluster):
    assert kinds() == ["dashboard-started"]
    marks = dict(TimelineMark.objects.filter(subject="storm").values_list("key", "state"))
    assert marks == {
        HEALTHY: "active",
        TROUBLED: "active",
        PAUSED: "inactive",
        "broken-4-4000": "active",
    }
    supervisors = TimelineMark.objects.filter(subject="supervisor")
    assert dict(supervisors.values_list("key", "state")) == {
        "sup-a": "up",
        "sup-b": "up",
        "sup-stale": "lost",
    }
    alive = {f"{s}/{t}" for (s, t), task in known_cluster.tasks.items() if task.alive(time.time())}
    assert set(TimelineMark.objects.filter(subject="task").values_list("key", flat=True)) == alive
    # passes with nothing new tell nothing
    recording.recorder.record()
    assert kinds() == ["dashboard-started"]


def test_each_storm_change_is_one_event(recording, writer):
    fresh = "fresh-9-9000"
    # as Storm submits: the assignment, then the /storms node; one submission
    writer.set_task(fresh, 1, TaskInfo("spout-x", "spout"))
    writer.set_assignment(fresh, assignment(fresh))
    writer.activate_storm(fresh, StormBase("fresh", int(time.time())))
    recording.until(lambda: get_source().reader.storm_base(fresh) is not None)
    recording.until(lambda: has("storm-submitted", storm_id=fresh))
    writer.deactivate_storm(fresh)
    recording.until(lambda: has("storm-deactivated", storm_id=fresh))
    writer.activate_storm(fresh, StormBase("fresh", int(time.time())))
    recording.until(lambda: has("storm-activated", storm_id=fresh))
    writer.deactivate_storm(fresh)
    recording.until(lambda: kinds(storm_id=fresh).count("storm-deactivated") == 2)
    writer.remove_storm(fresh)
    recording.until(lambda: has("storm-removed", storm_id=fresh))
    assert kinds(storm_id=fresh) == [
        "storm-submitted",
        "storm-deactivated",
        "storm-activated",
        "storm-deactivated",
        "storm-removed",
    ]
    assert not TimelineMark.objects.filter(key=fresh).exists()
    assert not TimelineMark.objects.filter(subject="task", key__startswith=f"{fresh}/").exists()


def test_supervisors_join_and_are_lost(recording, writer):
    now = int(time.time())
    writer.set_supervisor_heartbeat("sup-new", SupervisorInfo(now, "host-new", [6700], 10))
    recording.until(lambda: has("supervisor-joined", supervisor_id="sup-new"))
    writer.cluster_state.delete_node("/supervisors/sup-new")
    recording.until(lambda: has("supervisor-lost", supervisor_id="sup-new"))
    assert kinds(supervisor_id="sup-new") == ["supervisor-joined", "supervisor-lost"]


def test_a_task_dies_and_revives_and_is_counted(recording, writer):
    writer.remove_task_heartbeat(HEALTHY, 1)
    recording.until(lambda: has("task-died", storm_id=HEALTHY, task_id=1))
    died = TimelineEvent.objects.get(kind="task-died")
    assert died.component_id == "words" and died.detail == "no heartbeat"
    assert timeline.restart_counts(HEALTHY, rec.now_ms())["day"] == 0
    writer.set_task_heartbeat(HEALTHY, 1, TaskHeartbeat(int(time.time()), 5, spout_stats(1)))
    recording.until(lambda: has("task-revived", storm_id=HEALTHY, task_id=1))
    assert kinds(storm_id=HEALTHY) == ["task-died", "task-revived"]
    assert TimelineEvent.objects.get(kind="task-revived").detail == "restarted"  # uptime 5
    counts = timeline.restart_counts(HEALTHY, rec.now_ms())
    assert counts == {"hour": 1, "day": 1, "components": {"words": {"hour": 1, "day": 1}}}
    # a day later the hour has none, two days later the day has none
    later = timeline.restart_counts(HEALTHY, rec.now_ms() + 2 * timeline.HOUR_MS)
    assert (later["hour"], later["day"]) == (0, 1)
    assert timeline.restart_counts(HEALTHY, rec.now_ms() + 2 * timeline.DAY_MS)["day"] == 0
    # the storm's page and the component's show them
    client = Client()
    page = client.get(f"/storms/{HEALTHY}/").content.decode()
    assert '<span data-field="restarts-hour">1</span> in the last hour' in page
    assert "task-revived" in page and f"/timeline/?storm={HEALTHY}" in page
    page = client.get(f"/storms/{HEALTHY}/components/words/").content.decode()
    assert '<span data-field="restarts-day">1</span> in the last day' in page
    page = client.get(f"/storms/{HEALTHY}/components/count/").content.decode()
    assert '<span data-field="restarts-day">0</span> in the last day' in page


@pytest.fixture
def fast_heartbeats(settings):
    """The mirror re-reads heartbeat data often (asked for before the source starts)."""
    settings.STORMUI_HEARTBEAT_SECS = 0.2


def test_a_task_an_assignment_adds_is_followed(recording, writer):
    # its heartbeat first, then the assignment that names it (a rebalance)
    writer.set_task_heartbeat(PAUSED, 2, TaskHeartbeat(int(time.time()), 5, spout_stats(3)))
    recording.until(lambda: 2 in get_source().reader.heartbeat_tasks(PAUSED))
    writer.set_assignment(PAUSED, assignment(PAUSED, tasks=(1, 2)))
    key = f"{PAUSED}/2"
    recording.until(lambda: TimelineMark.objects.filter(subject="task", key=key).exists())
    writer.remove_task_heartbeat(PAUSED, 2)
    recording.until(lambda: has("task-died", storm_id=PAUSED, task_id=2))
    assert kinds(storm_id=PAUSED) == ["task-died"]


def test_tasks_die_by_the_clock_and_a_restart_within_the_timeout_counts(
    fast_heartbeats, recording, writer, monkeypatch
):
    ahead = (TASK_TIMEOUT + 5) * 1000
    real = rec.now_ms
    # task 2 restarted: its uptime starts again, its beat fresh at the clock the test sets
    beat = TaskHeartbeat(int(time.time()) + TASK_TIMEOUT + 5, 1, spout_stats(2))
    writer.set_task_heartbeat(HEALTHY, 2, beat)
    reader = get_source().reader
    wait_for(lambda: reader.task_heartbeat(HEALTHY, 2).uptime_secs == 1, timeout=WAIT)
    monkeypatch.setattr(rec, "now_ms", lambda: real() + ahead)
    recording.until(lambda: has("task-revived", storm_id=HEALTHY, task_id=2))
    recording.until(
        lambda: TimelineEvent.objects.filter(kind="task-died", storm_id=HEALTHY).count() == 4
    )
    died = TimelineEvent.objects.filter(kind="task-died", storm_id=HEALTHY)
    assert sorted(died.values_list("task_id", flat=True)) == [1, 3, 4, 5]
    assert {e.detail for e in died} == {"heartbeat too old"}
    revived = TimelineEvent.objects.get(kind="task-revived")
    assert "uptime" in revived.detail and revived.component_id == "words"
    assert timeline.restart_counts(HEALTHY, real() + ahead)["components"] == {
        "words": {"hour": 1, "day": 1}
    }


def test_an_overflowing_inbox_compares_the_whole_cluster_again(recording, writer, monkeypatch):
    monkeypatch.setattr(timeline, "INBOX_MAX", 0)  # every change overflows it
    writer.deactivate_storm(HEALTHY)
    recording.until(lambda: has("storm-deactivated", storm_id=HEALTHY))
    event = TimelineEvent.objects.get(kind="storm-deactivated")
    # found by comparing, not as it came: since the pass before
    assert event.after < event.time
    assert kinds() == ["dashboard-started", "storm-deactivated"]


def test_zookeeper_disconnects_and_reconnects_without_killing_tasks(recording):
    source = get_source()
    expire_session(source.state)
    recording.until(lambda: has("zookeeper-reconnected"), "no reconnection told")
    assert kinds() == ["dashboard-started", "zookeeper-disconnected", "zookeeper-reconnected"]


# -- admin actions -----------------------------------------------------------------------------


@pytest.fixture
def ada(settings):
    settings.STORMUI_READ_ONLY = False
    return User.objects.create_superuser("ada", password="correct horse battery staple")


def settled(recording, storm_id: str, state) -> None:
    """Until the mirror holds ``storm_id`` as ``state`` and a pass has looked at it."""
    part = recording.part
    recording.until(lambda: part._storm_state(storm_id) == state)
    recording.until(lambda: (part._storms.get(storm_id) or timeline._Storm(None)).state == state)
    recording.recorder.record()


def test_a_dashboard_action_is_one_event_naming_its_user(recording, ada):
    assert actions.perform(ada, "deactivate", HEALTHY, Via.API).ok
    settled(recording, HEALTHY, "inactive")
    recording.until(lambda: has("storm-deactivated", storm_id=HEALTHY, user="ada"))
    assert told(storm_id=HEALTHY) == [("storm-deactivated", HEALTHY, None, None, "ada")]
    event = TimelineEvent.objects.get(storm_id=HEALTHY)
    assert event.outcome == "success" and event.detail == "deactivate (api): success: deactivated"

    SeenStormBase.objects.create(
        storm_id=HEALTHY, base=json.dumps(StormBase("healthy", 1000).to_json())
    )
    assert actions.perform(ada, "activate", HEALTHY, Via.PAGE).ok
    settled(recording, HEALTHY, "active")
    recording.until(lambda: has("storm-activated", storm_id=HEALTHY, user="ada"))

    # a removal deactivates first: still one event
    assert actions.perform(ada, "remove", TROUBLED, Via.API).ok
    settled(recording, TROUBLED, None)
    recording.until(lambda: has("storm-removed", storm_id=TROUBLED, user="ada"))
    assert told(storm_id=TROUBLED) == [("storm-removed", TROUBLED, None, None, "ada")]
    assert told(storm_id=HEALTHY) == [
        ("storm-deactivated", HEALTHY, None, None, "ada"),
        ("storm-activated", HEALTHY, None, None, "ada"),
    ]


def test_refused_and_failed_actions_are_events_too(recording, ada):
    victor = User.objects.create_user("victor", password="correct horse battery staple")
    assert actions.perform(victor, "remove", HEALTHY, Via.API).outcome == "refused"
    assert actions.perform(ada, "activate", HEALTHY, Via.API).outcome == "refused"  # active
    assert actions.perform(ada, "remove", "no-such-storm", Via.API).outcome == "not-found"
    recording.until(lambda: TimelineEvent.objects.exclude(audit_id=None).count() == 3)
    rows = TimelineEvent.objects.exclude(audit_id=None).order_by("time", "id")
    assert [(e.kind, e.storm_id, e.user, e.outcome) for e in rows] == [
        ("action-remove", HEALTHY, "victor", "refused"),
        ("action-activate", HEALTHY, "ada", "refused"),
        ("action-remove", "no-such-storm", "ada", "not-found"),
    ]
    assert rows[0].detail.startswith("remove (api): refused: permission denied")
    assert rows[1].detail == "activate (api): refused: already active"


# -- a restart ---------------------------------------------------------------------------------


def test_a_restart_names_the_gap_and_tells_what_changed_once(known_cluster, writer, ada):
    first = Recording().start()
    first.close()  # killed
    run = RecorderRun.objects.get()
    # while no dashboard records: a dashboard action (another process), a supervisor joins
    assert actions.perform(ada, "deactivate", HEALTHY, Via.API).ok
    writer.set_supervisor_heartbeat("sup-late", SupervisorInfo(int(time.time()), "h", [1], 1))
    reader = get_source().reader
    wait_for(lambda: reader.storm_base(HEALTHY) is None and "sup-late" in reader.supervisors())

    second = Recording().start()
    second.close()
    run.refresh_from_db()
    assert run.stopped_at == run.alive_at
    assert told() == [
        ("dashboard-started", None, None, None, None),
        ("dashboard-stopped", None, None, None, None),
        ("storm-deactivated", HEALTHY, None, None, "ada"),
        ("dashboard-started", None, None, None, None),
        ("supervisor-joined", None, None, "sup-late", None),
    ]
    assert TimelineEvent.objects.get(kind="dashboard-stopped").time == run.alive_at
    # the change seen when recording started again: since the last run ended
    joined = TimelineEvent.objects.get(kind="supervisor-joined")
    assert joined.after == run.stopped_at and joined.time > joined.after

    # nothing changed meanwhile: a third run tells its gap and nothing else
    before = told()
    last = TimelineEvent.objects.latest("id").id
    third = Recording().start()
    third.recorder.record()
    third.close()
    assert told(id__lte=last) == before
    assert kinds(id__gt=last) == ["dashboard-stopped", "dashboard-started"]


def test_expire_deletes_what_is_past_the_cutoff(db):
    for t in (1000, 2000, 3000):
        TimelineEvent.objects.create(kind="dashboard-started", time=t, after=t)
    assert timeline.Part(None).expire(2500) == 2
    assert list(TimelineEvent.objects.values_list("time", flat=True)) == [3000]


# -- the API and the pages ---------------------------------------------------------------------


def make_events():
    rows = []
    for n in range(25):
        rows.append(
            TimelineEvent(
                kind="task-died" if n % 2 else "storm-activated",
                time=10_000 + n * 10,
                after=10_000 + n * 10,
                storm_id="a-1-1" if n % 3 else "b-2-2",
                task_id=n if n % 2 else None,
                detail=f"n{n}",
            )
        )
    TimelineEvent.objects.bulk_create(rows)


def get(client, query: str):
    response = client.get(f"/api/v1/timeline{query}")
    return response.status_code, response.json()


def test_the_api_answers_newest_first_filtered_and_paged(db):
    make_events()
    client = Client()
    status, body = get(client, "")
    assert status == 200 and set(body) == {"events", "next"} and body["next"] is None
    assert [e["time"] for e in body["events"]] == [10_000 + n * 10 for n in reversed(range(25))]
    assert body["events"][0] == {
        "time": 10_240,
        "kind": "storm-activated",
        "stormId": "b-2-2",
        "taskId": None,
        "supervisorId": None,
        "user": None,
        "detail": "n24",
    }
    _, body = get(client, "?storm=a-1-1&kind=task-died&since=10050&until=10150")
    assert [e["detail"] for e in body["events"]] == ["n13", "n11", "n7", "n5"]
    # a page at a time, through the cursor, everything once
    seen, cursor = [], ""
    while True:
        status, body = get(client, f"?limit=7{cursor}")
        assert status == 200 and len(body["events"]) <= 7
        seen += [e["detail"] for e in body["events"]]
        if body["next"] is None:
            break
        cursor = f"&cursor={body['next']}"
    assert seen == [f"n{n}" for n in reversed(range(25))]


@pytest.mark.parametrize(
    "query",
    [
        "?kind=nope",
        "?since=yesterday",
        "?until=-1",
        "?limit=0",
        "?limit=1001",
        "?limit=x",
        "?cursor=zzz",
        "?cursor=1.2.3",
        "?storm=a/b",
        "?storm=%00",
    ],
)
def test_bad_api_parameters_are_a_clear_400(db, query):
    status, body = get(Client(), query)
    assert status == 400 and body["error"]


def test_the_api_and_page_need_a_login_when_asked(db, settings):
    settings.STORMUI_LOGIN_REQUIRED = True
    assert get(Client(), "")[0] == 401
    assert Client().get("/timeline/").status_code == 302


def test_the_timeline_page_escapes_filters_and_pages(known_cluster):
    make_events()
    TimelineEvent.objects.create(
        kind="action-remove",
        time=20_000,
        after=20_000,
        storm_id=HOSTILE[:40].replace("/", ""),
        user=HOSTILE,
        detail=HOSTILE,
        outcome="refused",
    )
    client = Client()
    page = client.get("/timeline/").content.decode()
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)" in page
    assert 'id="timeline-feed"' in page and 'data-live="timeline"' in page
    filtered = client.get("/timeline/?kind=task-died&storm=a-1-1").content.decode()
    assert (
        filtered.count('class="timeline-event') == 8 and "n13" in filtered and "n12" not in filtered
    )
    assert 'data-live-query="storm=a-1-1&amp;kind=task-died"' in filtered
    assert client.get("/timeline/?kind=<b>").status_code == 400
    assert client.get("/timeline/?before=nope").status_code == 400
    # paged: the first page and its older one, which is not live
    TimelineEvent.objects.bulk_create(
        TimelineEvent(kind="dashboard-started", time=30_000 + n, after=30_000 + n)
        for n in range(100)
    )
    first = client.get("/timeline/")
    older = (
        first.content.decode().split('rel="next" href="?')[1].split('"')[0].replace("&amp;", "&")
    )
    page = client.get(f"/timeline/?{older}").content.decode()
    assert 'id="timeline-page"' in page and 'data-live=""' in page
    assert page.count('class="timeline-event') == 26 and "n0" in page


def test_the_storm_page_lists_its_recent_events_escaped(known_cluster):
    for n in range(12):
        TimelineEvent.objects.create(
            kind="task-died",
            time=1000 + n,
            after=1000 + n,
            storm_id=HEALTHY,
            task_id=1,
            detail=f"{HOSTILE} {n}",
        )
    page = Client().get(f"/storms/{HEALTHY}/").content.decode()
    assert page.count('class="timeline-event') == 10 and "&lt;script&gt;alert(1)" in page
    assert "<script>alert(1)" not in page


def test_the_storm_page_stands_without_the_history(known_cluster, monkeypatch):
    def away(*args, **kwargs):
        raise DatabaseError("the database is away")

    monkeypatch.setattr(timeline, "recent", away)
    monkeypatch.setattr(timeline, "restart_counts", away)
    response = Client().get(f"/storms/{HEALTHY}/")
    assert response.status_code == 200
    assert "The history cannot be read just now." in response.content.decode()
    response = Client().get(f"/storms/{HEALTHY}/components/words/")
    assert response.status_code == 200 and "component-restarts" not in response.content.decode()


# -- live --------------------------------------------------------------------------------------


async def next_message(comm):
    """The socket's next message but ticks (the relay ticks every socket every few seconds)."""
    while True:
        message = await comm.receive_json_from(timeout=WAIT)
        if message["type"] != "tick":
            return message


@pytest.mark.asyncio
@pytest.mark.timeout(120)
@pytest.mark.django_db(transaction=True)
async def test_the_timeline_page_is_live(live_cluster, writer, settings, monkeypatch):
    from channels.testing import WebsocketCommunicator

    from stormui.asgi import application

    settings.STORMUI_HISTORY = True
    comm = WebsocketCommunicator(
        application,
        f"/ws/timeline/?storm={PAUSED}",
        headers=[(b"origin", b"http://localhost"), (b"host", b"localhost")],
    )
    assert (await comm.connect(timeout=WAIT))[0]
    snapshot = await next_message(comm)
    assert (
        snapshot["type"] == "snapshot"
        and 'id="timeline-feed"' in snapshot["html"]["timeline-region"]
    )

    def baselined():
        recorder = rec.current_recorder()
        parts = recorder.parts if recorder is not None else ()
        return any(p.name == "timeline" and p._baselined for p in parts)

    await asyncio.to_thread(wait_for, baselined, WAIT)
    # another storm's event is not this page's
    await asyncio.to_thread(writer.deactivate_storm, HEALTHY)

    def told_healthy():
        try:
            wait_for(lambda: has("storm-deactivated", storm_id=HEALTHY), WAIT)
        finally:
            connection.close()  # a thread of asyncio's: leave no connection behind

    await asyncio.to_thread(told_healthy)
    await asyncio.to_thread(writer.activate_storm, PAUSED, StormBase("paused", int(time.time())))
    message = await next_message(comm)
    assert message["type"] == "event" and "storm-activated" in message["html"]
    assert PAUSED in message["html"] and message["html"].startswith(
        f'<li id="event-{message["id"]}"'
    )
    # a burst too large to send event by event: a fresh snapshot instead
    monkeypatch.setattr(live, "TIMELINE_BATCH", 0)
    await asyncio.to_thread(writer.deactivate_storm, PAUSED)
    snapshot = await next_message(comm)
    assert snapshot["type"] == "snapshot" and snapshot["resync"] is True
    region = snapshot["html"]["timeline-region"]
    assert region.index("storm-deactivated") < region.index("storm-activated")
    await comm.disconnect()
