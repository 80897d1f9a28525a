"""The storm graph: derived from heartbeats with known sums, laid out by dot, drawn as SVG,
served by the API; bad input is shown as far as it can be read and never breaks it."""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from collections import Counter
from html.parser import HTMLParser

import pytest
from django.template.loader import render_to_string
from django.test import Client

from bench.graph_layout import synthetic_storm
from clusterstate.records import WINDOWS, TaskError, TaskHeartbeat, TaskInfo
from stormui import graph, pages
from stormui.cluster import StormRecords, TaskRecords, derive_storm
from tests.stormui.conftest import HEALTHY, TROUBLED

NOW = 1_700_000_000
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(autouse=True)
def fresh_caches():
    graph._layouts.clear()
    graph._drawings.clear()
    graph._inputs_cache.clear()
    yield
    graph._layouts.clear()
    graph._drawings.clear()


def spout(emitted: int) -> dict:
    return {"type": "spout", "emitted": {w: {"default": emitted} for w in WINDOWS}}


def bolt(acked: dict, failed: dict | None = None, latencies: dict | None = None, windows=WINDOWS):
    """A bolt's stats with the same {input: {stream: n}} maps in each of ``windows``."""
    stats = {"type": "bolt", "emitted": {w: {"default": 1} for w in WINDOWS}}
    stats["acked"] = {w: acked for w in windows}
    stats["failed"] = {w: failed or {} for w in windows}
    stats["process_latencies"] = {w: latencies or {} for w in windows}
    return stats


def make_storm(tasks, errors=None, storm_id="s-1-1"):
    """tasks: [(task id, component id or None, type, stats or None, heartbeat age)]."""
    errors = errors or {}
    rows = []
    for t, cid, kind, stats, age in tasks:
        info = TaskInfo(cid, kind) if cid is not None else None
        beat = TaskHeartbeat(NOW - age, 100, stats) if age is not None else None
        errs = tuple(TaskError(error=text, time_secs=tm) for tm, text in errors.get(t, ()))
        rows.append(TaskRecords(t, info, beat, errs))
    records = StormRecords(storm_id, None, None, tuple(rows))
    return derive_storm(records, now=NOW, task_timeout=60)


def with_stats(storm, task_id, stats):
    """The storm with one task's stats replaced by anything (past what a heartbeat allows)."""
    tasks = dict(storm.tasks)
    tasks[task_id] = dataclasses.replace(tasks[task_id], stats=stats)
    return dataclasses.replace(storm, tasks=tasks)


def region(storm, window="all-time") -> str:
    ctx = pages.storm_context(storm, pages.status(NOW, True, None), window)
    return render_to_string(pages.template("storm_graph"), ctx)


def parsed_svg(html: str):
    start, end = html.index("<svg"), html.index("</svg>") + len("</svg>")
    return ET.fromstring(html[start:end])  # well-formed XML, or this raises


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.stops: Counter = Counter()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "a" and "href" in a and a.get("tabindex") != "-1":
            self.stops[a["href"]] += 1


def tab_stops(html: str) -> Counter:
    """The links a keyboard user tabs to in ``html``, by href: every <a href>, HTML or SVG,
    not taken out of the tab order; none may be hidden from screen readers."""
    assert "aria-hidden" not in html
    parser = _Links()
    parser.feed(html)
    return parser.stops


def edges_of(g):
    return {(e.source, e.target, e.stream): e for e in g.edges}


