"""Live pages in a real chromium against a real daphne: changes written into ZooKeeper show
up on open pages without a reload, and the connection indicator tells the truth."""

from __future__ import annotations

import re
import signal
import time

import pytest
from playwright.sync_api import expect

from clusterstate import (
    Assignment,
    StormBase,
    SupervisorInfo,
    TaskHeartbeat,
    TaskInfo,
)
from tests.stormui import browser as chromium
from tests.stormui.conftest import HEALTHY, PAUSED, bolt_stats
from tests.stormui.served import Served

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

browser = chromium.browser
page = chromium.page
open_page = chromium.open_page
was_highlighted = chromium.was_highlighted

HOSTILE = '<img src=x onerror="alert(1)"> & <script>alert(2)</script>'


@pytest.fixture(scope="module")
def served(zk_server, tmp_path_factory, server_database_factory):
    folder = tmp_path_factory.mktemp("live-browser")
    s = Served(zk_server, folder, server_database_factory(folder))
    yield s
    s.close()


def wait_live(page):
    page.wait_for_selector("#live-status[data-state=live]")
    assert page.locator("#live-indicator").is_visible()
    assert page.locator("#live-status").inner_text() == "Live"


def test_cluster_page_updates_in_place(page, served):
    open_page(page, served.url + "/")
    wait_live(page)
    page.evaluate("window.__noReload = 1")
    row = page.locator(f'#storm-table tr[data-storm-id="{PAUSED}"] [data-field=status]')
    assert row.inner_text() == "INACTIVE"
    storms_before = int(page.locator("#storms-count").inner_text())

    served.writer.activate_storm(PAUSED, StormBase("paused", int(time.time())))
    expect(row).to_have_text("ACTIVE")

    # a new storm gets a row of its own, and the counts follow
    served.submit("fresh-9-9000", "fresh")
    fresh = page.locator('#storm-table tr[data-storm-id="fresh-9-9000"]')
    fresh.wait_for()
    assert fresh.locator("[data-field=name] a").inner_text() == "fresh"
    assert fresh.locator("[data-field=name] a").get_attribute("href") == "/storms/fresh-9-9000/"
    expect(page.locator("#storms-count")).to_have_text(str(storms_before + 1))

    # a heartbeat gone: a task dies (the known cluster's beats are refreshed first, since
    # they age out by the clock alone)
    now = int(time.time())
    for task in range(1, 6):
        served.writer.set_task_heartbeat(HEALTHY, task, TaskHeartbeat(now, 100, None))
    healthy_alive = page.locator(f'#storm-table tr[data-storm-id="{HEALTHY}"] [data-field=alive]')
    expect(healthy_alive).to_have_text("5")
    served.writer.remove_task_heartbeat(HEALTHY, 5)
    expect(healthy_alive).to_have_text("4 1 dead")
    assert page.evaluate("window.__noReload") == 1  # all of it without a reload
    assert page.watch.errors == [] and page.watch.dialogs == []


def test_error_feed_streams_filters_and_pauses(page, served):
    open_page(page, served.url + "/errors/")
    wait_live(page)
    feed = page.locator("#error-feed > li")
    before = feed.count()

    served.writer.report_task_error(HEALTHY, 3, HOSTILE)
    first = page.locator("#error-feed > li").first
    expect(feed).to_have_count(before + 1)
    # newest on top, as text, linking to its task
    assert first.locator(".error-text").inner_text() == HOSTILE
    assert first.get_attribute("data-storm-id") == HEALTHY
    assert first.get_attribute("data-component-id") == "count"
    assert first.locator("a", has_text="task 3").get_attribute("href") == (
        f"/storms/{HEALTHY}/tasks/3/"
    )
    assert was_highlighted(first)
    assert page.locator("#error-feed img, #error-feed script").count() == 0

    # filters apply to what is there and to what streams in
    page.fill("#filter-q", "only-this-text")
    assert page.locator("#error-feed > li:not([hidden])").count() == 0
    served.writer.report_task_error(HEALTHY, 4, "has only-this-text inside")
    served.writer.report_task_error(HEALTHY, 4, "filtered out")
    expect(feed).to_have_count(before + 3)
    visible = page.locator("#error-feed > li:not([hidden]) .error-text")
    assert visible.all_inner_texts() == ["has only-this-text inside"]
    page.fill("#filter-q", "")
    assert page.locator("#error-feed > li:not([hidden])").count() == before + 3

    # paused: buffered and counted; resumed: inserted, newest on top
    page.click("#feed-pause")
    served.writer.report_task_error(HEALTHY, 2, "while paused 1")
    served.writer.report_task_error(HEALTHY, 2, "while paused 2")
    expect(page.locator("#feed-buffered")).to_have_text("2 new errors waiting")
    assert feed.count() == before + 3
    page.click("#feed-pause")
    expect(feed).to_have_count(before + 5)
    texts = page.locator("#error-feed > li .error-text").all_inner_texts()
    assert texts[:2] == ["while paused 2", "while paused 1"]
    assert page.watch.errors == [] and page.watch.dialogs == []


