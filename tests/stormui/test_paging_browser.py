"""A big table in a real chromium: filtered and paged through its form and links, the page
and filter in the address, and a live change shown on that page, not the first."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import expect

from bench import live_servers
from clusterstate import Assignment, StormBase, TaskHeartbeat, TaskInfo
from tests.stormui import browser as chromium
from tests.stormui.conftest import bolt_stats
from tests.stormui.served import Served

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]

browser = chromium.browser
page = chromium.page
open_page = chromium.open_page

WIDE = "wide-7-7000"
TASKS = 250  # even tasks on sup-a (host-a), odd ones on sup-b


@pytest.fixture(scope="module")
def served(zk_server, tmp_path_factory, server_database_factory):
    folder = tmp_path_factory.mktemp("paging-browser")
    # the server runs this tree's code, wherever the tests run from
    env = {"PYTHONPATH": str(live_servers.ROOT)}
    s = Served(zk_server, folder, server_database_factory(folder), extra_env=env)
    now = int(time.time())
    w = s.writer
    w.activate_storm(WIDE, StormBase("wide", now - 60))
    w.setup_heartbeats(WIDE)
    for t in range(1, TASKS + 1):
        w.set_task(WIDE, t, TaskInfo("fan", "bolt"))
        w.set_task_heartbeat(WIDE, t, TaskHeartbeat(now, 50, bolt_stats(t)))
    w.set_assignment(
        WIDE,
        Assignment(
            f"/nimbus/{WIDE}",
            {"sup-a": "host-a.example", "sup-b": "host-b.example"},
            {t: ["sup-a" if t % 2 == 0 else "sup-b", 6701] for t in range(1, TASKS + 1)},
            {t: now - 50 for t in range(1, TASKS + 1)},
        ),
    )
    s.wait_served(WIDE)
    yield s
    s.close()


def task_rows(page) -> list[str]:
    return page.locator("#task-table tbody tr").evaluate_all("rows => rows.map(r => r.id)")


def test_filter_then_next_page_and_a_live_change_keeps_both(page, served):
    open_page(page, f"{served.url}/storms/{WIDE}/components/fan/")
    page.wait_for_selector("#live-status[data-state=live]")
    assert task_rows(page) == [f"task-{t}" for t in range(1, 101)]
    expect(page.locator("#tasks-pager")).to_contain_text("1–100 of 250")

    # the form: the page's tasks on host-a (125, even ones), the filter in the address
    page.fill("#tasks-filter-q", "host-a")
    page.press("#tasks-filter-q", "Enter")
    page.wait_for_url("**tasks_q=host-a**")
    page.wait_for_selector("#live-status[data-state=live]")
    assert task_rows(page) == [f"task-{t}" for t in range(2, 201, 2)]
    expect(page.locator("#tasks-pager")).to_contain_text("matching “host-a” (250 in all)")

    # next: the second page, filter kept
    page.click("#tasks-pager a[rel=next]")
    page.wait_for_url("**tasks_page=2**")
    query = parse_qs(urlsplit(page.url).query)
    assert query == {"tasks_q": ["host-a"], "tasks_page": ["2"]}
    page.wait_for_selector("#live-status[data-state=live]")
    assert task_rows(page) == [f"task-{t}" for t in range(202, 251, 2)]
    page.evaluate("window.__noReload = 1")

    # a live change of a task on this page shows there, and the page stays this page
    served.writer.report_task_error(WIDE, 250, "wide storm's own error")
    last_error = page.locator("#task-250 [data-field=last-error]")
    expect(last_error).to_contain_text("wide storm's own error")
    assert task_rows(page) == [f"task-{t}" for t in range(202, 251, 2)]
    expect(page.locator("#tasks-pager")).to_contain_text("101–125 of 125")
    assert page.evaluate("window.__noReload") == 1
    assert page.watch.errors == [] and page.watch.dialogs == []
