"""Log links from ``STORMUI_LOGVIEWER_URL``: on worker, task and error rows of the pages."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from stormui.env import env_log_url
from stormui.logs import log_link
from tests.stormui.conftest import TROUBLED
from tests.stormui.test_views import get_page

pytestmark = pytest.mark.django_db

TEMPLATE = "http://{host}:8000/log?file=worker-{port}.log&storm={storm_id}&task={task_id}"


def test_the_setting_is_checked(monkeypatch):
    monkeypatch.delenv("X_LOGS", raising=False)
    assert env_log_url("X_LOGS") is None
    monkeypatch.setenv("X_LOGS", "  ")
    assert env_log_url("X_LOGS") is None
    monkeypatch.setenv("X_LOGS", TEMPLATE)
    assert env_log_url("X_LOGS") == TEMPLATE
    for bad in ("http://{host}/{nope}", "http://{host}/{", "javascript:alert(1)", "{0}"):
        monkeypatch.setenv("X_LOGS", bad)
        with pytest.raises(ImproperlyConfigured, match="X_LOGS"):
            env_log_url("X_LOGS")


def test_links_fill_in_url_encoded_values(settings):
    settings.STORMUI_LOGVIEWER_URL = None
    assert log_link("h", 6700, "s", 1) is None
    settings.STORMUI_LOGVIEWER_URL = TEMPLATE
    assert log_link("h", 6700, "a b&c", 3) == (
        "http://h:8000/log?file=worker-6700.log&storm=a%20b%26c&task=3"
    )
    assert log_link("h", 6700) == "http://h:8000/log?file=worker-6700.log&storm=&task="
    assert log_link(None, 6700, "s", 1) is None and log_link("h", None) is None


def links(el) -> list[str]:
    return [a.attrs["href"] for a in el.find_all("a", cls="log-link")]


def test_pages_link_workers_tasks_and_errors_when_set(client, known_cluster, settings):
    doc = get_page(client, f"/storms/{TROUBLED}/")
    assert links(doc) == []  # unset: no link anywhere
    settings.STORMUI_LOGVIEWER_URL = TEMPLATE

    doc = get_page(client, f"/storms/{TROUBLED}/")
    worker = doc.by_id("worker-table").find("tr", data_node_id="sup-b", data_port="6701")
    assert links(worker) == [
        f"http://host-b.example:8000/log?file=worker-6701.log&storm={TROUBLED}&task="
    ]

    doc = get_page(client, f"/storms/{TROUBLED}/components/sink/")
    task = doc.by_id("task-table").find("tr", data_task_id="13")
    expected = f"http://host-b.example:8000/log?file=worker-6701.log&storm={TROUBLED}&task=13"
    assert links(task) == [expected]
    error = doc.by_id("component-errors").find("li", data_task_id="13")
    assert links(error) == [expected]

    doc = get_page(client, f"/storms/{TROUBLED}/tasks/13/")
    assert links(doc.by_id("task-hostport")) == [expected]
    assert set(links(doc.by_id("task-errors"))) == {expected}

    doc = get_page(client, "/supervisors/sup-b/")
    hrefs = links(doc.by_id("worker-table"))
    assert f"http://host-b.example:8000/log?file=worker-6701.log&storm={TROUBLED}&task=" in hrefs
