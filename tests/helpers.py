"""Helpers shared by the whole test suite (fixtures live in ``conftest.py``)."""

from __future__ import annotations

import contextlib
import json
import shutil
import threading
import time
import urllib.error
import urllib.request

from clusterstate.memstate import MemoryClusterState, MemoryStore, mk_memory_cluster_state
from clusterstate.protocol import CONNECTED, LOST
from clusterstate.zkserver import ZooKeeperServer

# The default bound of every wait: long enough for a machine busy with other work (a wait
# ends as soon as its condition holds; the bound only decides when a test fails).
WAIT = 30


def wait_for(predicate, timeout: float = WAIT, interval: float = 0.02, message: str = ""):
    """Poll ``predicate()`` until it returns something truthy; return that.

    :raises AssertionError: if it is still falsy after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(message or f"timed out after {timeout}s waiting for {predicate}")
        time.sleep(interval)


def delete_roots(conf: dict, *roots: str) -> None:
    """Delete ``roots`` (absolute ZooKeeper paths) and all below them, from a session on
    ``conf``'s servers opened at ``/`` (a test's cluster root, and its daphnes' election
    root beside it)."""
    from clusterstate import mk_distributed_cluster_state

    cleaner = mk_distributed_cluster_state({**conf, "storm.zookeeper.root": "/"})
    try:
        for root in roots:
            cleaner.delete_node(root)
    finally:
        cleaner.close()


@contextlib.contextmanager
def storm_session(conf: dict):
    """A Storm session (``StormClusterState``) of its own on ``conf``'s ZooKeeper and root,
    with the real clock; closed on leaving."""
    from clusterstate import mk_distributed_cluster_state, mk_storm_cluster_state

    state = mk_distributed_cluster_state(conf)
    storm_state = mk_storm_cluster_state(state)
    try:
        yield storm_state
    finally:
        storm_state.disconnect()
        state.close()


def open_socket(base_url: str, path: str, timeout: float = WAIT):
    """A real websocket to ``path`` of the daphne at ``base_url``, from its own origin."""
    from websockets.sync.client import connect

    ws_url = base_url.replace("http://", "ws://") + path
    return connect(ws_url, origin=base_url, open_timeout=timeout)


@contextlib.contextmanager
def redis_and_daphnes(conf: dict, folder, database: str, daphnes: int = 2):
    """Redis and ``daphnes`` daphnes behind it on ``conf``'s cluster, each a candidate for
    leader; yields ``(env, procs)``, ``procs`` a dict url -> process that the test may change
    (each is stopped at the end)."""
    import pytest

    from bench import live_servers
    from clusterstate.zkstate import zk_hosts

    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed (apt-get install redis-server)")
    procs: dict = {}
    redis = None
    try:
        redis, redis_url = live_servers.start_redis(folder)
        env = live_servers.server_env(
            zk_hosts(conf),
            conf["storm.zookeeper.root"],
            database,
            REDIS_URL=redis_url,
        )
        live_servers.migrate(env)
        procs.update({url: proc for proc, url in live_servers.start_daphnes(env, folder, daphnes)})
        yield env, procs
    finally:
        for proc in procs.values():
            live_servers.stop(proc)
        if redis is not None:
            live_servers.stop(redis)


def the_leader(urls: list[str], timeout: float = WAIT) -> str:
    """The one url whose daphne leads, once one does (its /metrics says ``stormui_leader
    1``); the others say 0."""
    from bench import live_servers

    leading = live_servers.wait_leader(urls, timeout=timeout)
    flags = {url: live_servers.leader_flag(url) for url in urls}
    assert flags == {url: 1 if url == leading else 0 for url in urls}
    return leading


#: a served dashboard's API asked directly, never through a proxy
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def dashboard_runs(url: str) -> dict[str, list[int]]:
    """When the history's writers started and stopped, from the timeline's API, oldest first."""
    runs = {}
    # a run's start is written with the previous run's stop, in one transaction: read the
    # stops first, so that every start written with one of them is read too
    for kind in ("dashboard-stopped", "dashboard-started"):
        with _opener.open(f"{url}/api/v1/timeline?kind={kind}&limit=1000", timeout=10) as r:
            page = json.load(r)
        assert page["next"] is None, "more runs than a page holds"
        runs[kind] = sorted(e["time"] for e in page["events"])
    return runs


class ReadSocket:
    """A live socket to a daphne, read by a thread of its own: every message, in order, in
    ``messages``; ``closed`` says why reading ended (closed by the test or the server)."""

    def __init__(self, base_url: str, path: str, timeout: float = WAIT):
        from websockets.sync.client import connect

        self.name = f"{base_url}{path}"
        self.timeout = timeout
        ws_url = base_url.replace("http://", "ws://") + path
        # read and closed from here, not in a with block: legacy=True says so
        self.ws = connect(ws_url, origin=base_url, open_timeout=timeout, legacy=True)
        self.messages: list[dict] = []
        self.closed: BaseException | None = None
        self._thread = threading.Thread(target=self._read, daemon=True, name=self.name)
        self._thread.start()

    def _read(self) -> None:
        try:
            while True:
                self.messages.append(json.loads(self.ws.recv()))
        except BaseException as exc:  # closed, by the test at the end or by the server
            self.closed = exc

    def snapshots(self, since: int = 0, *, resync: bool = False) -> list[int]:
        """Where the snapshots (with ``resync``, if asked) are in ``messages``."""
        return [
            i
            for i, m in enumerate(self.messages[since:], since)
            if m["type"] == "snapshot" and (m.get("resync") or not resync)
        ]

    def errors(self, since: int = 0) -> list[str]:
        return [m["error"] for m in self.messages[since:] if m["type"] == "error"]

    def close(self) -> None:
        self.ws.close()
        self._thread.join(self.timeout)


def receive_until(ws, predicate, timeout: float = WAIT) -> dict:
    """The first message (JSON) on the websocket ``ws`` that matches ``predicate``."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("no matching message in time")
        message = json.loads(ws.recv(timeout=left))
        if predicate(message):
            return message


