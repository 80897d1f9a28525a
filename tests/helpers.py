"""Helpers shared by the whole test suite (fixtures live in ``conftest.py``)."""

from __future__ import annotations

import threading
import time

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
