"""The history's time series: 10 s points from the tracker's rates, roll-ups with known sums,
gaps kept as gaps, idempotent writes, retention, the API and the long-range charts."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET

import pytest
from django.test import Client

from clusterstate import TaskError
from clusterstate.mirror import MirrorChange
from stormui import charts, live, pages
from stormui.history import recorder as rec
from stormui.history import series
from stormui.history.recorder import HistoryRecorder
from stormui.history.series import MINUTE, STEP, TEN_MINUTES
from stormui.models import RecorderRun, SeriesKey, SeriesPoint
from stormui.rates import Rates, RateTracker
from stormui.source import get_source
from tests.helpers import wait_for
from tests.stormui.conftest import HEALTHY
from tests.stormui.test_history_recorder import FakeSource as ListeningSource
from tests.stormui.test_views import get_page

#: a minute boundary, and a ten minutes one
T0 = 1_700_000_400_000
HOSTILE = "<script>alert(1)</script>"


class Clock:
    def __init__(self, now: int):
        self.now = now

    def __call__(self) -> int:
        return self.now


class Info:
    def __init__(self, component_id):
        self.component_id = component_id


class Reader:
    """The mirror's task infos: task n of a storm is component "c"."""

    def task_info(self, storm_id, task_id):
        return Info("c")


class FakeSource(ListeningSource):
    reader = Reader()


@pytest.fixture
def clock(monkeypatch):
    c = Clock(T0)
    monkeypatch.setattr(rec, "now_ms", c)
    return c


def sample(tracker, at_ms: int, emitted, alive=4, storm="s", transferred=None):
    """The tracker's points for storm ``storm`` and its component "c" at ``at_ms``."""
    rates = Rates(emitted, emitted / 2 if emitted is not None else None, 0.0, transferred)
    tracker.sample(storm, at_ms / 1000, {None: (rates, alive), "c": (rates, alive)})


def error_change(n: int, storm="s", task=1) -> MirrorChange:
    errors = tuple(TaskError(1_700_000_000 + i, f"boom {i}") for i in range(n))
    return MirrorChange("errors", storm, task, errors)


def make(clock, tracker=None):
    source = FakeSource()
    tracker = tracker or RateTracker(step=1)
    part = series.Part(source, tracker)
    recorder = HistoryRecorder(source, [part])
    recorder._unsubscribe = source.subscribe(recorder._on_change)
    assert recorder.record()  # the run starts at T0
    return source, tracker, part, recorder


def rows(resolution: int, storm="s", component="") -> list[tuple]:
    return list(
        SeriesPoint.objects.filter(
            series__storm_id=storm, series__component_id=component, resolution=resolution
        )
        .order_by("time")
        .values_list("time", *series.FIELDS)
    )


# -- the figures ------------------------------------------------------------------------


def test_roll_ups_are_means_of_what_is_known_and_sums_of_errors():
    fine = [
        (10.0, None, 2.0, 0.0, 4, 1),
        (20.0, None, None, 1.0, 3, 2),
        (None, None, 4.0, 0.0, 4, 0),
    ]
    assert series.roll_up(fine) == (15.0, None, 3.0, 1 / 3, 11 / 3, 3)
    assert series.per_minute(3, STEP) == 18.0 and series.per_minute(30, TEN_MINUTES) == 3.0


def test_the_resolution_is_the_finest_that_holds_the_range():
    day = series.DAY
    now, keep = T0, 30 * day
    assert series.choose_resolution(now - 3600_000, now, now, keep) == STEP
    assert series.choose_resolution(now - 6 * 3600_000, now, now, keep) == STEP
    assert series.choose_resolution(now - day, now, now, keep) == MINUTE
    assert series.choose_resolution(now - 7 * day, now, now, keep) == TEN_MINUTES  # too many
    assert series.choose_resolution(now - 30 * day, now, now, keep) == TEN_MINUTES
    # an hour a week ago: only the minutes hold it
    assert series.choose_resolution(now - 6 * day, now - 6 * day + 3600_000, now, keep) == MINUTE


