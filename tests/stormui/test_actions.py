"""Admin actions against a real ZooKeeper and a real database: every refusal leaves
ZooKeeper as it was, every success changes exactly what it should, and the audit
log holds every attempt."""

from __future__ import annotations

import contextlib
import importlib
import threading
from datetime import timedelta

import pytest
from django.apps import apps
from django.conf import UserSettingsHolder
from django.conf import settings as django_settings
from django.contrib.auth.models import Group, User
from django.contrib.messages import get_messages
from django.db import connection
from django.test import Client
from django.utils import timezone

from clusterstate import paths
from stormui import actions, scheduler
from stormui.models import AuditEntry, ScheduledRemoval
from stormui.scheduler import Scheduler, run_due
from stormui.source import get_source
from tests.helpers import own_zookeeper, wait_for
from tests.stormui.conftest import BROKEN, HEALTHY, PAUSED, TROUBLED

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"
STORM_SUBTREES = ("/storms", "/assignments", "/tasks", "/taskbeats", "/taskerrors")
REMOVED_SUBTREES = ("/assignments", "/tasks", "/taskbeats", "/taskerrors")
# the bound of a wait on ZooKeeper or the source, on a machine that may be busy
WAIT = 30


# -- helpers -------------------------------------------------------------------------------------


def dump(state) -> dict[str, bytes | None]:
    """Every node under the root, with its data."""
    nodes = {}

    def walk(path):
        nodes[path] = state.get_data(path)
        for child in sorted(state.get_children(path)):
            walk(f"{path.rstrip('/')}/{child}")

    walk("/")
    return nodes


def persistent(nodes: dict[str, bytes | None]) -> dict[str, bytes | None]:
    """``nodes`` without the heartbeats, the ephemeral nodes of the writer's session: a
    ZooKeeper outage on a loaded machine may expire that session and take them away, and no
    action writes them."""
    return {
        path: data
        for path, data in nodes.items()
        if not (
            path.startswith(f"{paths.SUPERVISORS_SUBTREE}/")
            or (path.startswith(f"{paths.TASKBEATS_SUBTREE}/") and path.count("/") > 2)
        )
    }


def under(path: str, storm_id: str, subtrees) -> bool:
    return any(path == f"{s}/{storm_id}" or path.startswith(f"{s}/{storm_id}/") for s in subtrees)


def without(tree: dict, storm_id: str, subtrees) -> dict:
    return {p: d for p, d in tree.items() if not under(p, storm_id, subtrees)}


def last_entry() -> AuditEntry:
    return AuditEntry.objects.order_by("-id").first()


def csrf_client(user=None) -> tuple[Client, str]:
    """A client that enforces CSRF as browsers meet it, logged in as ``user``, and its token."""
    client = Client(enforce_csrf_checks=True)
    if user is not None:
        client.force_login(user)
    client.get("/accounts/login/")  # sets the csrftoken cookie
    return client, client.cookies["csrftoken"].value


def api(storm_id: str, op: str) -> str:
    return f"/api/v1/topology/{storm_id}/{op}"


def assert_json_error(response, status: int) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"} and body["error"]
    return body


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def no_scheduler_thread(settings):
    # tests run due removals themselves, with an injected clock
    settings.STORMUI_SCHEDULER_THREAD = False
    settings.STORMUI_READ_ONLY = False


@pytest.fixture(scope="module")
def zk_server(zk_server, tmp_path_factory):
    """A ZooKeeper of this module's own: the outage tests stop it, and no other module's
    tests may see that. (The shared one is asked for to fail or skip as it does.)"""
    yield from own_zookeeper(tmp_path_factory, "actions")


@pytest.fixture
def cluster(known_cluster):
    return known_cluster


@pytest.fixture
def zk(cluster):
    """A ClusterState on the test's root, to compare ZooKeeper before and after."""
    return cluster.writer.cluster_state


def operators_group() -> Group:
    """The group the data migrations made; a transactional test's flush empties every table, so
    after one it is made again the migrations' way."""
    if not Group.objects.filter(name="operators").exists():
        migration = importlib.import_module("stormui.migrations.0002_operators_group")
        migration.create_operators(apps, None)
        migration = importlib.import_module("stormui.migrations.0004_activate")
        migration.let_operators_activate(apps, None)
    return Group.objects.get(name="operators")


@pytest.fixture
def operator(db):
    user = User.objects.create_user("olga", password=PASSWORD)
    user.groups.add(operators_group())
    return user


@pytest.fixture
def viewer(db):
    return User.objects.create_user("victor", password=PASSWORD)


@pytest.fixture
def deactivator(db):
    from django.contrib.auth.models import Permission

    user = User.objects.create_user("dora", password=PASSWORD)
    user.user_permissions.add(Permission.objects.get(codename="deactivate_storm"))
    return user


@pytest.fixture(scope="module")
def token_model(django_db_setup, django_db_blocker):
    """DRF's Token model and its table, whether or not settings list rest_framework.authtoken."""
    if not apps.is_installed("rest_framework.authtoken"):
        with _authtoken_installed():
            from rest_framework.authtoken.models import Token

            # made outside any test's transaction: SQLite alters no schema inside one
            with django_db_blocker.unblock(), connection.schema_editor() as editor:
                editor.create_model(Token)
            try:
                yield Token
            finally:
                with django_db_blocker.unblock(), connection.schema_editor() as editor:
                    editor.delete_model(Token)
        return
    from rest_framework.authtoken.models import Token

    yield Token