class Recorder:
    """A watch callback / connection listener that records calls and lets tests wait on them.

    ``recorder.events`` holds ``(event_type, path)`` pairs (or bare states for a
    listener), in arrival order.
    """

    def __init__(self):
        self.events: list = []
        self._cond = threading.Condition()

    def __call__(self, *args):
        with self._cond:
            self.events.append(args if len(args) != 1 else args[0])
            self._cond.notify_all()

    def wait_for(self, predicate, timeout: float = WAIT):
        """Wait until ``predicate(events)`` is truthy; returns a copy of the events."""
        with self._cond:
            if not self._cond.wait_for(lambda: predicate(self.events), timeout):
                raise AssertionError(f"timed out after {timeout}s; events: {self.events}")
            return list(self.events)

    def wait_for_event(self, event, timeout: float = WAIT):
        """Wait until ``event`` has been recorded; returns a copy of the events."""
        return self.wait_for(lambda events: event in events, timeout)

    def clear(self):
        with self._cond:
            self.events.clear()


def expire_session(state, timeout: float = WAIT) -> None:
    """Force ``state``'s session to expire and wait until a new session is connected.

    For ZooKeeper this is the ZooKeeper FAQ's way: a second client joins the
    same session (same id and password) and closes it, so the server really
    ends it (its ephemeral nodes are deleted at once) and the first client is
    told its session expired. For the in-memory state it calls ``expire()``.
    Listeners see ``"lost"`` then ``"connected"``.
    """
    seen = Recorder()
    state.add_connection_listener(seen)
    try:
        if isinstance(state, MemoryClusterState):
            state.expire()
        else:
            from kazoo.client import KazooClient

            deadline = time.monotonic() + timeout
            client_id = state.client.client_id
            # the first client may win the session back before the second closes
            # it; try again until the first one is told it expired
            while LOST not in seen.events:
                if time.monotonic() > deadline:
                    raise AssertionError("could not expire the ZooKeeper session")
                other = KazooClient(hosts=state.hosts, client_id=client_id)
                try:
                    other.start(timeout=timeout)
                finally:
                    other.stop()  # sends closeSession: the server ends the session
                    other.close()
                try:
                    seen.wait_for(lambda events: LOST in events, timeout=5)
                except AssertionError:
                    continue
        seen.wait_for(lambda ev: LOST in ev and CONNECTED in ev[ev.index(LOST) :], timeout=timeout)
        wait_for(lambda: state.connected, timeout=timeout)
    finally:
        state.remove_connection_listener(seen)


class StateFactory:
    """Opens ``ClusterState`` sessions of one kind on one store and root.

    :param kind: ``"memory"`` or ``"zookeeper"``.
    :param root: the root every session is chrooted at, unless told otherwise.
    :param conf: a Storm conf (for ``"zookeeper"``).
    """

    def __init__(self, kind: str, root: str, conf: dict | None = None):
        self.kind = kind
        self.root = root
        self.conf = conf
        self.store = MemoryStore() if kind == "memory" else None
        self.states: list = []

    def __call__(self, root: str | None = None):
        """A new session chrooted at ``root`` (default: the factory's root)."""
        root = self.root if root is None else root
        if self.kind == "memory":
            state = mk_memory_cluster_state(self.store, root)
        else:
            from clusterstate.zkstate import mk_distributed_cluster_state

            state = mk_distributed_cluster_state({**self.conf, "storm.zookeeper.root": root})
        self.states.append(state)
        return state

    def close_all(self) -> None:
        for state in self.states:
            state.close()
        self.states.clear()


def storm_conf(zk_server, root: str) -> dict:
    """A Storm conf pointing at ``zk_server`` (a :class:`ZooKeeperServer`) and ``root``."""
    host, _, port = zk_server.connect_string.rpartition(":")
    return {
        "storm.zookeeper.servers": [host],
        "storm.zookeeper.port": int(port),
        "storm.zookeeper.root": root,
        "storm.zookeeper.session.timeout": 6000,
    }


def own_zookeeper(tmp_path_factory, name: str):
    """A ZooKeeper of a module's own, for tests that stop it (no other module's tests may
    see that outage): ``yield from`` it in a module-scoped ``zk_server`` fixture."""
    server = ZooKeeperServer(tmp_path_factory.mktemp(f"{name}-zookeeper")).start()
    yield server
    server.stop()
