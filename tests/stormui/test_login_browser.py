"""A live page whose user logs out, in a real chromium against a real daphne that requires a
login: the page stops, says so, offers the login and does not reconnect."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, quote, urlsplit

import pytest

from tests.stormui import browser as chromium
from tests.stormui.conftest import HEALTHY
from tests.stormui.served import Served

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

browser = chromium.browser
page = chromium.page
open_page = chromium.open_page

USERNAME = "lena"
PASSWORD = "correct horse battery staple"

# Counts the page's pending timeouts, so that a test can wait until every timer the page
# had set has run: a reconnect is such a timer.
COUNT_PENDING_TIMEOUTS = """
(function () {
  var set = window.setTimeout, clear = window.clearTimeout, pending = new Set();
  window.setTimeout = function (fn, delay) {
    var args = Array.prototype.slice.call(arguments, 2);
    var id = set.call(window, function () {
      pending.delete(id);
      if (typeof fn === "function") fn.apply(this, args);
    }, delay);
    pending.add(id);
    return id;
  };
  window.clearTimeout = function (id) {
    pending.delete(id);
    return clear.call(window, id);
  };
  window.__pendingTimeouts = function () {
    return pending.size;
  };
})();
"""


@pytest.fixture(scope="module")
def served(zk_server, tmp_path_factory, server_database_factory):
    folder = tmp_path_factory.mktemp("login-browser")
    s = Served(
        zk_server,
        folder,
        server_database_factory(folder),
        extra_env={"STORMUI_LOGIN_REQUIRED": "true"},
    )
    s.create_user(USERNAME, PASSWORD)
    yield s
    s.close()


def log_in(page, login_url: str, landing_url: str):
    """Fill the login form at ``login_url`` and wait to land on ``landing_url``."""
    open_page(page, login_url)
    page.fill("form.login input[name=username]", USERNAME)
    page.fill("form.login input[name=password]", PASSWORD)
    page.click("form.login button[type=submit]")
    page.wait_for_url(landing_url)


def test_logged_out_live_page_offers_the_login(page, served):
    path = f"/storms/{HEALTHY}/?window=600"
    login_path = "/accounts/login/?next=" + quote(path, safe="")
    sockets = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    page.add_init_script(COUNT_PENDING_TIMEOUTS)

    # a page that needs the login sends there, and the login returns to the page
    open_page(page, served.url + path)
    assert urlsplit(page.url).path == "/accounts/login/"
    log_in(page, served.url + login_path, served.url + path)
    page.wait_for_selector("#live-status[data-state=live]")
    assert len(sockets) == 1

    # logged out in another tab of the same browser
    other = page.context.new_page()
    open_page(other, served.url + "/")
    other.get_by_role("button", name="Log out").click()
    other.wait_for_url(re.compile(r"/accounts/login/"))

    # the open page learns it at its socket's next check, and offers the login
    page.wait_for_selector("#live-status[data-state=logged-out]")
    login = page.locator("#live-status #live-login")
    assert login.is_visible()
    href = urlsplit(login.get_attribute("href"))
    assert href.path == "/accounts/login/"
    assert parse_qs(href.query) == {"next": [path]}
    opened = len(sockets)
    assert opened == 1

    # and stops: once every timer it had set has run and the other tab has loaded again,
    # no socket was opened since
    other.reload()
    other.wait_for_load_state("load")
    page.wait_for_function("() => window.__pendingTimeouts() === 0", polling=100)
    assert len(sockets) == opened
    assert page.locator("#live-status").get_attribute("data-state") == "logged-out"
    assert page.watch.errors == [] and page.watch.dialogs == []

    # the link leads to the login form, which returns to the page, live again
    login.click()
    page.wait_for_url(served.url + login_path)
    assert page.locator("form.login input[name=username]").is_visible()
    page.fill("form.login input[name=username]", USERNAME)
    page.fill("form.login input[name=password]", PASSWORD)
    page.click("form.login button[type=submit]")
    page.wait_for_url(served.url + path)
    page.wait_for_selector("#live-status[data-state=live]")
    assert len(sockets) == opened + 1
    assert page.watch.errors == [] and page.watch.dialogs == []
    other.close()