def test_reconnects_and_resyncs_after_the_server_comes_back(page, served):
    open_page(page, served.url + "/")
    wait_live(page)
    served.stop()
    page.wait_for_selector("#live-status[data-state=reconnecting]")
    assert "stale" in page.locator("#live-status").inner_text()
    # what changes while the page is cut off arrives with the fresh snapshot
    served.submit("while-away-8-8000", "while-away")
    served.start()
    wait_live(page)
    page.locator('#storm-table tr[data-storm-id="while-away-8-8000"]').wait_for()
    assert page.watch.errors == []


@pytest.fixture(scope="module")
def ticking(zk_server, tmp_path_factory):
    """A daphne of its own whose relay ticks every second (a test stops it outright)."""
    folder = tmp_path_factory.mktemp("live-ticking")
    s = Served(zk_server, folder, extra_env={"STORMUI_TICK_SECS": "1"})
    yield s
    s.proc.send_signal(signal.SIGCONT)  # a stopped process would not hear the stop
    s.close()


def test_a_page_that_hears_nothing_says_it_is_stale_until_news_comes(page, ticking):
    open_page(page, ticking.url + "/errors/")  # a page whose socket gets no figures: ticks
    wait_live(page)
    assert page.locator("#data-status").get_attribute("data-tick-secs") == "1"
    # the socket stays open but nothing comes: the relaying process is stopped outright
    ticking.proc.send_signal(signal.SIGSTOP)
    try:
        page.wait_for_selector("#live-status[data-state=stale]")
        expect(page.locator("#live-status")).to_have_text(
            re.compile(r"^Connected, but stale: no news for \d+ s$")
        )
    finally:
        ticking.proc.send_signal(signal.SIGCONT)
    wait_live(page)  # the next tick clears it
    assert page.watch.errors == []


def test_component_and_task_pages_update_in_place(page, served):
    # the bolt's tasks beat afresh with known stats (other tests change them)
    for task in (3, 4, 5):
        beat = TaskHeartbeat(int(time.time()), 50, bolt_stats(1))
        served.writer.set_task_heartbeat(HEALTHY, task, beat)
    open_page(page, served.url + f"/storms/{HEALTHY}/components/count/?window=600")
    wait_live(page)
    page.evaluate("window.__noReload = 1")
    row = page.locator('#task-table tr[data-task-id="3"]')
    emitted = row.locator("[data-field=emitted]")
    expect(emitted).to_have_text("40")  # bolt_stats(1), ten minutes

    # a new heartbeat: the task's numbers for the page's window, its age and the component's
    served.writer.set_task_heartbeat(
        HEALTHY, 3, TaskHeartbeat(int(time.time()), 100, bolt_stats(9))
    )
    expect(emitted).to_have_text("360")
    expect(row.locator("[data-field=uptime]")).to_have_text("1m 40s")
    # an age in seconds: the heartbeat just written (a busy machine may take a while to show it)
    expect(row.locator("[data-field=heartbeat-age]")).to_have_text(
        re.compile(r"^(just now|\d+s ago)$")
    )
    comp_600 = page.locator('#component-stats tr[data-window="600"] [data-field=emitted]')
    expect(comp_600).to_have_text(str(360 + 40 + 40))

    # a new error of the component: on top, highlighted, as text; the task's row follows
    # (a text of its own: the feed's test reported HOSTILE on this task already)
    hostile = HOSTILE + " (count)"
    served.writer.report_task_error(HEALTHY, 3, hostile)
    first = page.locator("#component-errors > li").first
    expect(first.locator(".error-text")).to_have_text(hostile)
    assert was_highlighted(first)
    assert first.locator(".live-new-badge").text_content() == "new"
    expect(row.locator("[data-field=last-error] .error-line")).to_have_text(hostile)
    assert page.locator("main img, main script").count() == 0
    assert page.evaluate("window.__noReload") == 1

    open_page(page, served.url + f"/storms/{HEALTHY}/tasks/3/")
    wait_live(page)
    page.evaluate("window.__noReload = 1")
    all_time = page.locator('#task-stats tr[data-window="all-time"] [data-field=emitted]')
    assert all_time.inner_text() == "1,440"  # bolt_stats(9), all time
    served.writer.set_task_heartbeat(
        HEALTHY, 3, TaskHeartbeat(int(time.time()), 200, bolt_stats(11))
    )
    expect(all_time).to_have_text("1,760")
    expect(page.locator("#task-uptime")).to_have_text("3m 20s")
    served.writer.report_task_error(HEALTHY, 3, "task three\nsecond line")
    item = page.locator("#task-errors > li").first
    expect(item.locator(".error-text")).to_have_text("task three\nsecond line")
    assert was_highlighted(item)
    second = page.locator("#task-errors > li").nth(1).locator(".error-text").inner_text()
    assert second == HOSTILE + " (count)"
    assert page.evaluate("window.__noReload") == 1
    assert page.watch.errors == [] and page.watch.dialogs == []


