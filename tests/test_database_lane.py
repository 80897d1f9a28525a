"""The database the suite runs on is the lane's (``STORMUI_TEST_DATABASE``), and no
connection is kept per thread."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.db import connection

from tests.conftest import database_lane

VENDORS = {"sqlite": "sqlite", "postgres": "postgresql"}


@pytest.mark.django_db
def test_the_tests_use_the_lanes_database():
    assert connection.vendor == VENDORS[database_lane()]
    with connection.cursor() as cursor:  # and it answers
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)


def test_connections_are_not_kept_per_thread():
    # under ASGI each request runs in a worker thread: a kept connection would pile up
    assert settings.DATABASES["default"]["CONN_MAX_AGE"] == 0


def test_servers_started_by_tests_get_a_database_of_the_lane(server_database_factory, tmp_path):
    url = server_database_factory(tmp_path / "one")
    assert url.split("://", 1)[0] == database_lane()
    assert server_database_factory(tmp_path / "two") != url  # each its own
