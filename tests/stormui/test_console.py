"""Every page loads without a console error in a real chromium: no missing favicon, no failed
resource, no script error."""

from __future__ import annotations

import pytest

from tests.stormui import browser as chromium
from tests.stormui.conftest import HEALTHY, TROUBLED
from tests.stormui.served import Served

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

browser = chromium.browser
page = chromium.page

PROBE = "console-probe"


@pytest.fixture(scope="module")
def served(zk_server, tmp_path_factory):
    """A real daphne (pytest-django's live server has no sockets, whose failure would log)."""
    s = Served(zk_server, tmp_path_factory.mktemp("console"))
    yield s
    s.close()


def console_errors(page, url: str) -> list[str]:
    """The console errors of loading ``url``, once the page and everything it fetched is in.

    The page's own ``console.error`` is seen too (the probe written last), so an empty
    list means nothing was logged, not that nothing was listened to.
    """
    errors: list[str] = []
    failed: list[str] = []
    handlers = {
        "console": lambda msg: errors.append(msg.text) if msg.type == "error" else None,
        "pageerror": lambda exc: errors.append(str(exc)),
        "requestfailed": lambda request: failed.append(request.url),
        "response": lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None,
    }
    for event, handler in handlers.items():
        page.on(event, handler)
    try:
        with page.expect_response(lambda r: "favicon" in r.url) as icon:
            chromium.open_page(page, url)
        assert icon.value.status == 200, icon.value.url
        page.wait_for_load_state("networkidle")
        if page.locator("#live-status").count():
            page.wait_for_selector("#live-status[data-state=live]")  # its socket is up
        page.evaluate(f"console.error({PROBE!r})")
        page.wait_for_function("true")  # the probe's event has reached us by the next round trip
    finally:
        for event, handler in handlers.items():
            page.remove_listener(event, handler)
    assert errors and errors[-1] == PROBE, errors
    assert failed == [], failed
    return errors[:-1]


def test_pages_log_no_console_errors(page, served):
    supervisor = sorted(served.known.supervisors)[0]
    for path in (
        "/",
        "/supervisors/",
        f"/supervisors/{supervisor}/",
        "/errors/",
        f"/storms/{HEALTHY}/",
        f"/storms/{TROUBLED}/components/sink/",
        f"/storms/{TROUBLED}/tasks/10/",
        "/accounts/login/",
    ):
        assert console_errors(page, served.url + path) == [], path


def test_the_favicon_is_served_where_browsers_look_without_a_link(page, served):
    response = page.request.get(served.url + "/favicon.ico")
    assert response.status == 200 and response.url.endswith("/stormui/img/favicon.svg")
    assert response.headers["content-type"].startswith("image/svg+xml")
    assert response.body().startswith(b"<svg")
