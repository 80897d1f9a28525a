"""Admin actions in a real chromium: log in, type the storm's name, deactivate, remove."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from stormui.models import AuditEntry
from tests.helpers import wait_for
from tests.stormui import browser as chromium
from tests.stormui.conftest import HEALTHY, PAUSED
from tests.stormui.test_actions import operators_group

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
]

browser = chromium.browser
page = chromium.page
open_page = chromium.open_page

PASSWORD = "correct horse battery staple"


@pytest.fixture(autouse=True)
def no_scheduler_thread(settings):
    settings.STORMUI_SCHEDULER_THREAD = False
    settings.STORMUI_READ_ONLY = False


@pytest.fixture
def operator(transactional_db):
    user = User.objects.create_user("olga", password=PASSWORD)
    user.groups.add(operators_group())
    return user


def log_in(page, base_url, next_path="/"):
    open_page(page, f"{base_url}/accounts/login/?next={next_path}")
    page.fill("input[name=username]", "olga")
    page.fill("input[name=password]", PASSWORD)
    page.click("form.login button[type=submit]")
    page.wait_for_load_state("load")


def reload_until(page, shown):
    """Reload until ``shown()``: pages are rendered from the mirror, which follows ZooKeeper
    on its own thread, so an action's effect shows on some later load."""

    def reloaded():
        if shown():
            return True
        page.reload()
        return False

    wait_for(reloaded, timeout=chromium.WAIT_MS / 1000, interval=0.2)


def test_operator_deactivates_then_removes_a_storm(page, live_server, known_cluster, operator):
    base = live_server.url
    log_in(page, base, f"/storms/{HEALTHY}/")
    assert page.url == f"{base}/storms/{HEALTHY}/"
    assert page.locator("#storm-status").inner_text() == "ACTIVE"

    # a wrong name is refused, and the storm keeps running
    page.fill("#confirm-deactivate", "not-the-name")
    page.click("#deactivate-button")
    page.wait_for_load_state("load")
    assert page.locator("#confirm-errors").is_visible()
    assert known_cluster.writer.storm_base(HEALTHY) is not None

    page.fill("#confirm-deactivate", "healthy")
    page.click("#deactivate-button")
    page.wait_for_load_state("load")
    assert page.url == f"{base}/storms/{HEALTHY}/"
    reload_until(page, lambda: page.locator("#storm-status").inner_text() == "INACTIVE")
    assert known_cluster.writer.storm_base(HEALTHY) is None
    assert not page.locator("#deactivate-form").count()

    # an inactive storm has lost its name: the page shows its id, and that is what one types
    name = page.locator("#storm-name").inner_text()
    page.fill("#confirm-remove", name)
    page.click("#remove-button")
    page.wait_for_load_state("load")
    assert page.url == f"{base}/"
    reload_until(
        page, lambda: not page.locator(f"#storm-table tr[data-storm-id='{HEALTHY}']").count()
    )
    assert page.locator(f"#storm-table tr[data-storm-id='{PAUSED}']").count() == 1
    assert known_cluster.writer.assignment_info(HEALTHY) is None
    assert page.watch.errors == []

    outcomes = list(AuditEntry.objects.order_by("id").values_list("action", "outcome", "via"))
    assert outcomes == [
        ("deactivate", "refused", "page"),
        ("deactivate", "success", "page"),
        ("remove", "success", "page"),
    ]


def test_anonymous_sees_no_action_forms(page, live_server, known_cluster):
    open_page(page, f"{live_server.url}/storms/{HEALTHY}/")
    assert not page.locator("#storm-actions").count()
    open_page(page, f"{live_server.url}/storms/{HEALTHY}/deactivate/")
    assert "/accounts/login/" in page.url
