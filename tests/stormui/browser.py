"""A real browser for the page tests: Debian's chromium driven through Playwright.

Bind the fixtures in a test module to use them (``page = browser.page``).
``STORMUI_SCREENSHOTS=DIR`` saves a full-page screenshot of every page opened with
:func:`open_page`, to look at the design.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

# Playwright's sync API runs an event loop in this thread; Django's live server is in another
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = Path("/usr/bin/chromium")

# A change travels ZooKeeper -> mirror -> relay -> socket -> page, on a machine that may be
# busy with other work: every wait on the page (Playwright's expect and its actions) is
# bounded by this, never by Playwright's 5 s default. A wait ends as soon as its condition
# holds; the bound only decides when a broken page fails.
WAIT_MS = 30_000

# Records every element that gets the live-new highlight, so a test can check that an
# element was highlighted whenever it looks: the class is taken off again on a timer.
RECORD_HIGHLIGHTS = """
window.__highlighted = [];
new MutationObserver(function (mutations) {
  mutations.forEach(function (m) {
    if (m.target.classList && m.target.classList.contains("live-new")) {
      window.__highlighted.push(m.target);
    }
  });
}).observe(document, { subtree: true, attributes: true, attributeFilter: ["class"] });
"""
CHROMIUM_ARGS = [
    "--no-sandbox",  # tests run as root
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """One headless chromium per test module (Playwright gives it a fresh profile).

    Playwright's sync API keeps an event loop running in this thread while it is
    open: it must close before any asyncio test runs, and pytest-django reorders
    tests across modules, so it lives no longer than its module's run of tests.
    """
    if not CHROMIUM.exists():
        pytest.skip("chromium is not installed (apt-get install chromium, or make setup-test)")
    sync_api = pytest.importorskip(
        "playwright.sync_api",
        reason="Playwright is not installed (pip install -c requirements/constraints.txt "
        "-e '.[test]', or make setup-test)",
    )
    sync_api.expect.set_options(timeout=WAIT_MS)
    with sync_api.sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield instance
        instance.close()


class PageWatch:
    """What a page did that a person would notice: dialogs opened, script errors."""

    def __init__(self):
        self.dialogs: list[str] = []
        self.errors: list[str] = []


@pytest.fixture
def page(browser):
    """A new page in its own context; dialogs are recorded (and dismissed) on ``page.watch``."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(WAIT_MS)
    context.add_init_script(RECORD_HIGHLIGHTS)
    tab = context.new_page()
    watch = PageWatch()

    def on_dialog(dialog):
        watch.dialogs.append(dialog.message)
        dialog.dismiss()

    tab.on("dialog", on_dialog)
    tab.on("pageerror", lambda exc: watch.errors.append(str(exc)))
    tab.watch = watch
    yield tab
    context.close()


def was_highlighted(locator) -> bool:
    """Whether the element ``locator`` points at got the ``live-new`` highlight (at any time
    since its page loaded)."""
    return locator.evaluate("el => window.__highlighted.includes(el)")


def open_page(page, url: str, status: int = 200):
    """Go to ``url``, check the status, and save a screenshot when asked to."""
    response = page.goto(url)
    assert response is not None and response.status == status, (url, response and response.status)
    page.wait_for_load_state("load")
    folder = os.environ.get("STORMUI_SCREENSHOTS")
    if folder:
        name = re.sub(r"[^A-Za-z0-9]+", "_", url.split("//", 1)[-1].split("/", 1)[-1]) or "index"
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(
            path=str(Path(folder) / f"{name.strip('_') or 'index'}.png"), full_page=True
        )
    return response
