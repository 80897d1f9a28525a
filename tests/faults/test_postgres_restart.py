"""PostgreSQL stopped and started again under a daphne that serves, acts and records.

A real daphne on a PostgreSQL of the test's own, with the history on and room for only a
few items waiting (``STORMUI_HISTORY_BUFFER``); a writer keeps reporting errors and switching
a storm, a poller keeps reading pages and the API. PostgreSQL is stopped (a fast shutdown:
every connection cut), then started again on the same port; the daphne is never restarted.
Pass criteria, on events:

- while it is down the pages and the API keep serving ZooKeeper's figures (a storm submitted
  meanwhile shows); an admin action answers 503 with a JSON error naming the database (no
  500, no trace), does nothing and leaves nothing half done; the history's writer keeps what
  fits and counts what it drops (``test_history_database.py`` checks that account in detail);
- once it is back, without restarting anything: an admin action succeeds and is audited,
  the history's writer writes again, and nothing answered 500 meanwhile.
"""

from __future__ import annotations

import http.cookiejar
import json
import re
import secrets
import urllib.error
import urllib.parse
import urllib.request

import psycopg
import pytest
from django.contrib.auth.hashers import make_password

from clusterstate import TaskInfo
from tests.faults.conftest import Poller, Writer, dropped_errors, get, metric, report
from tests.faults.conftest import stored_errors as stored
from tests.helpers import wait_for
from tests.pgserver import PostgresServer
from tests.stormui.conftest import HEALTHY
from tests.stormui.served import Served

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

BUFFER = 20
#: the writer's errors go to tasks of their own (a bolt's), beside the known cluster's
TASKS = range(100, 110)
ACTED = "acted-9-9000"

USER, PASSWORD = "operator", "not-a-secret-9"

_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def api_token(database_url: str) -> str:
    """A superuser (:data:`USER`) and an API token for it, written straight into the database
    (a ``manage.py`` process of its own would take longer than the rest of the set-up)."""
    key = secrets.token_hex(20)
    with psycopg.connect(database_url) as conn:
        user_id = conn.execute(
            "INSERT INTO auth_user (password, is_superuser, username, first_name, last_name,"
            " email, is_staff, is_active, date_joined)"
            " VALUES (%s, true, %s, '', '', '', true, true, now()) RETURNING id",
            (make_password(PASSWORD), USER),
        ).fetchone()[0]
        conn.execute(
            "INSERT INTO authtoken_token (key, user_id, created) VALUES (%s, %s, now())",
            (key, user_id),
        )
    return key


def act(served, token: str, action: str) -> tuple[int, dict]:
    """POST Storm's API action on :data:`ACTED` with the token: ``(status, JSON body)``."""
    request = urllib.request.Request(
        f"{served.url}/api/v1/topology/{ACTED}/{action}",
        method="POST",
        headers={"Authorization": f"Token {token}"},
    )
    try:
        with _opener.open(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


class Browser:
    """A logged-in session over HTTP: its cookies, and the CSRF token it posts back."""

    def __init__(self, served):
        self.url = served.url
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPCookieProcessor(self.cookies)
        )
        status, _ = self.post("/accounts/login/", username=USER, password=PASSWORD)
        assert status == 200 and self.cookie("sessionid"), status  # followed to the cluster

    def cookie(self, name: str) -> str | None:
        return next((c.value for c in self.cookies if c.name == name), None)

    def post(self, path: str, **fields) -> tuple[int, str]:
        """GET the form (for its CSRF token), then POST ``fields`` to it; redirects followed."""
        with self.opener.open(self.url + path, timeout=30) as response:
            token = re.search(
                r'name="csrfmiddlewaretoken" value="([^"]+)"', response.read().decode()
            )
        data = urllib.parse.urlencode({**fields, "csrfmiddlewaretoken": token[1]}).encode()
        request = urllib.request.Request(
            self.url + path, data=data, headers={"Referer": self.url + path}
        )
        try:
            with self.opener.open(request, timeout=30) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def post_again(self, path: str, **fields) -> tuple[int, str]:
        """POST with the token already held (the form's GET may need the database too)."""
        data = urllib.parse.urlencode({**fields, "csrfmiddlewaretoken": self.cookie("csrftoken")})
        request = urllib.request.Request(
            self.url + path, data=data.encode(), headers={"Referer": self.url + path}
        )
        try:
            with self.opener.open(request, timeout=30) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()


