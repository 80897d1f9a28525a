"""Rates from the change of all-time counts between heartbeats, with known deltas, and the
last hour's charts drawn from them."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from django.template.loader import render_to_string
from django.test import Client

from clusterstate import TaskHeartbeat
from clusterstate.records import TaskInfo
from stormui import charts, graph, pages, rates, shapes
from stormui.cluster import StormRecords, TaskRecords, derive_storm
from stormui.rates import Point, Rates, RateTracker, task_counts
from tests.helpers import wait_for
from tests.stormui.conftest import HEALTHY, spout_stats
from tests.stormui.test_graph import parsed_svg

T0 = 1_700_000_000
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(autouse=True)
def fresh_charts():
    charts._made.clear()
    graph._drawings.clear()
    yield
    charts._made.clear()
    graph._drawings.clear()


def spout(emitted=0, acked=0, failed=0) -> dict:
    return {
        "type": "spout",
        "emitted": {"all-time": {"default": emitted, "__ack_init": 0}},
        "acked": {"all-time": {"default": acked}},
        "failed": {"all-time": {"default": failed}},
    }


def bolt(acked: dict, failed: dict | None = None, emitted=0) -> dict:
    return {
        "type": "bolt",
        "emitted": {"all-time": {"default": emitted}},
        "acked": {"all-time": acked},
        "failed": {"all-time": failed or {}},
    }


# -- counts ---------------------------------------------------------------------


def test_a_tasks_counts_are_its_all_time_sums():
    assert task_counts(spout(10, 7, 2))[:3] == (10, 7, 2)
    counts = task_counts(bolt({"a": {"s": 3, "t": 4}, "b": {"s": 5}}, {"a": {"s": 1}}, 9))
    assert counts[:3] == (9, 12, 1)
    assert counts.inputs == {("a", "s"): 3, ("a", "t"): 4, ("b", "s"): 5}
    assert task_counts(None) is None
    assert task_counts({"type": "spout"})[:3] == (None, None, None)  # no all-time window


@pytest.mark.parametrize("bad", [-1, 2.5, float("nan"), "7", None, True])
def test_a_count_that_is_no_count_makes_its_sum_unknown(bad):
    counts = task_counts(spout(bad, 3, 0))
    assert counts.emitted is None and counts.acked == 3
    counts = task_counts(bolt({"a": {"s": bad, "t": 1}}))
    assert counts.acked is None and counts.inputs[("a", "t")] == 1


def test_an_integral_float_count_is_a_count():
    assert task_counts(spout(10.0))[0] == 10


# -- a task's rate --------------------------------------------------------------


def test_the_rate_is_the_change_per_second_between_two_beats():
    tr = RateTracker()
    assert tr.task_rate("s", 1, T0, spout(100, 50, 5)).rates == Rates()  # no previous beat
    r = tr.task_rate("s", 1, T0 + 10, spout(300, 90, 6))
    assert r.rates == Rates(20.0, 4.0, 0.1)
    # the same beat seen again: the same rate, not a zero one
    assert tr.task_rate("s", 1, T0 + 10, spout(300, 90, 6)).rates == Rates(20.0, 4.0, 0.1)


def test_a_restarted_task_counts_from_zero_never_negative():
    tr = RateTracker()
    tr.task_rate("s", 1, T0, spout(1000, 500, 9))
    r = tr.task_rate("s", 1, T0 + 5, spout(50, 510, 0))  # emitted and failed went down
    assert r.rates == Rates(10.0, 2.0, 0.0)


def test_a_clock_going_backwards_starts_over():
    tr = RateTracker()
    tr.task_rate("s", 1, T0, spout(100))
    assert tr.task_rate("s", 1, T0 - 30, spout(200)).rates == Rates()
    # the next beat counts from the one that went back
    assert tr.task_rate("s", 1, T0 - 20, spout(250)).rates.emitted == 5.0


def test_an_unreadable_count_gives_no_rate_until_two_readable_beats():
    tr = RateTracker()
    tr.task_rate("s", 1, T0, spout(100, 10))
    r = tr.task_rate("s", 1, T0 + 10, spout(-5, 20))
    assert r.rates == Rates(None, 1.0, 0.0)
    assert tr.task_rate("s", 1, T0 + 20, spout(400, 30)).rates.emitted is None
    assert tr.task_rate("s", 1, T0 + 30, spout(500, 40)).rates.emitted == 10.0


def test_an_input_new_since_the_last_beat_counts_from_zero():
    tr = RateTracker()
    tr.task_rate("s", 1, T0, bolt({"a": {"s": 10}}))
    r = tr.task_rate("s", 1, T0 + 2, bolt({"a": {"s": 20}, "b": {"x": 4}}))
    assert r.inputs == {("a", "s"): 5.0, ("b", "x"): 2.0}
    assert r.rates.acked == 7.0


def test_forgotten_tasks_and_storms_have_no_previous_beat():
    tr = RateTracker()
    tr.storm_task_rates("s", [(1, T0, spout(100)), (2, T0, spout(100))])
    tr.task_rate("gone", 1, T0, spout(100))
    # a storm's view names the tasks that beat; the others are forgotten
    rates_now = tr.storm_task_rates("s", [(1, T0 + 1, spout(101))])
    assert rates_now[1].rates.emitted == 1.0 and set(rates_now) == {1}
    tr.forget_storms({"s"})
    assert tr.task_rate("s", 1, T0 + 2, spout(103)).rates.emitted == 2.0
    assert tr.task_rate("s", 2, T0 + 1, spout(101)).rates.emitted is None
    assert tr.task_rate("gone", 1, T0 + 1, spout(101)).rates.emitted is None


# -- storms, components and edges -----------------------------------------------


def storm_at(tracker, now, beats, storm_id="s-1-1"):
    """beats: [(task, component, type, stats, heartbeat time)]."""
    rows = tuple(
        TaskRecords(t, TaskInfo(cid, kind), TaskHeartbeat(at, 100, stats), ())
        for t, cid, kind, stats, at in beats
    )
    records = StormRecords(storm_id, None, None, rows)
    return derive_storm(records, now=now, task_timeout=60, tracker=tracker)


def test_storm_component_and_edge_rates_are_sums_over_alive_tasks():
    tr = RateTracker()

    def beats(k, dead_at):
        return [
            (1, "src", "spout", spout(100 * k, 50 * k, k), T0 + 10 * k),
            (2, "src", "spout", spout(300 * k, 10 * k, 0), T0 + 10 * k),
            (
                3,
                "sink",
                "bolt",
                bolt({"src": {"default": 40 * k}}, {"src": {"default": k}}, k),
                T0 + 10 * k,
            ),
            (
                4,
                "sink",
                "bolt",
                bolt({"src": {"default": 20 * k}, "sink": {"loop": 10 * k}}),
                T0 + 10 * k,
            ),
            # a dead task: beats change, but it adds nothing
            (5, "sink", "bolt", bolt({"src": {"default": 1000 * k}}), dead_at + k),
        ]

    first = storm_at(tr, T0, beats(0, T0 - 500))
    assert first.rates == Rates() and first.components["src"].rates == Rates()
    s = storm_at(tr, T0 + 10, beats(1, T0 - 500))
    # emitted by every alive task: (100 + 300 + 1 + 0) / 10; acked and failed the spouts'
    assert s.rates == Rates(40.1, 6.0, 0.1)
    assert s.components["src"].rates == Rates(40.0, 6.0, 0.1)
    assert s.components["sink"].rates == Rates(0.1, 7.0, 0.1)
    assert s.input_rates == {("src", "sink", "default"): 6.0, ("sink", "sink", "loop"): 1.0}
    g = graph.derive_graph(s, "all-time", T0 + 10)
    edges = {(e.source, e.target, e.stream): e for e in g.edges}
    assert edges[("src", "sink", "default")].acked_rate == 6.0
    assert edges[("sink", "sink", "loop")].acked_rate == 1.0  # a self-loop has its rate
    nodes = {n.id: n for n in g.nodes}
    api = shapes.graph_node(nodes["src"])
    assert (api["emittedRate"], api["ackedRate"], api["failedRate"]) == (40.0, 6.0, 0.1)
    assert shapes.graph_edge(edges[("src", "sink", "default")])["ackedRate"] == 6.0


def test_a_storm_view_without_a_tracker_has_no_rates():
    s = storm_at(None, T0, [(1, "src", "spout", spout(1), T0)])
    assert s.rates == Rates() and s.input_rates == {}


# -- the charts' points ---------------------------------------------------------


def test_a_point_per_step_bounded_to_the_hour_and_forgotten_with_its_storm():
    tr = RateTracker(step=5)
    assert tr.points == 721
    for i in range(800):
        tr.sample("s", T0 + 5 * i, {None: (Rates(i, 0, 0), 1), "c": (Rates(), 1)})
    points = tr.series("s")
    assert len(points) == 721 and points[-1].emitted == 799
    assert points[-1].time - points[0].time == 3600
    # within the same step a point replaces the last; an older time is dropped
    tr.sample("s", T0 + 5 * 799 + 1, {None: (Rates(1, 2, 3), 4)})
    tr.sample("s", T0, {None: (Rates(9, 9, 9), 9)})
    assert tr.series("s")[-1] == Point(T0 + 5 * 799 + 1, 1, 2, 3, 4)
    assert tr.series("s", "c") == ()  # not named in the last sample: forgotten
    tr.forget_storms(set())
    assert tr.series("s") == ()


def test_the_step_is_the_heartbeat_period_with_at_most_720_points_an_hour():
    assert RateTracker(step=0.1).points == 721
    assert RateTracker(step=10).points == 361


# -- the charts -----------------------------------------------------------------


def point(i, emitted=1.0, acked=0.5, failed=0.0, alive=2):
    return Point(T0 + 5 * i, emitted, acked, failed, alive)


def test_an_empty_chart_says_so_and_draws_no_line():
    c = charts.chart((), charts.RATE_LINES, chart_id="x", title="T", now=T0)
    svg = ET.fromstring(c["svg"])
    assert c["empty"] and c["words"] == []
    assert not list(svg.iter(f"{SVG}polyline")) and not list(svg.iter(f"{SVG}circle"))


def test_one_point_is_a_dot_and_its_words_say_it():
    c = charts.chart((point(0, 12.0),), charts.RATE_LINES, chart_id="x", title="T", now=T0)
    svg = ET.fromstring(c["svg"])
    assert len(list(svg.iter(f"{SVG}circle"))) == 3
    assert c["words"][0] == "Emitted: 12.0/s now; from 12.0 to 12.0/s one reading so far."


def test_a_line_breaks_where_its_value_is_unknown_and_says_its_range():
    points = [point(0, 1.0), point(1, None), point(2, 3.0), point(3, 250.0), point(4, 4.0)]
    c = charts.chart(points, charts.RATE_LINES, chart_id="x", title="T", now=points[-1].time)
    svg = ET.fromstring(c["svg"])
    emitted = next(g for g in svg.iter(f"{SVG}g") if "emitted" in g.get("class"))
    assert len(list(emitted.iter(f"{SVG}circle"))) == 1  # the first, alone before the gap
    assert len(list(emitted.iter(f"{SVG}polyline"))) == 1
    assert c["words"][0] == "Emitted: 4.00/s now; from 1.00 to 250/s over the last 1 minute."
    assert "500" in c["svg"]  # the axis' top: a round number above the highest


def test_chart_text_is_escaped():
    bad = '<script>&"x'
    c = charts.chart((point(0),), charts.RATE_LINES, chart_id="x", title=bad, now=T0)
    ET.fromstring(c["svg"])  # well-formed: the title did not break it
    assert "<script>" not in c["svg"]
    html = render_to_string("stormui/_charts.html", {"charts": [c]})
    assert "<script>" not in html


def test_the_storm_page_regions_chart_the_storms_points():
    tr = rates.TRACKER
    tr.clear()
    try:
        beats = [(1, "sp<out", "spout", spout(0), T0)]
        storm_at(tr, T0, beats, storm_id="c-1-1")
        beats = [(1, "sp<out", "spout", spout(100, 50), T0 + 10)]
        storm = storm_at(tr, T0 + 10, beats, storm_id="c-1-1")
        ctx = pages.storm_context(storm, pages.status(T0 + 10, True, None))
        html = render_to_string(pages.template("storm_charts"), ctx)
        assert "Emitted: 10.0/s now" in html and "Acked: 5.00/s now" in html
        assert "Tasks alive: 1 now" in html
        comp = pages.component_context(storm, pages.status(T0 + 10, True, None), "sp<out")
        html = render_to_string(pages.template("component_charts"), comp)
        assert "sp&lt;out" in html and "sp<out" not in html
        stats = render_to_string(pages.template("component_stats"), comp)
        assert 'data-field="emitted-rate">10.0<' in stats
    finally:
        tr.clear()


@pytest.mark.django_db
def test_the_graph_api_gives_rates_after_a_second_heartbeat(known_cluster):
    client = Client()
    url = f"/api/v1/topology/{HEALTHY}/graph"
    nodes = {n["id"]: n for n in client.get(url).json()["nodes"]}
    assert nodes["words"]["emittedRate"] is None  # one heartbeat each so far
    beat = known_cluster.writer.task_heartbeat(HEALTHY, 1)
    known_cluster.writer.set_task_heartbeat(
        HEALTHY, 1, TaskHeartbeat(beat.time_secs + 10, beat.uptime_secs + 10, spout_stats(11))
    )

    def rated():
        nodes = {n["id"]: n for n in client.get(url).json()["nodes"]}
        return nodes["words"]["emittedRate"]

    wait_for(lambda: rated() is not None, timeout=30, interval=0.05, message="no rate")
    # spout_stats(seed) emits 428 * seed all time: (11 - 1) * 428 over 10 s
    assert rated() == 428.0
    html = client.get(f"/storms/{HEALTHY}/").content.decode()
    assert "Emitted: 428/s now" in html
    svg = parsed_svg(html)
    assert svg.get("class") == "storm-graph"


def test_transferred_per_second_is_summed_over_every_alive_task():
    tr = RateTracker()

    def with_transferred(stats, n):
        return {**stats, "transferred": {"all-time": {"default": n, "__ack_ack": 1}}}

    def beats(k):
        return [
            (1, "src", "spout", with_transferred(spout(10 * k), 8 * k), T0 + 10 * k),
            (
                2,
                "sink",
                "bolt",
                with_transferred(bolt({"src": {"default": k}}), 2 * k),
                T0 + 10 * k,
            ),
        ]

    storm_at(tr, T0, beats(0))
    s = storm_at(tr, T0 + 10, beats(1))
    assert s.rates.transferred == 1.0  # (8 + 2) / 10: bolts transfer too
    assert s.components["src"].rates.transferred == 0.8
    assert s.components["sink"].rates.transferred == 0.2
    assert tr.series("s-1-1")[-1].transferred == 1.0
    assert task_counts(with_transferred(spout(), 5)).transferred == 6  # every stream