def test_nodes_and_edges_with_known_sums():
    storm = make_storm(
        [
            (1, "words", "spout", spout(100), 1),
            (2, "words", "spout", spout(50), 1),
            (3, "letters", "spout", spout(7), 1),
            (
                4,
                "count",
                "bolt",
                bolt(
                    {"words": {"default": 10, "extra": 1}},
                    {"words": {"default": 2}},
                    {"words": {"default": 4.0, "extra": 9.0}},
                ),
                1,
            ),
            (
                5,
                "count",
                "bolt",
                bolt(
                    {"words": {"default": 30}, "letters": {"default": 5}},
                    {"letters": {"default": 1}},
                    {"words": {"default": 8.0}, "letters": {"default": 1.5}},
                ),
                1,
            ),
        ]
    )
    g = graph.derive_graph(storm, "all-time", NOW)
    # spouts first, each kind by id
    assert [(n.id, n.type) for n in g.nodes] == [
        ("letters", "spout"),
        ("words", "spout"),
        ("count", "bolt"),
    ]
    words = g.nodes[1]
    assert (words.tasks, words.tasks_alive, words.emitted) == (2, 2, 150)
    edges = edges_of(g)
    assert sorted(edges) == [
        ("letters", "count", "default"),
        ("words", "count", "default"),
        ("words", "count", "extra"),
    ]
    e = edges[("words", "count", "default")]
    # acked 10 + 30, failed 2, latency weighted by acked: (4 * 10 + 8 * 30) / 40
    assert (e.acked, e.failed, e.process_latency_ms, e.unreadable) == (40, 2, 7.0, False)
    e = edges[("letters", "count", "default")]
    assert (e.acked, e.failed, e.process_latency_ms) == (5, 1, 1.5)
    e = edges[("words", "count", "extra")]
    assert (e.acked, e.failed, e.process_latency_ms) == (1, 0, 9.0)


def test_the_structure_is_every_windows_and_the_figures_the_chosen_ones():
    stats = bolt({"src": {"default": 3}})
    stats["acked"]["all-time"] = {"src": {"default": 40, "late": 2}}
    stats["acked"].pop("600")  # a missing window: nothing in it
    storm = make_storm([(1, "src", "spout", spout(1), 1), (2, "sink", "bolt", stats, 1)])
    ten_minutes = edges_of(graph.derive_graph(storm, "600", NOW))
    all_time = edges_of(graph.derive_graph(storm, "all-time", NOW))
    assert (
        set(ten_minutes)
        == set(all_time)
        == {
            ("src", "sink", "default"),
            ("src", "sink", "late"),
        }
    )
    assert ten_minutes[("src", "sink", "default")].acked == 0
    assert ten_minutes[("src", "sink", "late")].process_latency_ms is None
    assert all_time[("src", "sink", "default")].acked == 40
    assert edges_of(graph.derive_graph(storm, "10800", NOW))[("src", "sink", "default")].acked == 3


def test_an_input_without_tasks_is_drawn_and_marked():
    storm = make_storm(
        [
            (1, "src", "spout", spout(1), 1),
            (2, "sink", "bolt", bolt({"src": {"default": 1}, "ghost": {"default": 2}}), 1),
            # a task without a component names no edge: it has no node to point at
            (3, None, None, bolt({"nowhere": {"default": 1}}), 1),
        ]
    )
    g = graph.derive_graph(storm, "all-time", NOW)
    assert [n.id for n in g.nodes] == ["src", "sink", "ghost"]
    ghost = g.nodes[2]
    assert (ghost.missing, ghost.type, ghost.tasks) == (True, "unknown", 0)
    assert set(edges_of(g)) == {("src", "sink", "default"), ("ghost", "sink", "default")}
    html = region(storm)
    svg = parsed_svg(html)
    ghost_group = next(el for el in svg.iter(f"{SVG}g") if "missing" in el.get("class", ""))
    assert ghost_group.find(f"{SVG}a") is None  # no component page to link to
    assert "no tasks" in "".join(ghost_group.itertext())
    assert "ghost (named as an input, no tasks)" in html


def test_self_loops_and_cycles_are_drawn():
    storm = make_storm(
        [
            (1, "a", "bolt", bolt({"b": {"default": 1}}), 1),
            (2, "b", "bolt", bolt({"a": {"default": 2}, "b": {"again": 3}}), 1),
        ]
    )
    g = graph.derive_graph(storm, "all-time", NOW)
    assert set(edges_of(g)) == {("b", "a", "default"), ("a", "b", "default"), ("b", "b", "again")}
    assert edges_of(g)[("b", "b", "again")].self_loop
    svg = parsed_svg(region(storm))
    paths = [el for el in svg.iter(f"{SVG}g") if "graph-edge" in el.get("class", "")]
    assert len(paths) == 3
    for el in paths:
        assert el.find(f"{SVG}path").get("d").startswith("M")


