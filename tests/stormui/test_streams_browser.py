"""A component page's stream tables in a real chromium: they update live, and a fold of
system streams that the reader opened stays open through the updates."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import expect

from clusterstate import TaskHeartbeat
from tests.stormui import browser as chromium
from tests.stormui.conftest import HEALTHY, spout_stats
from tests.stormui.served import Served

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

browser = chromium.browser
page = chromium.page


@pytest.fixture(scope="module")
def served(zk_server, tmp_path_factory):
    s = Served(zk_server, tmp_path_factory.mktemp("streams-browser"))
    yield s
    s.close()


def test_stream_tables_update_live_and_an_opened_fold_stays_open(page, served):
    chromium.open_page(page, served.url + f"/storms/{HEALTHY}/components/words/")
    page.wait_for_selector("#live-status[data-state=live]")
    page.evaluate("window.__noReload = 1")
    default = page.locator('#output-stats tr[data-stream="default"] [data-field=emitted]')
    expect(default).to_have_text("1,200")  # spout_stats(1) + spout_stats(2), all time
    fold = page.locator("#output-stats-system-details")
    system = page.locator('#output-stats-system tr[data-stream="__ack_init"] [data-field=emitted]')
    expect(fold).not_to_have_attribute("open", "")
    fold.locator("summary").click()
    expect(system).to_be_visible()
    expect(system).to_have_text("84")

    served.writer.set_task_heartbeat(
        HEALTHY, 1, TaskHeartbeat(int(time.time()), 60, spout_stats(9))
    )
    expect(default).to_have_text("4,400")  # 9 * 400 + 2 * 400
    expect(system).to_have_text("308")  # 9 * 28 + 2 * 28
    expect(fold).to_have_attribute("open", "")  # the update kept what the reader opened
    expect(system).to_be_visible()
    assert page.evaluate("window.__noReload") == 1
    assert page.watch.errors == [] and page.watch.dialogs == []