def test_supervisor_pages_update_in_place(page, served):
    for task in (1, 3, 5):  # sup-a's worker of the healthy storm, all beating
        served.writer.set_task_heartbeat(HEALTHY, task, TaskHeartbeat(int(time.time()), 60, None))
    open_page(page, served.url + "/supervisors/")
    wait_live(page)
    page.evaluate("window.__noReload = 1")
    section = page.locator('section.supervisor-detail[data-supervisor-id="sup-a"]')
    row = section.locator(f'tr[data-storm-id="{HEALTHY}"][data-port="6700"]')
    expect(row.locator("[data-field=alive]")).to_have_text("3")
    chip = row.locator('a.task-chip[data-task-id="3"]')
    component = chip.locator(".muted").inner_text()

    # a task dies: its worker's count and chip follow, the chip keeps its component
    served.writer.remove_task_heartbeat(HEALTHY, 3)
    expect(row.locator("[data-field=alive]")).to_have_text("2")
    expect(chip).to_have_class(re.compile(r"\bdead\b"))
    assert chip.locator(".badge-dead").count() == 1
    assert chip.locator(".muted").inner_text() == component == "(count)"

    # a new storm's worker gets a row, its tasks linked
    served.submit("suplive-7-7000", "suplive")
    fresh = section.locator('tr[data-storm-id="suplive-7-7000"][data-port="6703"]')
    expect(fresh.locator("[data-field=storm] a")).to_have_text("suplive")
    assert fresh.locator("a.task-chip").get_attribute("href") == "/storms/suplive-7-7000/tasks/1/"

    # a lost supervisor beats again, then goes quiet: the badge follows both ways
    stale = served.known.supervisors["sup-stale"]
    stale_section = page.locator('section.supervisor-detail[data-supervisor-id="sup-stale"]')
    lost_badge = stale_section.locator("h2 .badge-lost")
    expect(lost_badge).to_have_count(1)

    def beat(age):
        info = SupervisorInfo(
            int(time.time()) - age, stale.hostname, stale.worker_ports, stale.uptime_secs
        )
        served.writer.set_supervisor_heartbeat("sup-stale", info)

    beat(0)
    expect(lost_badge).to_have_count(0)
    expect(stale_section).not_to_have_class(re.compile(r"\blost\b"))
    assert page.evaluate("window.__noReload") == 1

    open_page(page, served.url + "/supervisors/sup-stale/")
    wait_live(page)
    page.evaluate("window.__noReload = 1")
    assert page.locator("#supervisor-state").inner_text() == "ok"
    beat(120)
    expect(page.locator("#supervisor-state")).to_have_text("lost")
    expect(page.locator("h1 .badge-lost")).to_have_count(1)
    assert page.evaluate("window.__noReload") == 1
    assert page.watch.errors == [] and page.watch.dialogs == []


def test_storm_page_adds_and_removes_component_rows(page, served):
    storm_id = "grow-6-6000"
    served.submit(storm_id, "grow")
    served.wait_served(storm_id)
    open_page(page, served.url + f"/storms/{storm_id}/")
    wait_live(page)
    page.evaluate("window.__noReload = 1")
    assert page.locator("#spout-table tr[data-component-id]").count() == 1
    expect(page.locator("#bolt-table-empty")).to_be_visible()

    def assign(tasks):
        now = int(time.time())
        served.writer.set_assignment(
            storm_id,
            Assignment(
                f"/nimbus/{storm_id}",
                {"sup-a": "host-a.example"},
                {t: ["sup-a", 6703] for t in tasks},
                dict.fromkeys(tasks, now),
            ),
        )

    # a bolt appears: the bolts table is made, with its row linking to it
    served.writer.set_task(storm_id, 2, TaskInfo("adder", "bolt"))
    assign([1, 2])
    row = page.locator('#bolt-table tr[data-component-id="adder"]')
    expect(row.locator("[data-field=id] a")).to_have_attribute(
        "href", f"/storms/{storm_id}/components/adder/"
    )
    assert row.locator("[data-field=tasks]").inner_text() == "1"
    expect(page.locator("#bolt-table-empty")).to_be_hidden()

    # and vanishes again
    assign([1])
    served.state.delete_node(f"/tasks/{storm_id}/2")
    expect(row).to_have_count(0)
    expect(page.locator("#bolt-table-empty")).to_be_visible()
    assert page.locator("#spout-table tr[data-component-id]").count() == 1
    assert page.evaluate("window.__noReload") == 1
    assert page.watch.errors == [] and page.watch.dialogs == []