def test_counts_that_are_not_whole_numbers_are_left_out_and_marked():
    storm = make_storm(
        [
            (1, "src", "spout", spout(1), 1),
            (
                2,
                "sink",
                "bolt",
                bolt(
                    {"src": {"neg": -5, "half": 2.5, "whole": 3.0, "fine": 4}},
                    {"src": {"fine": -1}},
                    {"src": {"whole": -2.0, "fine": 2.0}},
                ),
                1,
            ),
        ]
    )
    edges = edges_of(graph.derive_graph(storm, "all-time", NOW))
    assert edges[("src", "sink", "neg")].acked == 0 and edges[("src", "sink", "neg")].unreadable
    assert edges[("src", "sink", "half")].unreadable
    whole = edges[("src", "sink", "whole")]
    assert (whole.acked, whole.process_latency_ms, whole.unreadable) == (3, None, True)
    fine = edges[("src", "sink", "fine")]
    assert (fine.acked, fine.failed, fine.process_latency_ms, fine.unreadable) == (4, 0, 2.0, True)
    html = region(storm)
    svg = parsed_svg(html)
    marked = [el for el in svg.iter(f"{SVG}g") if "unreadable" in el.get("class", "")]
    assert len(marked) == 4
    assert "some counts unreadable" in html


@pytest.mark.parametrize(
    "garbage",
    [
        None,
        "not a map",
        {"type": "bolt", "acked": []},
        {"type": "bolt", "acked": {"all-time": ["x"]}},
        {"type": "bolt", "acked": {"all-time": {"src": [1, 2]}}},
        {"type": "bolt", "acked": {"all-time": {1: {"default": 1}, "src": {2: 5}}}},
        {"type": "bolt", "acked": {"all-time": {"src": {"default": "many"}}}},
        {"type": "bolt", "process_latencies": {"all-time": {"src": {"default": float("nan")}}}},
        {"type": "bolt", "acked": {"all-time": {"src": {"default": True}}}},
    ],
)
def test_garbage_stats_never_raise(garbage):
    storm = make_storm(
        [(1, "src", "spout", spout(1), 1), (2, "sink", "bolt", bolt({"src": {"ok": 1}}), 1)]
    )
    storm = with_stats(storm, 2, garbage)
    g = graph.derive_graph(storm, "all-time", NOW)
    assert [n.id for n in g.nodes] == ["src", "sink"]
    parsed_svg(region(storm))


def test_ids_and_streams_are_escaped():
    hostile = "<b>&\"x'</b>"
    stream = "</svg><script>alert(1)</script>"
    storm = make_storm(
        [
            (1, hostile, "spout", spout(1), 1),
            (2, "sink", "bolt", bolt({hostile: {stream: 1}}), 1),
        ]
    )
    html = region(storm)
    assert "<script" not in html and "<b>" not in html
    svg = parsed_svg(html)
    texts = "".join(svg.itertext())
    assert hostile in texts and "</svg><script>" in texts  # shown as text, escaped


def test_dead_tasks_and_recent_errors_stand_out():
    storm = make_storm(
        [
            (1, "src", "spout", spout(1), 1),
            (2, "sink", "bolt", bolt({"src": {"default": 1}}), 1),
            (3, "sink", "bolt", bolt({"src": {"default": 1}}), 120),  # dead: too old
            (4, "old", "bolt", bolt({"src": {"default": 1}}), 1),
        ],
        errors={2: [(NOW - 60, "boom")], 4: [(NOW - 31 * 60, "long ago")]},
    )
    nodes = {n.id: n for n in graph.derive_graph(storm, "all-time", NOW).nodes}
    assert (nodes["sink"].dead, nodes["sink"].recent_error) == (1, True)
    assert (nodes["old"].dead, nodes["old"].recent_error) == (0, False)
    assert nodes["old"].last_error.error == "long ago"
    svg = parsed_svg(region(storm))
    groups = {el.get("id"): el for el in svg.iter(f"{SVG}g") if "graph-node" in el.get("class", "")}
    sink = next(el for el in groups.values() if "sink" in "".join(el.itertext()))
    assert set(sink.get("class").split()) >= {"dead", "recent"}
    assert "1 dead · recent error" in "".join(sink.itertext())  # in words, not colour alone
    old = next(el for el in groups.values() if "old" in "".join(el.itertext()))
    assert "dead" not in old.get("class").split() and "recent" not in old.get("class").split()


