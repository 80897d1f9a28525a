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


def test_operator_deactivates_then_activates_a_storm(page, live_server, known_cluster, operator):
    from clusterstate import StormBase
    from stormui.bases import BaseRecorder
    from stormui.models import SeenStormBase
    from stormui.source import get_source

    # this process relays (nothing else does with pytest-django's live server): its recorder
    # keeps the active storms' bases
    recorder = BaseRecorder(get_source()).start()
    try:
        wait_for(lambda: SeenStormBase.objects.filter(storm_id=HEALTHY).exists())
    finally:
        recorder.stop(timeout=chromium.WAIT_MS / 1000)
    base = StormBase("healthy", known_cluster.storms[HEALTHY]["launch"])

    live = live_server.url
    log_in(page, live, f"/storms/{HEALTHY}/")
    assert not page.locator("#activate-form").count()
    page.fill("#confirm-deactivate", "healthy")
    page.click("#deactivate-button")
    page.wait_for_load_state("load")
    reload_until(page, lambda: page.locator("#storm-status").inner_text() == "INACTIVE")
    assert known_cluster.writer.storm_base(HEALTHY) is None

    # inactive, it is offered activate, confirmed by the id its page shows
    assert not page.locator("#deactivate-form").count()
    page.fill("#confirm-activate", page.locator("#storm-name").inner_text())
    page.click("#activate-button")
    page.wait_for_load_state("load")
    assert page.url == f"{live}/storms/{HEALTHY}/"
    assert known_cluster.writer.storm_base(HEALTHY) == base
    reload_until(page, lambda: page.locator("#storm-status").inner_text() == "ACTIVE")
    assert page.locator("#storm-name").inner_text() == "healthy"
    assert not page.locator("#activate-form").count()
    assert page.locator("#deactivate-form").count() == 1
    assert page.watch.errors == []
    outcomes = list(AuditEntry.objects.order_by("id").values_list("action", "outcome", "via"))
    assert outcomes == [("deactivate", "success", "page"), ("activate", "success", "page")]


def test_operator_kills_a_storm_after_a_wait(page, live_server, known_cluster, operator):
    from stormui.models import ScheduledRemoval

    live = live_server.url
    log_in(page, live, f"/storms/{HEALTHY}/")
    assert page.locator("#wait-kill").input_value() == "30"
    page.fill("#confirm-kill", "healthy")
    page.fill("#wait-kill", "120")
    page.click("#kill-button")
    page.wait_for_load_state("load")
    assert page.url == f"{live}/storms/{HEALTHY}/"
    assert "removal scheduled in 120 s" in page.locator(".messages").inner_text()
    assert known_cluster.writer.storm_base(HEALTHY) is None
    entry = ScheduledRemoval.objects.get()
    assert entry.pending and entry.storm_id == HEALTHY
    assert page.watch.errors == []
    assert list(AuditEntry.objects.values_list("action", "outcome", "via")) == [
        ("kill", "success", "page")
    ]
