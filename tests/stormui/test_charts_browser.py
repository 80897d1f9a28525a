"""The storm page's charts in a real chromium: a new heartbeat changes the chart's
latest value, live, without a reload."""

from __future__ import annotations

import re
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

KNOWN_RATE = re.compile(r"^Emitted: [\d.,]+/s now")


@pytest.fixture(scope="module")
def served(zk_server, tmp_path_factory):
    s = Served(zk_server, tmp_path_factory.mktemp("charts-browser"))
    yield s
    s.close()


def test_the_storm_chart_says_its_latest_rate_live(page, served):
    chromium.open_page(page, served.url + f"/storms/{HEALTHY}/")
    page.wait_for_selector("#live-status[data-state=live]")
    page.evaluate("window.__noReload = 1")
    words = page.locator("#storm-chart-rates-words li").first
    rates_line = page.locator("#storm-rates [data-field=emitted-rate]")
    expect(page.locator("#storm-chart-rates svg title").first).to_contain_text("Tuples per second")

    # two beats of task 1, ten seconds apart: 428 emitted a second (spout_stats' 428 * seed)
    at = int(time.time()) + 10
    served.writer.set_task_heartbeat(HEALTHY, 1, TaskHeartbeat(at, 60, spout_stats(9)))
    expect(words).to_have_text(KNOWN_RATE)
    served.writer.set_task_heartbeat(HEALTHY, 1, TaskHeartbeat(at + 10, 70, spout_stats(19)))
    expect(words).to_contain_text("Emitted: 428/s now")
    expect(rates_line).to_have_text("428")
    assert page.locator("#storm-chart-rates svg .chart-line.emitted").count() == 1
    assert page.evaluate("window.__noReload") == 1
    assert page.watch.errors == [] and page.watch.dialogs == []
