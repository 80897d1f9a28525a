"""Script in an error's text stays text, in chromium, on every page that shows errors, as
served and as it arrives live. The policy would stop an injected script running anyway, so
the tests look for the markup itself: no element an error's text could have made, and no
policy violation (which an injected handler would cause)."""

from __future__ import annotations

import json
import urllib.request

import pytest

from tests.helpers import wait_for
from tests.stormui import browser as chromium
from tests.stormui.conftest import HEALTHY
from tests.stormui.served import Served

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

browser = chromium.browser
page = chromium.page

SCRIPT = "<script>window.__xss=1</script>"
IMG = '<img src=x onerror="window.__xss=2">'
HOSTILE = f'{SCRIPT} then {IMG} & "quotes"\nsecond line <b>bold?</b>'
LIVE_HOSTILE = f'live {IMG} <svg onload="window.__xss=3"></svg> {SCRIPT}'

WATCH = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', e => window.__csp.push(e.violatedDirective));
"""
# elements a hostile text would have made: any svg but the graph and charts the server draws
INJECTED = (
    "document.querySelectorAll("
    "'img, svg:not(svg.storm-graph):not(svg.chart), b, main script, .error-text *').length"
)


def api_error_texts(base_url: str) -> list[str]:
    with urllib.request.urlopen(base_url + "/api/errors", timeout=chromium.WAIT_MS / 1000) as r:
        return [e["error"] for e in json.load(r)["errors"]]


@pytest.fixture(scope="module")
def served(zk_server, tmp_path_factory, server_database_factory):
    folder = tmp_path_factory.mktemp("xss")
    s = Served(zk_server, folder, server_database_factory(folder))
    # hostile errors on task 1 of the healthy storm, once the served dashboard holds them
    s.writer.report_task_error(HEALTHY, 1, HOSTILE)
    wait_for(
        lambda: HOSTILE in api_error_texts(s.url),
        timeout=chromium.WAIT_MS / 1000,
        interval=0.2,
        message="the served dashboard never held the hostile error",
    )
    yield s
    s.close()


ERROR_PAGES = (
    f"/storms/{HEALTHY}/tasks/1/",
    f"/storms/{HEALTHY}/components/words/",
    "/errors/",
)


def assert_inert(tab):
    assert tab.evaluate("typeof window.__xss") == "undefined"
    assert tab.evaluate(INJECTED) == 0
    assert tab.evaluate("window.__csp") == []
    assert tab.watch.dialogs == [] and tab.watch.errors == []


def error_texts(tab) -> list[str]:
    return tab.locator(".error-text").all_text_contents()


def test_hostile_error_text_is_shown_as_text(page, served):
    page.add_init_script(WATCH)
    for url in ERROR_PAGES:
        chromium.open_page(page, served.url + url)
        assert HOSTILE in error_texts(page), url
        assert_inert(page)


def test_hostile_error_arriving_live_is_shown_as_text(page, served):
    page.add_init_script(WATCH)
    for url in (f"/storms/{HEALTHY}/tasks/1/", "/errors/"):
        chromium.open_page(page, served.url + url)
        # the socket connected under the policy: connect-src 'self' lets ws: to this origin
        page.wait_for_selector("#live-status[data-state=live]")  # the suite's browser bound
        text = f"{LIVE_HOSTILE} {url}"
        served.writer.report_task_error(HEALTHY, 1, text)
        page.wait_for_function(
            "t => [...document.querySelectorAll('.error-text')].some(e => e.textContent === t)",
            arg=text,
        )
        assert_inert(page)
