"""Fixtures for the fault tests: a ZooKeeper of their own (stopped and restarted at will,
without disturbing the shared one), Storm confs on it, sessions closed at teardown."""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import replace

import pytest

from bench.common import FAULT_CLUSTER
from clusterstate import mk_distributed_cluster_state, mk_storm_cluster_state
from clusterstate.simulate import Simulator
from clusterstate.zkserver import ZooKeeperServer, ZooKeeperUnavailable
from tests.clusterstate.mirror_helpers import mirror_diff

#: the session timeout the fault tests use (ms): short, so expiries are quick to reach
SESSION_TIMEOUT_MS = 4000


@pytest.fixture(scope="module")
def own_zk_server(tmp_path_factory):
    """A standalone ZooKeeper on a fixed port, for one test module; stopped at the end."""
    server = ZooKeeperServer(tmp_path_factory.mktemp("faults-zookeeper"))
    try:
        server.start()
    except ZooKeeperUnavailable as exc:
        if os.environ.get("STORMUI_ALLOW_NO_ZK") == "1":
            pytest.skip(f"ZooKeeper is not installed: {exc}")
        pytest.fail(f"ZooKeeper is not installed ({exc}); set STORMUI_ALLOW_NO_ZK=1 to skip")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def own_zk(own_zk_server):
    """The module's ZooKeeper, running (a test before may have left it stopped)."""
    # from this (the main) thread: the server dies with the thread that starts it
    return own_zk_server.start()


@pytest.fixture
def fault_conf(own_zk):
    """A Storm conf on the module's ZooKeeper, a fresh root, a 4 s session timeout."""
    return {
        "storm.zookeeper.servers": [own_zk.connect_string],
        "storm.zookeeper.root": f"/faults/{uuid.uuid4().hex}",
        "storm.zookeeper.session.timeout": SESSION_TIMEOUT_MS,
    }


class Sessions:
    """Opens ClusterState sessions on one conf; closes them all at teardown."""

    def __init__(self, conf: dict):
        self.conf = conf
        self.states: list = []

    def __call__(self, **overrides):
        state = mk_distributed_cluster_state({**self.conf, **overrides}, timeout=30)
        self.states.append(state)
        return state

    def storm(self, **overrides):
        """A StormClusterState on a new session."""
        return mk_storm_cluster_state(self(**overrides))

    def close_all(self) -> None:
        for state in self.states:
            try:
                state.close()
            except Exception:  # a test may leave one closed or broken: close the rest
                pass
        self.states.clear()


@pytest.fixture
def sessions(fault_conf):
    """``sessions()``: a new ClusterState on ``fault_conf``; ``sessions.storm()``: a
    StormClusterState. All are closed at teardown."""
    opened = Sessions(fault_conf)
    yield opened
    opened.close_all()


def report(name: str, **figures) -> None:
    """Print a test's measured figures on one line (``pytest -s`` or ``-rP`` shows them)."""
    text = " ".join(
        f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in figures.items()
    )
    print(f"\n[faults] {name}: {text}")


def settled_diff(mirror, reader) -> list[str]:
    """:func:`mirror_diff` without heartbeat data (it moves on its own), or why the fresh read
    failed (its session still reconnecting)."""
    try:
        return mirror_diff(mirror, reader, heartbeats=False)
    except Exception as exc:
        return [f"fresh read failed: {exc!r}"]


def wait_converged(mirror, reader, timeout: float) -> float:
    """Wait until the mirror is connected and equals a fresh read; return how long it took.

    :raises AssertionError: naming the last differences, after ``timeout`` seconds.
    """
    began = time.monotonic()
    deadline = began + timeout
    while True:
        last = settled_diff(mirror, reader) if mirror.connected else ["mirror not connected"]
        if not last:
            return time.monotonic() - began
        if time.monotonic() >= deadline:
            raise AssertionError(f"not converged after {timeout}s:\n" + "\n".join(last))
        time.sleep(0.05)


def fault_simulator(conf, **overrides) -> Simulator:
    """:data:`bench.common.FAULT_CLUSTER` on ``conf``, with ``overrides`` of its settings
    (no churn unless they ask for it)."""
    config = replace(FAULT_CLUSTER, **overrides)
    return Simulator(config, lambda: mk_distributed_cluster_state(conf, timeout=30))