# -- recording --------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_point_every_10_s_and_minutes_rolled_up_with_known_sums(clock):
    source, tracker, part, recorder = make(clock)
    # a minute of 10 s buckets, two tracker points in each (means: 15, 25, ...), errors in two
    for i in range(6):
        at = T0 + i * STEP
        sample(tracker, at + 1000, 10.0 * i + 10, alive=4, transferred=1.0)
        sample(tracker, at + 6000, 10.0 * i + 20, alive=3 if i == 2 else 4, transferred=None)
        clock.now = at + 7000
        if i in (1, 4):
            source.change(error_change(i))  # 1 error, then 4
        clock.now = at + STEP
        assert recorder.record()
    steps = rows(STEP)
    assert [r[0] for r in steps] == [T0 + i * STEP for i in range(6)]
    assert [r[1] for r in steps] == [15.0, 25.0, 35.0, 45.0, 55.0, 65.0]
    assert steps[0][2] == 1.0  # transferred: the one point that knew it
    assert steps[2][5] == 3.5  # tasks alive: the mean
    assert [r[6] for r in steps] == [0, 1, 0, 0, 4, 0]
    assert rows(STEP, component="c")[4][6] == 4  # the component's errors too
    minute = rows(MINUTE)
    assert minute == [(T0, 40.0, 1.0, 20.0, 0.0, (4 * 5 + 3.5) / 6, 5)]
    assert rows(MINUTE, component="c")[0][1] == 40.0
    # the API says the errors per minute at each resolution
    res, got = series.read("s", "", T0, T0 + MINUTE, T0 + MINUTE)
    assert res == STEP
    assert series.metric_points(got, "errors", res)[1] == [T0 + STEP, 6.0]


@pytest.mark.django_db
def test_a_time_without_points_stays_a_gap(clock):
    source, tracker, part, recorder = make(clock)
    for i in (0, 1, 4):  # nothing in buckets 2 and 3, and none after the first minute
        sample(tracker, T0 + i * STEP + 500, 6.0)
    for t in range(T0, T0 + 12 * MINUTE, STEP):
        clock.now = t
        assert recorder.record()
    assert [r[0] for r in rows(STEP)] == [T0, T0 + STEP, T0 + 4 * STEP]
    assert [r[0] for r in rows(MINUTE)] == [T0]  # the empty minutes have no row
    assert [(r[0], r[1]) for r in rows(TEN_MINUTES)] == [(T0, 6.0)]


@pytest.mark.django_db
def test_retried_passes_and_restarts_write_nothing_twice(clock):
    source, tracker, part, recorder = make(clock)
    for i in range(3):
        sample(tracker, T0 + i * STEP + 500, 12.0)
    source.change(error_change(2))
    clock.now = T0 + 3 * STEP
    # the database refuses the pass: its items wait and go in once
    original = part.write
    part.write = lambda items, now: (_ for _ in ()).throw(RuntimeError("refused"))
    assert not recorder.record()
    part.write = original
    assert recorder.record()
    assert [(r[1], r[6]) for r in rows(STEP)] == [(12.0, 2), (12.0, 0), (12.0, 0)]
    # the same points put again (a pass tried again after its commit was lost) change nothing
    part.write(part.points(T0, T0 + 3 * STEP, {("s", "", T0): 2}), clock.now)
    assert SeriesPoint.objects.filter(resolution=STEP).count() == 6
    assert rows(STEP)[0][6] == 2
    # killed mid-minute: the next run rolls up what it wrote, once, however often it starts
    RecorderRun.objects.update(alive_at=T0 + 3 * STEP)
    for _ in range(2):
        clock.now = T0 + 2 * MINUTE
        _, _, _, again = make(clock, tracker)
        assert again.record()
        RecorderRun.objects.filter(stopped_at=None).update(alive_at=T0 + 3 * STEP)
        assert rows(MINUTE) == [(T0, 12.0, None, 6.0, 0.0, 4.0, 2)]
    assert SeriesKey.objects.count() == 2
    assert SeriesPoint.objects.filter(resolution=TEN_MINUTES).count() == 0  # still under way


@pytest.mark.django_db
def test_each_resolution_is_kept_its_time_and_empty_series_go(clock, settings):
    settings.STORMUI_HISTORY_DAYS = 30
    source, tracker, part, recorder = make(clock)
    sample(tracker, T0 + 500, 1.0, storm="old")
    sample(tracker, T0 + 500, 1.0, storm="new")
    clock.now = T0 + STEP
    assert recorder.record()
    keys = dict(SeriesKey.objects.values_list("storm_id", "id").filter(component_id=""))
    day = series.DAY
    now = T0 + 40 * day
    made = []
    for res, age in ((STEP, 7 * 3600_000), (STEP, 5 * 3600_000), (MINUTE, 8 * day)):
        made.append(SeriesPoint(series_id=keys["new"], resolution=res, time=now - age))
    made.append(SeriesPoint(series_id=keys["new"], resolution=MINUTE, time=now - 6 * day))
    made.append(SeriesPoint(series_id=keys["new"], resolution=TEN_MINUTES, time=now - 29 * day))
    SeriesPoint.objects.bulk_create(made)
    SeriesPoint.objects.filter(time__lt=T0 + STEP).delete()
    SeriesPoint.objects.create(series_id=keys["old"], resolution=TEN_MINUTES, time=now - 31 * day)
    gone = part.expire(now - rec.retention_ms())
    assert gone == 3
    left = sorted(SeriesPoint.objects.values_list("resolution", "time"))
    assert left == [
        (STEP, now - 5 * 3600_000),
        (MINUTE, now - 6 * day),
        (TEN_MINUTES, now - 29 * day),
    ]
    assert not SeriesKey.objects.filter(storm_id="old").exists()
    assert SeriesKey.objects.filter(storm_id="new").count() == 1  # "c" had no point left