@contextlib.contextmanager
def _authtoken_installed():
    # modify_settings updates the app registry before the settings, and DRF's Token reads
    # settings.INSTALLED_APPS as it is defined: so the settings first, then the registry
    original = django_settings._wrapped
    holder = UserSettingsHolder(original)
    holder.INSTALLED_APPS = [*original.INSTALLED_APPS, "rest_framework.authtoken"]
    django_settings._wrapped = holder
    try:
        apps.set_installed_apps(holder.INSTALLED_APPS)
        try:
            yield
        finally:
            apps.unset_installed_apps()
    finally:
        django_settings._wrapped = original


@pytest.fixture
def token(token_model, operator):
    return token_model.objects.create(user=operator).key


# -- permissions and the operators group --------------------------------------------------------


@pytest.mark.django_db
def test_operators_group_holds_the_three_permissions():
    # the migrations made it (non-transactional tests run before any flush)
    group = Group.objects.get(name="operators")
    codenames = set(group.permissions.values_list("content_type__app_label", "codename"))
    assert codenames == {
        ("stormui", "activate_storm"),
        ("stormui", "deactivate_storm"),
        ("stormui", "remove_storm"),
    }
    user = User.objects.create_user("g")
    user.groups.add(group)
    user = User.objects.get(pk=user.pk)
    assert user.has_perms(
        ["stormui.activate_storm", "stormui.deactivate_storm", "stormui.remove_storm"]
    )
    assert not User.objects.create_user("h").has_perm("stormui.remove_storm")
    assert not User.objects.create_user("i").has_perm("stormui.activate_storm")


# -- refusals leave ZooKeeper unchanged -----------------------------------------------------------


def test_anonymous_page_post_redirects_to_login(cluster, zk):
    before = dump(zk)
    client, csrf = csrf_client()
    response = client.post(
        f"/storms/{HEALTHY}/deactivate/", {"confirm": "healthy", "csrfmiddlewaretoken": csrf}
    )
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")
    assert dump(zk) == before
    entry = last_entry()
    assert (entry.action, entry.storm_id, entry.outcome, entry.via) == (
        "deactivate",
        HEALTHY,
        "refused",
        "page",
    )
    assert entry.user is None and entry.username == ""


def test_anonymous_api_is_401_json_never_a_redirect(cluster, zk):
    before = dump(zk)
    client, csrf = csrf_client()
    for op in ("deactivate", "remove", "kill/0"):
        response = client.post(api(HEALTHY, op), HTTP_X_CSRFTOKEN=csrf)
        assert_json_error(response, 401)
    assert dump(zk) == before
    assert list(AuditEntry.objects.order_by("id").values_list("action", "outcome", "via")) == [
        ("deactivate", "refused", "api"),
        ("remove", "refused", "api"),
        ("kill", "refused", "api"),
    ]


def test_without_permission_page_and_api_are_403(cluster, zk, viewer):
    before = dump(zk)
    client, csrf = csrf_client(viewer)
    page = client.post(
        f"/storms/{HEALTHY}/remove/", {"confirm": "healthy", "csrfmiddlewaretoken": csrf}
    )
    assert page.status_code == 403
    assert b"permission denied" in page.content
    response = client.post(api(HEALTHY, "deactivate"), HTTP_X_CSRFTOKEN=csrf)
    assert "permission denied" in assert_json_error(response, 403)["error"]
    assert dump(zk) == before
    entries = AuditEntry.objects.order_by("id")
    assert [(e.username, e.action, e.outcome, e.via) for e in entries] == [
        ("victor", "remove", "refused", "page"),
        ("victor", "deactivate", "refused", "api"),
    ]


def test_deactivate_permission_alone_cannot_remove_or_kill(cluster, zk, deactivator):
    before = dump(zk)
    client, csrf = csrf_client(deactivator)
    assert_json_error(client.post(api(HEALTHY, "remove"), HTTP_X_CSRFTOKEN=csrf), 403)
    assert_json_error(client.post(api(HEALTHY, "kill/0"), HTTP_X_CSRFTOKEN=csrf), 403)
    assert dump(zk) == before
    assert not ScheduledRemoval.objects.exists()


def test_session_without_csrf_token_is_403(cluster, zk, operator):
    before = dump(zk)
    client, _ = csrf_client(operator)
    response = client.post(api(HEALTHY, "deactivate"))
    assert "CSRF" in assert_json_error(response, 403)["error"]
    response = client.post(api(HEALTHY, "deactivate"), HTTP_X_CSRFTOKEN="x" * 32)
    assert_json_error(response, 403)
    page = client.post(f"/storms/{HEALTHY}/deactivate/", {"confirm": "healthy"})
    assert page.status_code == 403
    assert dump(zk) == before
    assert [(e.outcome, e.via, e.detail[:17]) for e in AuditEntry.objects.order_by("id")] == [
        ("refused", "api", "CSRF check failed"),
        ("refused", "api", "CSRF check failed"),
        ("refused", "page", "CSRF check failed"),
    ]