def test_without_dot_the_graph_is_listed_as_text(monkeypatch):
    monkeypatch.setattr(graph.shutil, "which", lambda name: None)
    storm = make_storm(
        [(1, "src", "spout", spout(1), 1), (2, "sink", "bolt", bolt({"src": {"d": 1}}), 1)]
    )
    html = region(storm)
    assert "<svg" not in html
    assert "cannot be drawn here" in html
    assert 'class="graph-text"' in html  # shown, not only to screen readers
    assert "src on d (1 acked, 0 failed)" in html
    # the list is all there is: its names link to the components, once each
    assert tab_stops(html) == {
        "/storms/s-1-1/components/src/": 1,
        "/storms/s-1-1/components/sink/": 1,
    }


def test_each_component_is_one_tab_stop():
    # the SVG's nodes link to the components; the list beside it, for screen readers, names
    # them without a second, unseen tab stop each
    storm = make_storm(
        [
            (1, "src", "spout", spout(1), 1),
            (2, "sink", "bolt", bolt({"src": {"d": 1}, "ghost": {"d": 1}}), 1),
        ]
    )
    html = region(storm)
    assert tab_stops(html) == {
        "/storms/s-1-1/components/src/": 1,
        "/storms/s-1-1/components/sink/": 1,
    }
    svg_links = {a.get("href") for a in parsed_svg(html).iter(f"{SVG}a")}
    assert svg_links == set(tab_stops(html))  # the picture's links are the ones
    listed = html[html.index('<ul class="graph-text') :]
    assert "sink (bolt): 1 of 1 tasks alive" in listed  # the list still says it all
    assert "ghost (named as an input, no tasks)" in listed


def test_a_storm_without_components_shows_no_graph():
    storm = make_storm([])
    assert "No components yet." in region(storm)


def test_a_layout_is_made_once_per_structure(monkeypatch):
    calls = []
    real = graph._dot_layout
    monkeypatch.setattr(graph, "_dot_layout", lambda *a: calls.append(a) or real(*a))

    def storm_with(acked, inputs=("src",)):
        stats = bolt({c: {"default": acked} for c in inputs})
        return make_storm([(1, "src", "spout", spout(acked), 1), (2, "sink", "bolt", stats, 1)])

    first = storm_with(1)
    region(first)
    region(first)  # the same view: its drawing is cached whole
    region(storm_with(2))  # new figures, the same structure
    assert len(calls) == 1
    region(storm_with(3, ("src", "ghost")))  # a new edge and node
    assert len(calls) == 2


def test_a_hundred_components_are_all_placed_apart():
    storm = synthetic_storm(100)
    g = graph.derive_graph(storm, "all-time", storm.as_of)
    laid = graph.layout(g)
    assert len(laid.nodes) == 100
    assert set(laid.edges) == {(e.source, e.target, e.stream) for e in g.edges}
    boxes = sorted(laid.nodes.values())
    for x, y in boxes:
        assert 0 <= x and x + graph.NODE_W <= laid.width
        assert 0 <= y and y + graph.NODE_H <= laid.height
    # no two nodes overlap
    for i, (x1, y1) in enumerate(boxes):
        for x2, y2 in boxes[i + 1 :]:
            if x2 >= x1 + graph.NODE_W:
                break
            assert abs(y1 - y2) >= graph.NODE_H
    html = region(storm)
    svg = parsed_svg(html)
    assert len([el for el in svg.iter(f"{SVG}a")]) == 100  # each node links to its component
    assert 'class="graph-wrap"' in html  # a scrollable container


# -- served: the API and the storm page, over the known cluster in ZooKeeper ---------------


