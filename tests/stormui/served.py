"""The known cluster in a real ZooKeeper, served by a real daphne, for browser tests that
need live sockets (pytest-django's live server has none)."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid

from bench import live_servers
from clusterstate import (
    Assignment,
    StormBase,
    TaskInfo,
    mk_distributed_cluster_state,
    mk_storm_cluster_state,
)
from tests.helpers import WAIT, storm_conf
from tests.stormui.conftest import write_known_cluster

# the credentials come in the environment: nothing to quote into the code
_CREATE_USER = (
    "import os; from django.contrib.auth import get_user_model; "
    "get_user_model().objects.create_user("
    "os.environ['NEW_USER_NAME'], password=os.environ['NEW_USER_PASSWORD'])"
)


class Served:
    """The known cluster in ZooKeeper, a daphne serving it, and a writer with the real clock."""

    def __init__(
        self, zk_server, folder, database_url: str | None = None, extra_env: dict | None = None
    ):
        """``database_url``: the daphne's database (``server_database_factory``'s); default
        a SQLite file in ``folder``. ``extra_env``: more settings for the server's environment
        (``{"STORMUI_LOGIN_REQUIRED": "true"}``)."""
        self.folder = folder
        self.root = f"/t/{uuid.uuid4().hex}"
        self.conf = storm_conf(zk_server, self.root)
        self.known = write_known_cluster(self.conf)
        self.state = mk_distributed_cluster_state(self.conf)
        self.writer = mk_storm_cluster_state(self.state)
        self.env = live_servers.server_env(
            zk_server.connect_string,
            self.root,
            database_url or folder / "db.sqlite3",
            **(extra_env or {}),
        )
        live_servers.migrate(self.env)
        self.port = live_servers.free_port()
        self.proc = None
        self.start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        self.proc, _ = live_servers.start_daphne(self.env, self.folder, self.port)

    def stop(self):
        live_servers.stop(self.proc)

    def create_user(self, username: str, password: str) -> None:
        """A user (neither staff nor superuser) who can log in to the served dashboard."""
        subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", _CREATE_USER],
            cwd=live_servers.ROOT,
            env={**self.env, "NEW_USER_NAME": username, "NEW_USER_PASSWORD": password},
            check=True,
            timeout=120,
        )

    def submit(self, storm_id: str, name: str):
        """A new active storm of one task on sup-a."""
        now = int(time.time())
        self.writer.activate_storm(storm_id, StormBase(name, now))
        self.writer.set_task(storm_id, 1, TaskInfo("spout-x", "spout"))
        self.writer.set_assignment(
            storm_id,
            Assignment(
                f"/nimbus/{storm_id}", {"sup-a": "host-a.example"}, {1: ["sup-a", 6703]}, {1: now}
            ),
        )

    def wait_served(self, storm_id: str):
        """Until the dashboard knows ``storm_id`` (its mirror sees a change some time after
        it is written): its topology API answers 200 (503 while the cluster is first read;
        :meth:`start` waits for ``/readyz`` already)."""
        live_servers.wait_http(f"{self.url}/api/v1/topology/{storm_id}", self.proc, timeout=WAIT)

    def close(self):
        self.stop()
        self.writer.disconnect()
        self.state.close()
        self.known.writer.disconnect()
        self.known.writer.cluster_state.close()
        cleaner = mk_distributed_cluster_state({**self.conf, "storm.zookeeper.root": "/"})
        try:
            cleaner.delete_node(self.root)
        finally:
            cleaner.close()
