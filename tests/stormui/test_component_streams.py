"""A component page's per-stream tables (input and output stats), over the known cluster."""

from __future__ import annotations

import pytest

from tests.stormui.conftest import HEALTHY, TROUBLED
from tests.stormui.test_views import get_page, number

pytestmark = pytest.mark.django_db


def rows(table):
    return {r.attrs["data-stream"]: r for r in table.find_all("tr") if "data-stream" in r.attrs}


def test_spout_page_output_stats_with_system_streams_folded(client, known_cluster):
    # words: tasks 1 and 2 (spout_stats seeds 1 and 2), all time (k = 4)
    doc = get_page(client, f"/storms/{HEALTHY}/components/words/")
    region = doc.by_id("component-streams-region")
    assert region.find(id="input-stats") is None  # a spout has no input
    out = rows(doc.by_id("output-stats"))
    assert list(out) == ["default", "other"]
    assert number(out["default"].field("emitted")) == 1200
    assert number(out["default"].field("acked")) == 960
    assert out["default"].field("latency") == f"{(14.0 * 320 + 24.0 * 640) / 960:.2f}"  # 20.67
    assert number(out["other"].field("acked")) == 40
    # system streams: apart, in a <details> that is closed by default
    details = doc.by_id("output-stats-system-details")
    assert details.tag == "details" and "open" not in details.attrs
    system = rows(doc.by_id("output-stats-system"))
    assert list(system) == ["__ack_init"]
    assert number(system["__ack_init"].field("emitted")) == 84


def test_bolt_page_input_stats_follow_the_window(client, known_cluster):
    # sink at 3 hours (k = 2): task 12 reads words (seed 4), task 13 reads src (seed 6)
    doc = get_page(client, f"/storms/{TROUBLED}/components/sink/?window=10800")
    table = doc.by_id("input-stats")
    found = {r.attrs["data-component-id"]: r for r in table.find_all("tr", data_stream="default")}
    assert set(found) == {"src", "words"}
    assert number(found["src"].field("acked")) == 240
    assert number(found["words"].field("acked")) == 160
    assert number(found["words"].field("failed")) == 4
    # src is a component of this storm: linked; words runs no task here: marked
    assert found["src"].find("a") is not None
    assert found["words"].find("a") is None and "no tasks" in found["words"].field("component")
    out = rows(doc.by_id("output-stats"))
    assert number(out["default"].field("emitted")) == 800
    assert doc.find(id="output-stats-system-details") is None  # no system stream here
    # the Storm spelling of the window is taken too
    doc = get_page(client, f"/storms/{TROUBLED}/components/sink/?window=:all-time")
    assert doc.by_id("input-stats") is not None


def test_odd_ids_from_stats_never_break_the_region():
    # input components and streams are named by heartbeats' stats: any string at all
    from types import SimpleNamespace

    from django.template.loader import render_to_string

    from stormui.cluster import InputStreamStats, OutputStreamStats

    odd = "a/b <c>"
    storm = SimpleNamespace(id="s-1-1", components={odd: object()})
    html = render_to_string(
        "stormui/regions/component_streams.html",
        {
            "storm": storm,
            "window": "600",
            "streams": {
                "spout": False,
                "inputs": [
                    InputStreamStats(odd, "", acked=1, unreadable=True),
                    InputStreamStats("gone", "x\"'", acked=2),
                ],
                "inputs_system": [],
                "outputs": [OutputStreamStats("<s>", emitted=3)],
                "outputs_system": [OutputStreamStats("__system", emitted=4)],
            },
        },
    )
    assert "<c>" not in html and "<s>" not in html  # escaped
    assert 'href="#' not in html  # no URL can hold the id: shown, not linked
    assert "no tasks" in html and "unreadable" in html
    assert html.count("<details") == 1
