"""The pages in a real chromium: what a person sees, and that data never runs as script."""

from __future__ import annotations

import pytest

from tests.stormui import browser as chromium
from tests.stormui.conftest import HEALTHY, HOSTILE_ERROR, MULTILINE_ERROR, PAUSED, TROUBLED

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# the fixtures: a session-wide chromium and a fresh page per test
browser = chromium.browser
page = chromium.page
open_page = chromium.open_page


def test_cluster_page_lists_storms_and_sorts_by_clicked_column(page, live_server, known_cluster):
    open_page(page, live_server.url + "/")
    names = page.locator("#storm-table tbody tr td[data-field=name] a")
    shown = names.all_inner_texts()
    assert {"healthy", "troubled", PAUSED} <= set(shown)
    assert page.locator("#zk-status").inner_text() == "ZooKeeper connected"

    # clicking "Tasks" sorts by task count, numerically, then the other way
    tasks = page.locator("#storm-table tbody td[data-field=tasks]")
    header = page.locator("#storm-table thead th", has_text="Tasks")
    header.click()
    ascending = [int(t) for t in tasks.all_inner_texts()]
    assert ascending == sorted(ascending)
    assert header.get_attribute("aria-sort") == "ascending"
    header.click()
    descending = [int(t) for t in tasks.all_inner_texts()]
    assert descending == sorted(ascending, reverse=True)
    assert page.locator("#storm-table tbody tr").first.get_attribute("data-storm-id") == TROUBLED

    # by name, alphabetically
    page.locator("#storm-table thead th", has_text="Name").click()
    assert names.all_inner_texts() == sorted(shown, key=str.lower)

    lost = page.locator(
        f"#supervisor-table tr[data-supervisor-id='{known_cluster.lost_supervisor}']"
    )
    assert "lost" in lost.inner_text().lower()
    assert lost.locator(".badge-lost").is_visible()
    assert page.watch.errors == []


def test_storm_and_component_pages_show_dead_tasks_and_errors_as_text(
    page, live_server, known_cluster
):
    open_page(page, f"{live_server.url}/storms/{HEALTHY}/")
    assert page.locator("#storm-name").inner_text() == "healthy"
    assert page.locator("#storm-status").inner_text() == "ACTIVE"
    assert page.locator("#spout-table tr[data-component-id=words]").is_visible()

    open_page(page, f"{live_server.url}/storms/{TROUBLED}/")
    sink = page.locator("#bolt-table tr[data-component-id=sink] td[data-field=alive]")
    assert "2 DEAD" in sink.inner_text().upper()

    # the sink component: its dead tasks say so; the <script> error is shown, never run
    page.locator("#bolt-table a", has_text="sink").click()
    page.wait_for_url(f"**/storms/{TROUBLED}/components/sink/")
    dead = page.locator("#task-table tr[data-task-id='11']")
    assert "dead" in dead.get_attribute("class")
    assert dead.locator("td[data-field=state]").inner_text().lower() == "dead"
    alive = page.locator("#task-table tr[data-task-id='13'] td[data-field=state]")
    assert alive.inner_text() == "alive"
    hostile = page.locator("#component-errors pre", has_text="<script>")
    assert hostile.inner_text() == HOSTILE_ERROR
    assert page.evaluate("document.querySelectorAll('#component-errors script').length") == 0
    assert page.watch.dialogs == []
    assert page.watch.errors == []


def test_task_page_shows_the_whole_error_with_its_line_breaks(page, live_server, known_cluster):
    open_page(page, f"{live_server.url}/storms/{TROUBLED}/tasks/10/")
    assert page.locator("#task-state").inner_text() == "alive"
    error = page.locator("#task-errors pre", has_text="java.lang.RuntimeException: boom")
    assert error.inner_text() == MULTILINE_ERROR
    assert error.evaluate("e => getComputedStyle(e).whiteSpace") == "pre-wrap"
    # not cut off: the last frame is there and the box is as tall as its lines
    box = error.bounding_box()
    assert box["height"] > 200 * 10
    assert page.locator("#task-errors li").first.evaluate("e => e.classList.contains('recent')")

    open_page(page, f"{live_server.url}/storms/{TROUBLED}/tasks/11/")
    assert page.locator("h1 .badge-dead").inner_text().lower() == "dead"


def test_supervisor_page_and_not_found(page, live_server, known_cluster):
    open_page(page, f"{live_server.url}/supervisors/")
    table = page.locator("#supervisor-table")
    assert table.locator("tr[data-supervisor-id=sup-a] td[data-field=state]").inner_text() == "ok"
    page.locator("#supervisor-table a", has_text="sup-a").click()
    page.wait_for_url("**/supervisors/sup-a/")
    assert page.locator("#supervisor-host").inner_text() == "host-a.example"
    chips = page.locator("#worker-table a.task-chip")
    assert chips.count() == sum(1 for t in known_cluster.tasks.values() if t.node == "sup-a")

    open_page(page, f"{live_server.url}/storms/a%2Fb/", status=404)
    open_page(page, f"{live_server.url}/storms/no-such-storm/", status=404)
    assert page.locator("h1").inner_text() == "Not found"


def test_pages_work_with_javascript_off(browser, live_server, known_cluster):
    context = browser.new_context(java_script_enabled=False)
    try:
        tab = context.new_page()
        open_page(tab, f"{live_server.url}/errors/?storm={TROUBLED}&q=timeout")
        items = tab.locator("#error-feed li pre").all_inner_texts()
        assert items == ["timeout B", "timeout A"]
        tab.locator("#filter-q").fill("")
        tab.locator("#error-filters button[type=submit]").click()
        tab.wait_for_url("**/errors/?storm=*")
        assert tab.locator("#error-feed li").count() == len(known_cluster.errors(TROUBLED))
    finally:
        context.close()


def test_narrow_screen_scrolls_tables_not_the_page(page, live_server, known_cluster):
    page.set_viewport_size({"width": 380, "height": 800})
    open_page(page, f"{live_server.url}/storms/{TROUBLED}/components/sink/")
    page_width = page.evaluate("document.documentElement.scrollWidth")
    assert page_width <= 380 + 1
    wrap = page.locator("#task-table").locator("xpath=..")
    assert wrap.evaluate("e => e.scrollWidth > e.clientWidth")