def expected_edges(window: str) -> dict:
    """The known cluster's healthy storm: bolt tasks 3, 4, 5 of seeds 1, 2, 3, reading
    "words" (and task 5 "other") on "default"; conftest.bolt_stats's formulas, summed."""
    k = WINDOWS.index(window) + 1
    out = {}
    for seed, inputs in ((1, ("words",)), (2, ("words",)), (3, ("words", "other"))):
        for j, source in enumerate(inputs):
            acked = 20 * seed * k + j
            row = out.setdefault(source, [0, 0, 0.0])
            row[0] += acked
            row[1] += seed + j
            row[2] += (1.5 * seed + j + k) * acked
    return {s: (a, f, f"{lat / a:.3f}") for s, (a, f, lat) in out.items()}


@pytest.mark.django_db
@pytest.mark.parametrize("query, window", [("", "all-time"), ("?window=600", "600")])
def test_the_graph_api(known_cluster, query, window):
    response = Client().get(f"/api/v1/topology/{HEALTHY}/graph{query}")
    assert response.status_code == 200
    body = response.json()
    assert body["topologyId"] == HEALTHY
    nodes = {n["id"]: n for n in body["nodes"]}
    assert [n["id"] for n in body["nodes"]] == ["words", "count", "other"]
    assert (nodes["words"]["type"], nodes["words"]["tasks"], nodes["words"]["tasksAlive"]) == (
        "spout",
        2,
        2,
    )
    assert nodes["count"]["type"] == "bolt" and nodes["count"]["tasks"] == 3
    assert nodes["other"]["missing"] is True and nodes["other"]["tasks"] == 0
    assert nodes["words"]["emittedRate"] is None  # until rates exist
    expected = expected_edges(window)
    edges = {(e["from"], e["to"], e["stream"]): e for e in body["edges"]}
    assert set(edges) == {("words", "count", "default"), ("other", "count", "default")}
    for source, (acked, failed, latency) in expected.items():
        e = edges[(source, "count", "default")]
        assert (e["acked"], e["failed"], e["processLatency"]) == (acked, failed, latency)
        assert type(e["acked"]) is int and e["ackedRate"] is None


@pytest.mark.django_db
def test_the_graph_api_refuses_what_it_cannot_show(known_cluster):
    client = Client()
    assert client.get(f"/api/v1/topology/{HEALTHY}/graph?window=7").status_code == 400
    response = client.get("/api/v1/topology/no-such-1-1/graph")
    assert response.status_code == 404 and "error" in response.json()
    troubled = client.get(f"/api/v1/topology/{TROUBLED}/graph?window=:all-time").json()
    nodes = {n["id"]: n for n in troubled["nodes"]}
    assert nodes["sink"]["tasksAlive"] < nodes["sink"]["tasks"]
    assert nodes["sink"]["recentError"] is True and nodes["sink"]["lastError"]
    assert nodes["words"]["missing"] is True  # a stale sink task's stats name it
    assert nodes["mystery"]["type"] == "unknown"


@pytest.mark.django_db
def test_the_storm_page_draws_the_graph(known_cluster):
    html = Client().get(f"/storms/{HEALTHY}/").content.decode()
    svg = parsed_svg(html)
    links = {a.get("href") for a in svg.iter(f"{SVG}a")}
    assert links == {
        f"/storms/{HEALTHY}/components/words/",
        f"/storms/{HEALTHY}/components/count/",
    }
    assert svg.find(f"{SVG}title").text == "The storm healthy as a graph"


def test_a_new_input_changes_the_graph():
    # what the live update renders: a new bolt task naming a new input adds a node and an edge
    before = make_storm([(1, "src", "spout", spout(1), 1), (2, "sink", "bolt", bolt({}), 1)])
    after = make_storm(
        [
            (1, "src", "spout", spout(1), 1),
            (2, "sink", "bolt", bolt({}), 1),
            (3, "sink", "bolt", bolt({"src": {"default": 9}}), 1),
        ]
    )
    assert "graph-edge" not in region(before)
    assert "src → sink, stream default: 9 acked" in region(after)