# -- reading: the API and the long charts ------------------------------------------------


def store(storm: str, component: str, points: dict[int, tuple]) -> None:
    """10 s points, by time: (emitted, transferred, acked, failed, tasks alive, errors)."""
    part = series.Part(FakeSource(), RateTracker())
    part.write([("point", storm, component, t, *f) for t, f in sorted(points.items())], 0)


def api(client, storm: str, **query):
    return client.get(f"/api/v1/topology/{storm}/series", query)


@pytest.mark.django_db(transaction=True)
def test_the_api_answers_a_series_oldest_first_in_its_unit(known_cluster):
    client = Client()
    now = rec.now_ms()
    base = series.bucket(now, STEP) - 30 * STEP
    store(HEALTHY, "", {base + STEP: (2.0, 1.5, 1.0, 0.0, 5, 2), base: (1.0, None, 0.5, 0.0, 4, 0)})
    store(HEALTHY, "words", {base: (9.0, 9.0, 3.0, 1.0, 2, 1)})
    body = api(client, HEALTHY, metric="emitted").json()
    assert body == {
        "metric": "emitted",
        "unit": "tuples/s",
        "points": [[base, 1.0], [base + STEP, 2.0]],
    }
    body = api(client, HEALTHY, metric="transferred").json()
    assert body["points"] == [[base, None], [base + STEP, 1.5]]  # unknown stays null
    assert api(client, HEALTHY, metric="tasksAlive").json()["unit"] == "tasks"
    body = api(client, HEALTHY, metric="errors").json()
    assert body["unit"] == "errors/min" and body["points"][1] == [base + STEP, 12.0]
    body = api(client, HEALTHY, metric="failed", component="words").json()
    assert body["points"] == [[base, 1.0]]
    # since and until (epoch ms) choose the points
    body = api(client, HEALTHY, metric="acked", since=str(base + 1), until=str(now)).json()
    assert body["points"] == [[base + STEP, 1.0]]
    assert api(client, HEALTHY, metric="acked", until=str(base)).json()["points"] == []
    # a storm gone from the cluster keeps its history; one never seen is not found
    store("gone-9-9000", "", {base: (1.0, 1.0, 1.0, 0.0, 1, 0)})
    assert api(client, "gone-9-9000", metric="emitted").json()["points"] == [[base, 1.0]]
    for storm, query in [
        ("never-seen-1", {"metric": "emitted"}),
        ("bad%0Aid", {"metric": "emitted"}),
        (HEALTHY, {"metric": "emitted", "component": "no-such"}),
    ]:
        response = api(client, storm, **query)
        assert response.status_code == 404 and "error" in response.json()
    for query in [
        {},
        {"metric": "bogus"},
        {"metric": "emitted", "since": "yesterday"},
        {"metric": "emitted", "since": "-5"},
        {"metric": "emitted", "since": str(now), "until": str(now)},
        {"metric": "emitted", "until": "1" * 40},
    ]:
        response = api(client, HEALTHY, **query)
        assert response.status_code == 400, query
        assert response.json()["error"]


SVG = "{http://www.w3.org/2000/svg}"


class FakeStorm:
    def __init__(self, storm_id, name, as_of):
        self.id, self.name, self.as_of = storm_id, name, as_of


@pytest.mark.django_db
def test_a_long_chart_draws_the_stored_points_breaks_at_gaps_and_escapes(settings):
    charts._made.clear()
    now = rec.now_ms()
    base = series.bucket(now, STEP) - 60 * STEP
    points = {base + i * STEP: (float(i), None, 1.0, 0.0, 3, 0) for i in (0, 1, 2, 10, 11)}
    store("s-1-1", "", points)
    made = charts.charts(FakeStorm("s-1-1", HOSTILE, now / 1000), chart_range="6h")
    rates_chart = made[0]
    svg = ET.fromstring(rates_chart["svg"])  # well formed: the name is escaped
    assert HOSTILE not in rates_chart["svg"] and "6 hours ago" in rates_chart["svg"]
    assert rates_chart["title"] == f"Tuples per second of {HOSTILE}, the last 6 hours"
    emitted = next(g for g in svg.iter(f"{SVG}g") if "emitted" in g.get("class"))
    lines = [p.get("points").split() for p in emitted.iter(f"{SVG}polyline")]
    assert [len(line) for line in lines] == [3, 2]  # the gap stays a gap
    assert (
        rates_chart["words"][0]
        == "Emitted: 11.0/s now; from 0.00 to 11.0/s over the last 2 minutes."
    )
    empty = charts.charts(FakeStorm("none-1-1", HOSTILE, now / 1000), chart_range="30d")
    assert (
        empty[0]["empty"] and empty[0]["empty_text"] == "Nothing was recorded in the last 30 days."
    )
    charts._made.clear()