def test_read_only_refuses_everything_and_hides_the_forms(cluster, zk, operator, settings):
    settings.STORMUI_READ_ONLY = True
    admin = User.objects.create_superuser("root", password=PASSWORD)
    before = dump(zk)
    for user in (operator, admin):
        client, csrf = csrf_client(user)
        page = client.get(f"/storms/{HEALTHY}/")
        assert page.status_code == 200
        assert b'id="storm-actions"' not in page.content
        assert b"/deactivate/" not in page.content
        for op in ("deactivate", "remove", "kill/5"):
            response = client.post(api(HEALTHY, op), HTTP_X_CSRFTOKEN=csrf)
            assert "read-only" in assert_json_error(response, 403)["error"]
        response = client.post(
            f"/storms/{HEALTHY}/remove/", {"confirm": "healthy", "csrfmiddlewaretoken": csrf}
        )
        assert response.status_code == 403
    assert dump(zk) == before
    assert not ScheduledRemoval.objects.exists()
    assert AuditEntry.objects.count() == 8
    assert set(AuditEntry.objects.values_list("outcome", flat=True)) == {"refused"}


def test_wrong_typed_name_is_refused(cluster, zk, operator):
    before = dump(zk)
    client, csrf = csrf_client(operator)
    for typed in ("", "health", "HEALTHY", "troubled"):
        response = client.post(
            f"/storms/{HEALTHY}/remove/", {"confirm": typed, "csrfmiddlewaretoken": csrf}
        )
        assert response.status_code == 400
        assert b'id="confirm-errors"' in response.content or typed == ""
    assert dump(zk) == before
    assert AuditEntry.objects.filter(outcome="refused", via="page").count() == 4


def test_token_from_another_scheme_or_a_bad_key_is_401(cluster, zk, token):
    before = dump(zk)
    client = Client(enforce_csrf_checks=True)
    response = client.post(api(HEALTHY, "remove"), HTTP_AUTHORIZATION="Token not-a-key")
    assert_json_error(response, 401)
    assert response["WWW-Authenticate"] == "Token"
    assert dump(zk) == before
    assert last_entry().outcome == "refused"


def test_api_actions_take_an_empty_body_and_post_only(cluster, zk, token):
    before = dump(zk)
    client = Client(enforce_csrf_checks=True)
    auth = {"HTTP_AUTHORIZATION": f"Token {token}"}
    response = client.post(api(HEALTHY, "remove"), data="{}", content_type="text/plain", **auth)
    assert_json_error(response, 400)
    response = client.post(api(HEALTHY, "kill/0"), data={"wait": "30"}, **auth)
    assert_json_error(response, 400)
    response = client.get(api(HEALTHY, "remove"), **auth)
    assert_json_error(response, 405)
    assert response["Allow"] == "POST"
    assert dump(zk) == before


# -- successes change exactly what they should ---------------------------------------------------


def test_page_deactivate_removes_only_the_storm_node(cluster, zk, operator):
    client, csrf = csrf_client(operator)
    page = client.get(f"/storms/{HEALTHY}/")
    assert b'id="deactivate-form"' in page.content and b'id="remove-form"' in page.content
    confirm = client.get(f"/storms/{HEALTHY}/deactivate/")
    assert confirm.status_code == 200 and b'name="confirm"' in confirm.content
    before = dump(zk)
    response = client.post(
        f"/storms/{HEALTHY}/deactivate/", {"confirm": "healthy", "csrfmiddlewaretoken": csrf}
    )
    assert response.status_code == 302
    assert response["Location"] == f"/storms/{HEALTHY}/"
    after = dump(zk)
    assert set(before) - set(after) == {f"/storms/{HEALTHY}"}
    assert after == {p: d for p, d in before.items() if p != f"/storms/{HEALTHY}"}
    assert [str(m) for m in get_messages(response.wsgi_request)] == ["healthy: deactivated."]
    entry = last_entry()
    assert (entry.user, entry.action, entry.outcome, entry.via) == (
        operator,
        "deactivate",
        "success",
        "page",
    )
    assert entry.remote_addr == "127.0.0.1"


def test_api_deactivate_with_token_needs_no_csrf(cluster, zk, token):
    before = dump(zk)
    client = Client(enforce_csrf_checks=True)
    response = client.post(api(TROUBLED, "deactivate"), HTTP_AUTHORIZATION=f"Token {token}")
    assert response.status_code == 200
    assert response.json() == {
        "topologyOperation": "deactivate",
        "topologyId": TROUBLED,
        "status": "success",
    }
    # answered only once ZooKeeper holds it
    assert get_source().storm_state.storm_base(TROUBLED) is None
    assert dump(zk) == {p: d for p, d in before.items() if p != f"/storms/{TROUBLED}"}
    entry = last_entry()
    assert (entry.username, entry.action, entry.outcome, entry.via) == (
        "olga",
        "deactivate",
        "success",
        "api",
    )


def test_api_deactivate_with_session_and_csrf_header(cluster, zk, operator):
    client, csrf = csrf_client(operator)
    response = client.post(api(HEALTHY, "deactivate"), HTTP_X_CSRFTOKEN=csrf)
    assert response.status_code == 200
    assert response.json()["topologyOperation"] == "deactivate"
    assert zk.get_data(f"/storms/{HEALTHY}") is None


def test_remove_inactive_storm_removes_its_four_subtrees_and_nothing_else(cluster, zk, token):
    client = Client(enforce_csrf_checks=True)
    auth = {"HTTP_AUTHORIZATION": f"Token {token}"}
    before = dump(zk)
    assert any(under(p, PAUSED, ("/taskbeats",)) for p in before)
    response = client.post(api(PAUSED, "remove"), **auth)
    assert response.status_code == 200
    assert response.json() == {
        "topologyOperation": "remove",
        "topologyId": PAUSED,
        "status": "success",
    }
    assert dump(zk) == without(before, PAUSED, REMOVED_SUBTREES)
    # again: nothing left
    response = client.post(api(PAUSED, "remove"), **auth)
    assert assert_json_error(response, 404)["error"] == "nothing left to remove"
    assert list(AuditEntry.objects.order_by("id").values_list("action", "outcome")) == [
        ("remove", "success"),
        ("remove", "not-found"),
    ]