def audited(database_url: str) -> list[tuple[str, str]]:
    """The audit log's ``(action, outcome)`` for :data:`ACTED`, oldest first, read directly."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT action, outcome FROM stormui_auditentry WHERE storm_id = %s ORDER BY id",
            (ACTED,),
        ).fetchall()
    return [tuple(row) for row in rows]


def test_postgres_restarted_under_load(zk_server, tmp_path):
    pg = PostgresServer().start()
    served = writer = poller = None
    try:
        database_url = pg.create_database()
        served = Served(
            zk_server,
            tmp_path,
            database_url,
            extra_env={"STORMUI_HISTORY": "true", "STORMUI_HISTORY_BUFFER": str(BUFFER)},
        )
        for task_id in TASKS:
            served.writer.set_task(HEALTHY, task_id, TaskInfo("faulty-bolt", "bolt"))
        served.submit(ACTED, "acted")
        served.wait_served(ACTED)  # a first request: the relay and the history's writer start
        token = api_token(database_url)
        assert act(served, token, "deactivate")[0] == 200
        browser = Browser(served)
        writer = Writer(served.conf, tasks=TASKS)
        poller = Poller([served.url])
        writer.start()
        poller.start()
        wait_for(
            lambda: writer.written and writer.written[0] in stored(served),
            message="the history never stored the writer's first error",
        )
        pid = served.proc.pid

        # -- the outage ----------------------------------------------------------------
        pg.halt()
        halted_at = len(writer.written)
        rounds = poller.rounds
        status, body = act(served, token, "activate")
        assert status == 503, (status, body)
        assert "database" in body["error"], body
        # the same through the storm page's form, logged in (the session is in the database)
        status, page = browser.post_again(f"/storms/{ACTED}/activate/", confirm="acted")
        assert status == 503 and 'id="database-unreachable"' in page, (status, page[-500:])
        # ZooKeeper's figures go on: a storm submitted meanwhile is served
        served.submit("during-8-8000", "during")
        served.wait_served("during-8-8000")
        wait_for(
            lambda: "during-8-8000" in get(f"{served.url}/")[1],
            message="the cluster's page stopped following ZooKeeper",
        )
        # the history's writer keeps what fits, and counts the rest
        wait_for(lambda: dropped_errors(served) > 0, message="the writer never dropped anything")
        wait_for(
            lambda: poller.rounds >= rounds + 2 and len(writer.written) > halted_at,
            message="the pages or the writer stalled while PostgreSQL was down",
        )
        assert not poller.failures, poller.failures
        assert served.writer.storm_base(ACTED) is None, "the refused activate changed ZooKeeper"

        # -- back, the daphne as it was -----------------------------------------------------
        pg.resume()
        resumed_at = len(writer.written)
        status, body = act(served, token, "activate")
        assert status == 200, (status, body)
        assert served.writer.storm_base(ACTED) is not None
        status, page = browser.post(f"/storms/{ACTED}/deactivate/", confirm="acted")
        assert status == 200, (status, page[-500:])  # followed to the storm page
        # the refused attempts left no row; the others are audited once each
        assert audited(database_url) == [
            ("deactivate", "success"),
            ("activate", "success"),
            ("deactivate", "success"),
        ]
        # (those noted while its buffer was still full are dropped, and counted)
        wait_for(
            lambda: set(writer.written[resumed_at:]) & set(stored(served)),
            message="the history's writer did not write again after the restart",
        )
        writer.stop()
        poller.stop()
        assert not poller.failures, poller.failures
        assert served.proc.poll() is None and served.proc.pid == pid
        access = (tmp_path / "daphne.log").read_text(errors="replace")
        assert '" 500 ' not in access, "a request answered 500"
        report(
            "postgres_restart",
            written_while_down=resumed_at - halted_at,
            page_rounds=poller.rounds,
            dropped=int(dropped_errors(served)),
            rows_written=int(metric(served.url, "stormui_history_rows_written_total")),
        )
    finally:
        if poller is not None:
            poller.stop()
        if writer is not None:
            writer.stop()
            writer.close()
        if served is not None:
            served.close()
        pg.stop()