@pytest.mark.django_db(transaction=True)
def test_the_pages_chart_a_range_from_the_history_and_live_updates_keep_it(known_cluster):
    charts._made.clear()
    client = Client()
    now = rec.now_ms()
    base = series.bucket(now, MINUTE) - 20 * MINUTE
    store(HEALTHY, "", {base: (7.0, None, 1.0, 0.0, 3, 0)})
    # a day is read at 1 minute: roll the stored 10 s point up
    part = series.Part(FakeSource(), RateTracker())
    part.write([("roll-up", MINUTE, base)], 0)
    with_minutes = rows(MINUTE, storm=HEALTHY)
    assert with_minutes[0][:2] == (base, 7.0)
    doc = get_page(client, f"/storms/{HEALTHY}/?window=600&range=1d")
    assert doc.by_id("charts-heading").words == "The last day"
    nav = doc.find("nav", cls="chart-ranges")
    links = {a.words: a.attrs["href"] for a in nav.find_all("a")}
    assert links["The last hour"] == "?window=600"
    assert links["The last 7 days"] == "?window=600&range=7d"
    current = [a.words for a in nav.find_all("a") if a.attrs.get("aria-current")]
    assert current == ["The last day"]
    words = doc.by_id("storm-chart-rates-words").words
    assert "Emitted: 7.00/s now" in words
    # the socket of that page names the range; its update renders the same charts
    key = pages.with_chart_range(("storm", HEALTHY, "600"), "1d")
    assert key == ("storm", HEALTHY, "600", "1d")
    view = get_source().cluster_view()
    region = live.page_regions(key, view)["storm-charts"]
    assert "Emitted: 7.00/s now" in region and "1 days ago" not in region
    # a component's page: its tables' part is kept, the range after it
    assert pages.with_chart_range(("component", HEALTHY, "words", "600"), "6h") == (
        "component",
        HEALTHY,
        "words",
        "600",
        "",
        "6h",
    )
    doc = get_page(client, f"/storms/{HEALTHY}/components/words/?range=30d&tasks_q=x")
    assert doc.by_id("charts-heading").words == "The last 30 days"
    assert "Nothing was recorded" in doc.by_id("component-chart-rates-words").words
    # a range that is no range is the last hour
    doc = get_page(client, f"/storms/{HEALTHY}/?range=%3Cscript%3E")
    assert doc.by_id("charts-heading").words == "The last hour"
    charts._made.clear()


@pytest.mark.django_db(transaction=True)
def test_the_mirrors_errors_and_the_dashboards_rates_become_points(known_cluster, clock):
    """The real source: the mirror reports a new error, the views built feed the tracker."""
    source = get_source()
    clock.now = int(time.time() * 1000)
    part = series.Part(source)
    recorder = HistoryRecorder(source, [part])
    recorder._unsubscribe = source.subscribe(recorder._on_change)
    try:
        assert recorder.record()
        known_cluster.writer.report_task_error(HEALTHY, 3, "a new error")
        wait_for(lambda: part._errors, timeout=30, message="the error was never noted")
        view = get_source().cluster_view()  # the error is in it: the tracker has a point
        storm = view.storms[HEALTHY]
        component = storm.tasks[3].component_id
        clock.now = int(time.time() * 1000) + STEP
        assert recorder.record()
    finally:
        recorder._unsubscribe()
    steps = rows(STEP, storm=HEALTHY)
    assert sum(r[6] for r in steps) == 1
    assert max(r[5] for r in steps if r[5] is not None) == storm.tasks_alive
    assert sum(r[6] for r in rows(STEP, storm=HEALTHY, component=component)) == 1
    assert not rows(STEP, storm="no-such-storm")


@pytest.mark.django_db
def test_the_series_api_asks_for_a_login_when_the_deployment_does(settings):
    settings.STORMUI_LOGIN_REQUIRED = True
    response = api(Client(), "s-1-1", metric="emitted")
    assert response.status_code == 401 and response.json()["error"]


def test_a_mean_of_tasks_alive_keeps_its_fraction():
    assert charts._alive(200) == "200" and charts._alive(199.5) == "199.5"
    assert charts._alive(1234.0) == "1,234"
