"""Fixtures for the hostile-input tests: the dashboard on a test root, and a watch on
everything outside that root, so a test can prove nothing there was read or written."""

from __future__ import annotations

import pytest

from clusterstate import mk_distributed_cluster_state
from stormui.source import get_source, reset_source

# the known cluster of the page tests, reused as the target of hostile requests
from tests.stormui.conftest import known_cluster, stormui_mirror  # noqa: F401

#: markers of a Django or Python trace that must never reach a response
TRACE_MARKERS = ("Traceback", 'File "', "Exception Value", "django.core", "clusterstate.")


def read_tree(state, path: str = "/", skip=()) -> dict[str, bytes | None]:
    """Every node under ``path`` (through a ClusterState rooted at ``/``) with its data."""
    out = {}
    stack = [path]
    while stack:
        node = stack.pop()
        if node in skip:
            continue
        out[node] = state.get_data(node)
        for child in state.get_children(node):
            stack.append(f"{node.rstrip('/')}/{child}")
    return out


class Outside:
    """Everything in ZooKeeper outside one root: a planted sibling root (a cluster of its
    own, with the names an escaped path would hit) and whatever else exists."""

    def __init__(self, zk_conf):
        self.root = zk_conf["storm.zookeeper.root"]
        self.sibling = self.root + "-sibling"
        self.state = mk_distributed_cluster_state({**zk_conf, "storm.zookeeper.root": "/"})
        for path, data in {
            "/storms/s1": b'{"storm_name":"sibling","launch_time_secs":1}',
            "/assignments/s1": b"{}",
            "/tasks/s1/1": b'{"component_id":"c"}',
            "/taskbeats/s1/1": b"{}",
            "/taskerrors/s1/1/1700000000-0000000001": b"sibling error",
            "/supervisors/sup": b"{}",
        }.items():
            self.state.set_data(self.sibling + path, data)
        self.before = self.snapshot()

    def snapshot(self) -> dict[str, bytes | None]:
        return read_tree(self.state, "/", skip={self.root, "/zookeeper"})

    def assert_unchanged(self) -> None:
        after = self.snapshot()
        added = sorted(set(after) - set(self.before))
        removed = sorted(set(self.before) - set(after))
        assert not added and not removed, f"outside the root: added {added}, removed {removed}"
        changed = sorted(p for p in after if after[p] != self.before[p])
        assert not changed, f"outside the root, data changed: {changed}"

    def close(self) -> None:
        try:
            self.state.delete_node(self.sibling)
        finally:
            self.state.close()


@pytest.fixture
def outside(zk_conf):
    """A snapshot of ZooKeeper outside this test's root; ``outside.assert_unchanged()``."""
    watch = Outside(zk_conf)
    yield watch
    watch.close()


def watched_paths(state) -> set[str]:
    """The full server paths a ZooKeeper ClusterState holds watches on (kazoo's own tables)."""
    client = state.client
    return {p for p, watchers in client._data_watchers.items() if watchers} | {
        p for p, watchers in client._child_watchers.items() if watchers
    }


def assert_watches_inside(state, root: str) -> None:
    stray = sorted(p for p in watched_paths(state) if not (p == root or p.startswith(root + "/")))
    assert not stray, f"watches outside {root}: {stray}"


@pytest.fixture
def dashboard(settings, zk_server, zk_conf, stormui_mirror):  # noqa: F811
    """Django's source pointed at this test's (empty) root; the root removed afterwards."""
    host, _, port = zk_server.connect_string.rpartition(":")
    settings.STORMUI_ZK_SERVERS = [f"{host}:{port}"]
    settings.STORMUI_ZK_ROOT = zk_conf["storm.zookeeper.root"]
    settings.STORMUI_STORE = "zookeeper"
    settings.STORMUI_MIRROR = stormui_mirror
    settings.STORMUI_HEARTBEAT_SECS = 0.2
    settings.STORMUI_SCHEDULER_THREAD = False
    reset_source()
    try:
        source = get_source()
        # pages answer at once, saying the cluster is being read, until the first read ends
        assert source.wait_synced(30), "the source never synced"
        yield source
    finally:
        reset_source()
        cleaner = mk_distributed_cluster_state({**zk_conf, "storm.zookeeper.root": "/"})
        try:
            cleaner.delete_node(zk_conf["storm.zookeeper.root"])
        finally:
            cleaner.close()


def assert_no_trace(response) -> None:
    body = response.content.decode("utf-8", errors="replace")
    for marker in TRACE_MARKERS:
        assert marker not in body, (response.status_code, marker, body[:2000])


@pytest.fixture(autouse=True)
def kazoo_keeps_its_own_random(monkeypatch):
    """kazoo's threads (the tests' mirrors and sessions) draw their jitter from the ``random``
    module while a fuzz test's Hypothesis draws an example; Hypothesis takes that for a
    strategy using ``random`` and warns (a HypothesisDeprecationWarning, now and then).
    Each gets a generator of its own here, for every test of this folder."""
    import random

    import kazoo.protocol.connection
    import kazoo.retry

    monkeypatch.setattr(kazoo.protocol.connection, "random", random.Random())
    monkeypatch.setattr(kazoo.retry, "random", random.Random())