def test_a_live_update_keeps_the_users_sort_and_focus(page, served):
    open_page(page, served.url + "/")
    wait_live(page)
    page.evaluate("window.__noReload = 1")
    name = page.locator("#storm-table thead th", has_text="Name")
    name.click()
    name.click()  # descending
    expect(name).to_have_attribute("aria-sort", "descending")
    names = page.locator("#storm-table tbody [data-field=name] a")

    def descending():
        shown = names.all_inner_texts()
        return shown == sorted(shown, key=str.lower, reverse=True)

    assert descending()
    focused = "document.activeElement.textContent.trim()"
    assert page.evaluate(focused) == "Name"
    # a storm that sorts first by name arrives while the user sorts the other way
    storm_id = "aaa-first-5-5000"
    served.submit(storm_id, "aaa-first")
    row = page.locator(f'#storm-table tr[data-storm-id="{storm_id}"]')
    row.wait_for()
    assert page.locator("#storm-table tbody tr").last.get_attribute("data-storm-id") == storm_id
    assert descending()
    expect(name).to_have_attribute("aria-sort", "descending")
    # the row came in highlighted; the focus stayed where the user left it
    assert was_highlighted(row)
    assert page.evaluate(focused) == "Name"
    assert page.evaluate("window.__noReload") == 1
    assert page.watch.errors == [] and page.watch.dialogs == []


def graph_tab_stops(page) -> list[str]:
    """The hrefs a keyboard user tabs to inside the graph region, in order: Tab from its
    heading until the focus leaves the region."""
    page.evaluate(
        "() => { const h = document.getElementById('graph-heading'); h.tabIndex = -1; h.focus(); }"
    )
    inside = "() => document.activeElement.closest('#storm-graph') !== null"
    stops = []
    page.keyboard.press("Tab")
    while page.evaluate(inside):
        stops.append(page.evaluate("() => document.activeElement.getAttribute('href')"))
        page.keyboard.press("Tab")
    return stops


def test_storm_graph_grows_live_when_a_bolt_names_a_new_input(page, served):
    storm_id = "graph-7-7000"
    served.submit(storm_id, "graph")
    served.wait_served(storm_id)
    open_page(page, served.url + f"/storms/{storm_id}/")
    wait_live(page)
    page.evaluate("window.__noReload = 1")
    nodes = page.locator("#storm-graph svg .graph-node")
    edges = page.locator("#storm-graph svg .graph-edge")
    expect(nodes).to_have_count(1)
    expect(edges).to_have_count(0)

    # a bolt task appears and beats: its stats name the spout, on a stream, as its input
    now = int(time.time())
    served.writer.set_task(storm_id, 2, TaskInfo("counter", "bolt"))
    served.writer.set_assignment(
        storm_id,
        Assignment(
            f"/nimbus/{storm_id}",
            {"sup-a": "host-a.example"},
            {1: ["sup-a", 6703], 2: ["sup-a", 6703]},
            {1: now, 2: now},
        ),
    )
    served.writer.set_task_heartbeat(
        storm_id, 2, TaskHeartbeat(now, 10, bolt_stats(1, ("spout-x",)))
    )
    expect(nodes).to_have_count(2)
    edge = page.locator("#storm-graph svg .graph-edge title")
    expect(edge).to_have_count(1)
    expect(edge).to_contain_text("spout-x → counter, stream default")
    counter = page.locator("#storm-graph svg .graph-node a", has_text="counter")
    assert counter.get_attribute("href") == f"/storms/{storm_id}/components/counter/"
    expect(page.locator("#storm-graph .graph-text")).to_contain_text("inputs: spout-x on default")
    # a keyboard user reaches each component once in the graph, by a link named for it
    assert graph_tab_stops(page) == [
        f"/storms/{storm_id}/components/spout-x/",
        f"/storms/{storm_id}/components/counter/",
    ]
    graph = page.locator("#storm-graph")
    expect(graph.get_by_role("link", name=re.compile(r"^counter \(bolt\)"))).to_have_count(1)

    # and another input, with no tasks of its own: drawn, marked
    served.writer.set_task_heartbeat(
        storm_id, 2, TaskHeartbeat(now + 1, 11, bolt_stats(1, ("spout-x", "elsewhere")))
    )
    expect(page.locator("#storm-graph svg .graph-node.missing")).to_have_count(1)
    expect(edge).to_have_count(2)
    assert page.evaluate("window.__noReload") == 1
    assert page.watch.errors == [] and page.watch.dialogs == []