def test_remove_active_storm_stops_it_first_and_takes_its_errors(cluster, zk, token):
    client = Client(enforce_csrf_checks=True)
    before = dump(zk)
    assert any(under(p, TROUBLED, ("/taskerrors",)) for p in before)
    response = client.post(api(TROUBLED, "remove"), HTTP_AUTHORIZATION=f"Token {token}")
    assert response.status_code == 200
    after = dump(zk)
    assert after == without(before, TROUBLED, STORM_SUBTREES)
    # the other storms are all there
    for other in (HEALTHY, PAUSED, BROKEN):
        assert {p for p in before if under(p, other, STORM_SUBTREES)} <= set(after)


def test_unreadable_storm_can_be_deactivated_and_removed(cluster, zk, token):
    client = Client(enforce_csrf_checks=True)
    auth = {"HTTP_AUTHORIZATION": f"Token {token}"}
    before = dump(zk)
    assert client.post(api(BROKEN, "deactivate"), **auth).status_code == 200
    assert client.post(api(BROKEN, "remove"), **auth).status_code == 200
    assert dump(zk) == without(before, BROKEN, STORM_SUBTREES)


def test_unknown_or_bad_storm_is_404(cluster, zk, token):
    client = Client(enforce_csrf_checks=True)
    auth = {"HTTP_AUTHORIZATION": f"Token {token}"}
    before = dump(zk)
    for storm_id in ("no-such-storm", "..", "a%00b"):
        for op in ("deactivate", "remove", "kill/0"):
            assert_json_error(client.post(api(storm_id, op), **auth), 404)
    assert dump(zk) == before
    assert not ScheduledRemoval.objects.exists()
    assert set(AuditEntry.objects.values_list("outcome", flat=True)) == {"not-found"}
    # PostgreSQL's text holds no NUL: the log writes it out
    assert AuditEntry.objects.filter(storm_id="a\\x00b").count() == 3


def test_page_remove_goes_back_to_the_cluster(cluster, zk, operator):
    client, csrf = csrf_client(operator)
    before = dump(zk)
    response = client.post(
        f"/storms/{HEALTHY}/remove/", {"confirm": "healthy", "csrfmiddlewaretoken": csrf}
    )
    assert response.status_code == 302 and response["Location"] == "/"
    assert dump(zk) == without(before, HEALTHY, STORM_SUBTREES)
    wait_for(lambda: get_source().storm_view(HEALTHY) is None, timeout=WAIT)
    assert client.get(f"/storms/{HEALTHY}/").status_code == 404
    # a second admin with the form still open: told there is nothing left
    response = client.post(
        f"/storms/{HEALTHY}/remove/", {"confirm": HEALTHY, "csrfmiddlewaretoken": csrf}
    )
    assert response.status_code == 302 and response["Location"] == "/"
    assert "nothing left to remove" in [str(m) for m in get_messages(response.wsgi_request)][-1]
    assert list(AuditEntry.objects.order_by("id").values_list("outcome", flat=True)) == [
        "success",
        "not-found",
    ]


def test_inactive_storm_is_confirmed_by_the_id_its_page_shows(cluster, zk, operator):
    client, csrf = csrf_client(operator)
    page = client.get(f"/storms/{PAUSED}/")
    # nothing to deactivate, but it can be removed
    assert b'id="deactivate-form"' not in page.content and b'id="remove-form"' in page.content
    response = client.post(
        f"/storms/{PAUSED}/remove/", {"confirm": PAUSED, "csrfmiddlewaretoken": csrf}
    )
    assert response.status_code == 302
    assert zk.get_data(f"/assignments/{PAUSED}") is None


def test_confirmation_reads_the_storm_base_not_a_storm_view(cluster, zk, operator, monkeypatch):
    from stormui import cluster as cluster_module
    from stormui import source as source_module

    def no_view(*args, **kwargs):
        raise AssertionError("the confirmation built a StormView")

    monkeypatch.setattr(cluster_module, "build_storm_view", no_view)
    monkeypatch.setattr(source_module.Source, "storm_view", no_view)
    client, csrf = csrf_client(operator)
    page = client.get(f"/storms/{HEALTHY}/remove/")
    assert page.status_code == 200
    assert page.context["storm_name"] == "healthy"
    assert b'name="confirm"' in page.content
    # an inactive storm's name went with its base: its id confirms it
    assert client.get(f"/storms/{PAUSED}/remove/").context["storm_name"] == PAUSED
    assert client.get("/storms/no-such-storm-1-1/remove/").status_code == 404
    response = client.post(
        f"/storms/{HEALTHY}/deactivate/", {"confirm": "healthy", "csrfmiddlewaretoken": csrf}
    )
    assert response.status_code == 302 and response["Location"] == f"/storms/{HEALTHY}/"
    assert zk.get_data(f"/storms/{HEALTHY}") is None
    assert "healthy: deactivated." in [str(m) for m in get_messages(response.wsgi_request)]


