"""Fixtures shared by the whole suite: a real ZooKeeper, per-test roots, ClusterState
sessions of both kinds. Sub-folders add their own in their own ``conftest.py``."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from clusterstate.zkserver import ZooKeeperServer, ZooKeeperUnavailable
from tests.helpers import StateFactory, expire_session, storm_conf, wait_for
from tests.pgserver import PostgresServer, PostgresUnavailable

__all__ = ["expire_session", "wait_for"]

# Under CI nothing may skip: a missing ZooKeeper, Chromium, Playwright, Redis or
# PostgreSQL fails the run, with the skip's own message saying what to install.
STRICT = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def _strict(report):
    if STRICT and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"CI=true allows no skipped test, and this one skipped: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _strict(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    _strict(outcome.get_result())


@pytest.fixture(scope="session")
def zk_server(tmp_path_factory):
    """One real standalone ZooKeeper for the whole run (stopped at the end).

    Fails if ZooKeeper is not installed, unless ``STORMUI_ALLOW_NO_ZK=1``,
    which skips the tests that need it (outside CI: under ``CI=true`` a skip fails).
    """
    server = ZooKeeperServer(tmp_path_factory.mktemp("zookeeper"))
    try:
        server.start()
    except ZooKeeperUnavailable as exc:
        if os.environ.get("STORMUI_ALLOW_NO_ZK") == "1":
            pytest.skip(f"ZooKeeper is not installed: {exc}")
        pytest.fail(f"ZooKeeper is not installed ({exc}); set STORMUI_ALLOW_NO_ZK=1 to skip")
    yield server
    server.stop()


# -- the database lane -----------------------------------------------------------------------
# The suite runs on SQLite; with STORMUI_TEST_DATABASE=postgres every test that touches the
# database (marked `db` below, so `pytest -m db` picks them) runs on a throwaway PostgreSQL.

DATABASE_LANES = ("sqlite", "postgres")
# what makes a test touch the database, besides the django_db marker
DATABASE_FIXTURES = frozenset(
    {
        "db",
        "transactional_db",
        "django_db_setup",
        "django_db_reset_sequences",
        "django_db_serialized_rollback",
        "live_server",
        "admin_user",
        "admin_client",
        "django_user_model",
        "server_database_factory",
    }
)


def database_lane() -> str:
    """``"sqlite"`` or ``"postgres"``, from ``STORMUI_TEST_DATABASE`` (default ``sqlite``)."""
    return os.environ.get("STORMUI_TEST_DATABASE", "").strip().lower() or "sqlite"


def pytest_configure(config):
    config.addinivalue_line("markers", "db: touches the database (runs on both lanes)")
    if database_lane() not in DATABASE_LANES:
        raise pytest.UsageError(
            f"STORMUI_TEST_DATABASE={database_lane()!r}: use one of {', '.join(DATABASE_LANES)}"
        )


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("django_db") or DATABASE_FIXTURES.intersection(
            getattr(item, "fixturenames", ())
        ):
            item.add_marker(pytest.mark.db)


@pytest.fixture(scope="session")
def postgres_server():
    """The PostgreSQL lane's server: a throwaway cluster on a free loopback port.

    Fails (never skips) if PostgreSQL is not installed.
    """
    server = PostgresServer()
    try:
        server.start()
    except PostgresUnavailable as exc:
        pytest.fail(
            f"PostgreSQL is not installed ({exc}); STORMUI_TEST_DATABASE=postgres needs it",
            pytrace=False,
        )
    yield server
    server.stop()


def _use_database(url: str) -> None:
    """Point the default database at ``url``, before pytest-django makes its test database.

    The dict is changed in place: ``django.db.connections`` holds that same dict, and a
    connection already made from it is dropped so the next one is of the new kind.
    """
    import dj_database_url
    from django.conf import settings
    from django.db import connections

    parsed = dj_database_url.parse(url, conn_max_age=0)
    for default in {
        id(d): d for d in (settings.DATABASES["default"], connections.settings["default"])
    }.values():
        default.update(parsed)
        default["OPTIONS"] = dict(parsed.get("OPTIONS", {}))
    for conn in connections.all(initialized_only=True):
        if conn.alias == "default":
            conn.close()
            del connections["default"]


@pytest.fixture(scope="session")
def django_db_modify_db_settings(request, django_db_modify_db_settings_parallel_suffix):
    """pytest-django's hook to change the database settings: the lane's database.

    On SQLite the test database is a file, as the dashboard's is, not Django's default
    in-memory one: that one's shared cache locks whole tables and fails a read at once
    while another thread (a recorder's) writes, where a file in WAL mode lets readers
    read and makes writers wait their turn.
    """
    if database_lane() == "postgres":
        _use_database(request.getfixturevalue("postgres_server").url("stormui"))
        return
    from django.conf import settings
    from django.db import connections

    folder = request.getfixturevalue("tmp_path_factory").mktemp("database")
    for default in {
        id(d): d for d in (settings.DATABASES["default"], connections.settings["default"])
    }.values():
        default.setdefault("TEST", {})["NAME"] = str(folder / "test.sqlite3")


@pytest.fixture(scope="session")
def server_database_factory(request):
    """``server_database_factory(folder)``: a ``DATABASE_URL`` of a new empty database of this
    lane, for the servers a test starts in subprocesses (SQLite in ``folder``, or a new
    database on the lane's PostgreSQL)."""
    if database_lane() == "postgres":
        server = request.getfixturevalue("postgres_server")
        return lambda folder: server.create_database()
    return lambda folder: f"sqlite:///{Path(folder) / 'db.sqlite3'}"


@pytest.fixture(autouse=True)
def _no_scheduler_thread(settings):
    # the removal scheduler's, the base recorder's and the history's threads would share
    # SQLite's in-memory test database; tests that need them run them themselves
    settings.STORMUI_SCHEDULER_THREAD = False
    settings.STORMUI_BASE_RECORDER = False
    settings.STORMUI_HISTORY = False


@pytest.fixture
def zk_root():
    """A fresh root for this test, e.g. ``/t/3f2a...``."""
    return f"/t/{uuid.uuid4().hex}"


@pytest.fixture
def zk_conf(zk_server, zk_root):
    """A Storm conf pointing at the test ZooKeeper and this test's root."""
    return storm_conf(zk_server, zk_root)


@pytest.fixture(params=["memory", "zookeeper"])
def state_factory(request, zk_root):
    """Calling it opens a new ClusterState session on one shared store and root.

    Parametrized: every test using it runs against the in-memory state and
    against ZooKeeper. ``state_factory(root)`` opens one on another root of
    the same store; ``state_factory.kind`` says which. All are closed at teardown.
    """
    if request.param == "zookeeper":
        factory = StateFactory("zookeeper", zk_root, request.getfixturevalue("zk_conf"))
    else:
        factory = StateFactory("memory", zk_root)
    yield factory
    factory.close_all()
    if factory.kind == "zookeeper":  # keep the shared server small
        cleaner = factory("/")
        try:
            cleaner.delete_node(zk_root)
        finally:
            factory.close_all()


@pytest.fixture
def cluster_state(state_factory):
    """One ClusterState session (memory and ZooKeeper, via ``state_factory``)."""
    return state_factory()