def test_viewer_sees_no_action_forms(cluster, viewer):
    client, _ = csrf_client(viewer)
    page = client.get(f"/storms/{HEALTHY}/")
    assert page.status_code == 200
    assert b'id="storm-actions"' not in page.content
    assert client.get(f"/storms/{HEALTHY}/deactivate/").status_code == 403
    # looking is not an attempt
    assert not AuditEntry.objects.exists()


# -- kill and the schedule ------------------------------------------------------------------------


def test_kill_deactivates_at_once_and_removes_from_the_schedule(cluster, zk, token):
    client = Client(enforce_csrf_checks=True)
    before = dump(zk)
    response = client.post(api(HEALTHY, "kill/0"), HTTP_AUTHORIZATION=f"Token {token}")
    assert response.status_code == 200
    assert response.json() == {
        "topologyOperation": "kill",
        "topologyId": HEALTHY,
        "status": "success",
    }
    assert dump(zk) == {p: d for p, d in before.items() if p != f"/storms/{HEALTHY}"}
    entry = ScheduledRemoval.objects.get()
    assert entry.pending and entry.storm_id == HEALTHY and entry.created_by_username == "olga"

    results = run_due()
    assert [(r.storm_id, r.outcome) for r in results] == [(HEALTHY, "success")]
    assert dump(zk) == without(before, HEALTHY, STORM_SUBTREES)
    entry.refresh_from_db()
    assert not entry.pending and entry.outcome == "success"
    assert run_due() == []
    assert list(AuditEntry.objects.order_by("id").values_list("action", "outcome", "via")) == [
        ("kill", "success", "api"),
        ("remove", "success", "schedule"),
    ]
    assert AuditEntry.objects.get(via="schedule").username == "olga"


def test_kill_waits_as_long_as_asked(cluster, zk, token):
    client = Client(enforce_csrf_checks=True)
    asked = timezone.now()
    response = client.post(api(TROUBLED, "kill/1"), HTTP_AUTHORIZATION=f"Token {token}")
    answered = timezone.now()
    assert response.status_code == 200
    due_at = ScheduledRemoval.objects.get().due_at
    assert asked + timedelta(seconds=1) <= due_at <= answered + timedelta(seconds=1)
    # the schedule is run at given times, not at whatever time this machine reaches it
    assert run_due(due_at - timedelta(milliseconds=1)) == []  # not due yet
    assert zk.get_data(f"/assignments/{TROUBLED}") is not None
    results = run_due(due_at)
    assert [r.outcome for r in results] == ["success"]
    assert zk.get_data(f"/assignments/{TROUBLED}") is None


def test_kill_wait_out_of_range_is_400(cluster, zk, token):
    client = Client(enforce_csrf_checks=True)
    before = dump(zk)
    for wait in ("601", "-1", "soon"):
        response = client.post(api(HEALTHY, f"kill/{wait}"), HTTP_AUTHORIZATION=f"Token {token}")
        assert_json_error(response, 400)
    asked = timezone.now()
    response = client.post(api(HEALTHY, "kill/600"), HTTP_AUTHORIZATION=f"Token {token}")
    assert response.status_code == 200
    assert ScheduledRemoval.objects.get().due_at >= asked + timedelta(seconds=600)
    assert dump(zk) == {p: d for p, d in before.items() if p != f"/storms/{HEALTHY}"}


def test_scheduled_removal_of_a_storm_already_gone_is_not_found(cluster, zk, token):
    client = Client(enforce_csrf_checks=True)
    auth = {"HTTP_AUTHORIZATION": f"Token {token}"}
    assert client.post(api(PAUSED, "kill/0"), **auth).status_code == 200
    assert client.post(api(PAUSED, "remove"), **auth).status_code == 200
    assert [r.outcome for r in run_due()] == ["not-found"]
    assert ScheduledRemoval.objects.get().outcome == "not-found"


def test_a_kill_wakes_the_scheduler_once_committed(
    cluster, zk, token, django_capture_on_commit_callbacks, monkeypatch
):
    from stormui import scheduler

    woken = []
    monkeypatch.setattr(scheduler, "wake_scheduler", lambda: woken.append(1))
    client = Client(enforce_csrf_checks=True)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(api(HEALTHY, "kill/30"), HTTP_AUTHORIZATION=f"Token {token}")
        assert woken == []  # before its row is committed the scheduler would not see it
    assert response.status_code == 200
    assert woken == [1]


@pytest.mark.django_db(transaction=True)
def test_due_removal_is_run_by_a_fresh_scheduler_start(cluster, zk, operator):
    # left behind by a process that stopped before it was due
    ScheduledRemoval.objects.create(
        storm_id=TROUBLED,
        due_at=timezone.now() - timedelta(seconds=30),
        created_by=operator,
        created_by_username="olga",
    )
    scheduler = Scheduler().start()
    try:
        wait_for(lambda: zk.get_data(f"/assignments/{TROUBLED}") is None, timeout=WAIT)
    finally:
        scheduler.stop()  # lets it finish what it was doing first
    assert not scheduler.running
    assert ScheduledRemoval.objects.get().outcome == "success"
    assert AuditEntry.objects.get().via == "schedule"


@pytest.mark.django_db(transaction=True)
def test_the_asgi_application_starts_the_scheduler_before_it_serves(settings, monkeypatch):
    import asyncio

    from stormui import live, scheduler

    settings.STORMUI_SCHEDULER_THREAD = True
    # no ZooKeeper here for a relay to read (tests/stormui/test_live.py starts one this way)
    monkeypatch.setattr(live, "relays_here", lambda: False)
    served = []

    async def app(scope, receive, send):
        served.append((scope["type"], scheduler._scheduler.running))

    try:
        asyncio.run(scheduler.StartsScheduler(app)({"type": "http"}, None, None))
        assert served == [("http", True)]
    finally:
        scheduler.stop_scheduler()


def test_run_scheduled_command(cluster, zk, operator, capsys):
    from django.core.management import call_command

    ScheduledRemoval.objects.create(
        storm_id=PAUSED, due_at=timezone.now(), created_by=operator, created_by_username="olga"
    )
    call_command("run_scheduled")
    assert f"remove {PAUSED}: success" in capsys.readouterr().out
    assert zk.get_data(f"/assignments/{PAUSED}") is None


# -- concurrency ----------------------------------------------------------------------------------


def test_two_concurrent_removes_one_success_one_not_found(cluster, zk):
    before = dump(zk)
    barrier = threading.Barrier(2)
    results = []

    def remove():
        barrier.wait()
        # the service's ZooKeeper part: the database is one connection in these tests
        results.append(actions._attempt(actions.Action.REMOVE, TROUBLED))

    threads = [threading.Thread(target=remove) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert sorted((r.outcome, r.status) for r in results) == [
        ("not-found", 404),
        ("success", 200),
    ]
    assert dump(zk) == without(before, TROUBLED, STORM_SUBTREES)


# -- ZooKeeper unreachable -------------------------------------------------------------------------


def test_zookeeper_unreachable_fails_fast_and_nothing_happens_after_reconnect(
    cluster, zk, zk_server, token, operator
):
    source = get_source()
    before = persistent(dump(zk))
    client = Client(enforce_csrf_checks=True)
    auth = {"HTTP_AUTHORIZATION": f"Token {token}"}
    page_client, csrf = csrf_client(operator)
    zk_server.stop()
    try:
        wait_for(lambda: not source.state.connected, timeout=WAIT)
        # answered while ZooKeeper is still down: an action that waited for the reconnect
        # would never answer here (and the nothing-happens check below catches a queued write)
        for op in ("remove", "deactivate", "kill/0"):
            response = client.post(api(HEALTHY, op), **auth)
            assert "ZooKeeper unreachable" in assert_json_error(response, 503)["error"]
        response = page_client.post(
            f"/storms/{HEALTHY}/deactivate/", {"confirm": "healthy", "csrfmiddlewaretoken": csrf}
        )
        assert response.status_code == 302
        assert "ZooKeeper unreachable" in str(list(get_messages(response.wsgi_request))[-1])
    finally:
        zk_server.start()
    wait_for(lambda: source.state.connected and zk.connected, timeout=WAIT)
    # anything left in a queue would have run by now
    wait_for(lambda: get_source().zk_connected, timeout=WAIT)
    assert persistent(dump(zk)) == before
    assert not ScheduledRemoval.objects.exists()
    assert list(AuditEntry.objects.order_by("id").values_list("action", "outcome", "via")) == [
        ("remove", "failed", "api"),
        ("deactivate", "failed", "api"),
        ("kill", "failed", "api"),
        ("deactivate", "failed", "page"),
    ]


def test_scheduled_removal_waits_out_an_outage(cluster, zk, zk_server, operator):
    ScheduledRemoval.objects.create(
        storm_id=PAUSED, due_at=timezone.now(), created_by=operator, created_by_username="olga"
    )
    source = get_source()
    zk_server.stop()
    try:
        wait_for(lambda: not source.state.connected, timeout=WAIT)
        tried = timezone.now()
        assert [r.status for r in run_due()] == [503]
    finally:
        zk_server.start()
    entry = ScheduledRemoval.objects.get()
    # put off by the retry delay from when it was tried (ZooKeeper's start may take longer)
    assert entry.pending and entry.attempts == 1
    assert entry.due_at >= tried + timedelta(seconds=scheduler.RETRY_SECS)
    wait_for(lambda: source.state.connected and zk.connected, timeout=WAIT)
    assert zk.get_data(f"/assignments/{PAUSED}") is not None
    assert [r.outcome for r in run_due(entry.due_at)] == ["success"]
    assert zk.get_data(f"/assignments/{PAUSED}") is None


# -- the audit page ------------------------------------------------------------------------------


def test_audit_page_is_for_staff(cluster, operator, viewer):
    actions.perform(viewer, "remove", HEALTHY, "api", "10.0.0.7")
    staff = User.objects.create_user("sam", password=PASSWORD, is_staff=True)
    anonymous = Client().get("/audit/")
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/accounts/login/")
    client = Client()
    client.force_login(operator)
    assert client.get("/audit/").status_code == 403
    client.force_login(staff)
    page = client.get("/audit/")
    assert page.status_code == 200
    assert b"victor" in page.content and b"10.0.0.7" in page.content
    assert b'data-outcome="refused"' in page.content
    assert client.get("/audit/?outcome=success").content.count(b"<tr class=") == 0


# -- activate ------------------------------------------------------------------------------------


def record_bases():
    """What the relaying process's recorder stores, recorded now in the test's transaction."""
    from stormui.bases import BaseRecorder

    recorder = BaseRecorder(get_source())
    assert recorder.record()
    return recorder


def stored_base(storm_id):
    from stormui.models import SeenStormBase

    seen = SeenStormBase.objects.filter(storm_id=storm_id).first()
    return seen.storm_base() if seen is not None else None


def test_api_activate_writes_back_the_base_seen_while_active(cluster, zk, token):
    from clusterstate import StormBase

    record_bases()
    launch = cluster.storms[HEALTHY]["launch"]
    assert stored_base(HEALTHY) == StormBase("healthy", launch)
    client = Client(enforce_csrf_checks=True)
    auth = {"HTTP_AUTHORIZATION": f"Token {token}"}
    before = dump(zk)
    assert client.post(api(HEALTHY, "deactivate"), **auth).status_code == 200
    assert zk.get_data(f"/storms/{HEALTHY}") is None

    response = client.post(api(HEALTHY, "activate"), **auth)
    assert response.status_code == 200
    assert response.json() == {
        "topologyOperation": "activate",
        "topologyId": HEALTHY,
        "status": "success",
    }
    # answered once ZooKeeper holds it: the storm is as it was before the deactivate
    assert get_source().storm_state.storm_base(HEALTHY) == StormBase("healthy", launch)
    assert dump(zk) == before
    # active again: nothing to activate
    response = client.post(api(HEALTHY, "activate"), **auth)
    assert "already active" in assert_json_error(response, 409)["error"]
    assert dump(zk) == before
    assert list(AuditEntry.objects.order_by("id").values_list("action", "outcome", "via")) == [
        ("deactivate", "success", "api"),
        ("activate", "success", "api"),
        ("activate", "refused", "api"),
    ]
    assert last_entry().username == "olga"


def test_activate_is_404_without_a_base_seen_or_an_assignment(cluster, zk, token):
    record_bases()
    # paused was never seen active; broken's base could not be read; troubled is removed below
    assert stored_base(PAUSED) is None and stored_base(BROKEN) is None
    assert stored_base(TROUBLED) is not None
    client = Client(enforce_csrf_checks=True)
    auth = {"HTTP_AUTHORIZATION": f"Token {token}"}
    assert client.post(api(TROUBLED, "remove"), **auth).status_code == 200
    before = dump(zk)
    response = client.post(api(PAUSED, "activate"), **auth)
    assert "never saw" in assert_json_error(response, 404)["error"]
    response = client.post(api(TROUBLED, "activate"), **auth)
    assert_json_error(response, 404)
    for storm_id in ("no-such-storm", "..", "a%00b"):
        assert_json_error(client.post(api(storm_id, "activate"), **auth), 404)
    assert dump(zk) == before
    outcomes = AuditEntry.objects.filter(action="activate").values_list("outcome", flat=True)
    assert list(outcomes) == ["not-found"] * 5


def test_broken_storm_is_not_activated_over_its_unreadable_base(cluster, zk, token):
    client = Client(enforce_csrf_checks=True)
    before = dump(zk)
    response = client.post(api(BROKEN, "activate"), HTTP_AUTHORIZATION=f"Token {token}")
    assert_json_error(response, 409)
    assert dump(zk) == before


def test_activate_refusals_leave_zookeeper_unchanged(cluster, zk, deactivator, operator, settings):
    record_bases()
    cluster.writer.deactivate_storm(HEALTHY)
    before = dump(zk)
    anonymous, csrf = csrf_client()
    assert_json_error(anonymous.post(api(HEALTHY, "activate"), HTTP_X_CSRFTOKEN=csrf), 401)
    page = anonymous.post(
        f"/storms/{HEALTHY}/activate/", {"confirm": HEALTHY, "csrfmiddlewaretoken": csrf}
    )
    assert page.status_code == 302 and "/accounts/login/" in page["Location"]
    # deactivating is not activating
    client, csrf = csrf_client(deactivator)
    response = client.post(api(HEALTHY, "activate"), HTTP_X_CSRFTOKEN=csrf)
    assert "stormui.activate_storm" in assert_json_error(response, 403)["error"]
    assert client.get(f"/storms/{HEALTHY}/activate/").status_code == 403
    client, csrf = csrf_client(operator)
    response = client.post(api(HEALTHY, "activate"))
    assert "CSRF" in assert_json_error(response, 403)["error"]
    page = client.post(f"/storms/{HEALTHY}/activate/", {"confirm": HEALTHY})
    assert page.status_code == 403
    settings.STORMUI_READ_ONLY = True
    response = client.post(api(HEALTHY, "activate"), HTTP_X_CSRFTOKEN=csrf)
    assert "read-only" in assert_json_error(response, 403)["error"]
    settings.STORMUI_READ_ONLY = False
    response = client.post(
        f"/storms/{HEALTHY}/activate/", {"confirm": "healthy", "csrfmiddlewaretoken": csrf}
    )
    assert response.status_code == 400  # an inactive storm's page shows its id, not its name
    assert dump(zk) == before
    entries = AuditEntry.objects.order_by("id").values_list("username", "action", "outcome", "via")
    assert list(entries) == [
        ("", "activate", "refused", "api"),
        ("", "activate", "refused", "page"),
        ("dora", "activate", "refused", "api"),
        ("olga", "activate", "refused", "api"),
        ("olga", "activate", "refused", "page"),
        ("olga", "activate", "refused", "api"),
        ("olga", "activate", "refused", "page"),
    ]


def test_storm_page_offers_activate_to_whom_may_when_inactive(cluster, zk, operator, viewer):
    record_bases()
    client, csrf = csrf_client(operator)
    page = client.get(f"/storms/{HEALTHY}/")
    assert b'id="activate-form"' not in page.content  # active: nothing to activate
    assert b'id="deactivate-form"' in page.content
    assert (
        client.post(
            f"/storms/{HEALTHY}/deactivate/", {"confirm": "healthy", "csrfmiddlewaretoken": csrf}
        ).status_code
        == 302
    )
    wait_for(lambda: get_source().storm_view(HEALTHY).status == "INACTIVE", timeout=WAIT)
    page = client.get(f"/storms/{HEALTHY}/")
    assert b'id="activate-form"' in page.content and b'id="deactivate-form"' not in page.content
    # a storm whose base cannot be read is not known to be inactive
    assert b'id="activate-form"' not in client.get(f"/storms/{BROKEN}/").content
    viewer_client, _ = csrf_client(viewer)
    assert b'id="storm-actions"' not in viewer_client.get(f"/storms/{HEALTHY}/").content

    confirm = client.get(f"/storms/{HEALTHY}/activate/")
    assert confirm.status_code == 200 and b'id="activate-form"' in confirm.content
    response = client.post(
        f"/storms/{HEALTHY}/activate/", {"confirm": HEALTHY, "csrfmiddlewaretoken": csrf}
    )
    assert response.status_code == 302 and response["Location"] == f"/storms/{HEALTHY}/"
    assert [str(m) for m in get_messages(response.wsgi_request)] == [f"{HEALTHY}: activated."]
    assert zk.get_data(f"/storms/{HEALTHY}") is not None
    wait_for(lambda: get_source().storm_view(HEALTHY).status == "ACTIVE", timeout=WAIT)
    assert get_source().storm_view(HEALTHY).name == "healthy"
    # a second admin with the form still open: told it is active already
    response = client.post(
        f"/storms/{HEALTHY}/activate/", {"confirm": HEALTHY, "csrfmiddlewaretoken": csrf}
    )
    assert response.status_code == 302
    assert "activate failed: already active" in str(list(get_messages(response.wsgi_request))[-1])
    assert list(AuditEntry.objects.order_by("id").values_list("action", "outcome", "via")) == [
        ("deactivate", "success", "page"),
        ("activate", "success", "page"),
        ("activate", "refused", "page"),
    ]


# -- kill after a wait, on the storm page ---------------------------------------------------------


def test_page_kill_deactivates_and_schedules_the_removal_after_the_wait(cluster, zk, operator):
    client, csrf = csrf_client(operator)
    page = client.get(f"/storms/{HEALTHY}/")
    assert b'id="kill-form"' in page.content and b'id="wait-kill"' in page.content
    confirm = client.get(f"/storms/{HEALTHY}/kill/")
    assert confirm.status_code == 200
    assert b'name="wait"' in confirm.content and b'value="30"' in confirm.content
    before = dump(zk)
    for wait in ("601", "-1", "soon", ""):
        response = client.post(
            f"/storms/{HEALTHY}/kill/",
            {"confirm": "healthy", "wait": wait, "csrfmiddlewaretoken": csrf},
        )
        assert response.status_code == 400
        assert b'id="wait-errors"' in response.content
    response = client.post(
        f"/storms/{HEALTHY}/kill/", {"confirm": "nope", "wait": "5", "csrfmiddlewaretoken": csrf}
    )
    assert response.status_code == 400 and b'id="confirm-errors"' in response.content
    assert dump(zk) == before
    assert not ScheduledRemoval.objects.exists()

    asked = timezone.now()
    response = client.post(
        f"/storms/{HEALTHY}/kill/",
        {"confirm": "healthy", "wait": "45", "csrfmiddlewaretoken": csrf},
    )
    answered = timezone.now()
    assert response.status_code == 302 and response["Location"] == f"/storms/{HEALTHY}/"
    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        "healthy: deactivated; removal scheduled in 45 s."
    ]
    assert dump(zk) == {p: d for p, d in before.items() if p != f"/storms/{HEALTHY}"}
    entry = ScheduledRemoval.objects.get()
    assert asked + timedelta(seconds=45) <= entry.due_at <= answered + timedelta(seconds=45)
    assert entry.created_by == operator
    assert run_due(entry.due_at - timedelta(milliseconds=1)) == []
    assert [r.outcome for r in run_due(entry.due_at)] == ["success"]
    assert dump(zk) == without(before, HEALTHY, STORM_SUBTREES)
    entries = AuditEntry.objects.order_by("id").values_list("action", "outcome", "via", "detail")
    assert [e[:3] for e in entries] == [
        *[("kill", "refused", "page")] * 5,
        ("kill", "success", "page"),
        ("remove", "success", "schedule"),
    ]
    assert "0 to 600 seconds" in entries[0][3] and "did not match" in entries[4][3]


def test_page_kill_needs_both_permissions(cluster, zk, deactivator):
    client, csrf = csrf_client(deactivator)
    page = client.get(f"/storms/{HEALTHY}/")
    assert b'id="deactivate-form"' in page.content and b'id="kill-form"' not in page.content
    before = dump(zk)
    response = client.post(
        f"/storms/{HEALTHY}/kill/", {"confirm": "healthy", "wait": "0", "csrfmiddlewaretoken": csrf}
    )
    assert response.status_code == 403
    assert dump(zk) == before
    assert not ScheduledRemoval.objects.exists()
    assert last_entry().outcome == "refused"
