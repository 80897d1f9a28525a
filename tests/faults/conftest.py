"""Fixtures for the fault tests: a ZooKeeper of their own (stopped and restarted at will,
without disturbing the shared one), Storm confs on it, sessions closed at teardown."""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import replace

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bench.common import FAULT_CLUSTER
from clusterstate import StormBase, mk_distributed_cluster_state, mk_storm_cluster_state
from clusterstate.simulate import Simulator
from clusterstate.zkserver import ZooKeeperServer, ZooKeeperUnavailable
from tests.clusterstate.mirror_helpers import mirror_diff
from tests.helpers import WAIT
from tests.stormui.conftest import HEALTHY, PAUSED

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


# -- served dashboards under load ------------------------------------------------------------

#: the pages :class:`Poller` GETs by default: pages and the API, none needs Redis or the database
POLLED_PAGES = ("/", "/errors/", f"/storms/{HEALTHY}/", "/api/v1/cluster/summary")

_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def get(url: str) -> tuple[int, str]:
    """``(status, body)`` of a GET, whatever the status (never through a proxy)."""
    try:
        with _opener.open(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def metric(url: str, sample: str, **labels) -> float:
    """The sum of a served dashboard's ``sample`` (``stormui_..._total``) over the samples
    with ``labels``, from its /metrics, parsed with prometheus_client's parser."""
    status, body = get(f"{url}/metrics")
    assert status == 200, body
    return sum(
        s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
        if s.name == sample and labels.items() <= s.labels.items()
    )


def stored_errors(served, storm_id: str = HEALTHY) -> list[str]:
    """The texts of ``storm_id``'s errors in a served dashboard's history ([] while the
    history does not answer)."""
    status, body = get(f"{served.url}/api/v1/errors/history?storm={storm_id}&limit=1000")
    if status != 200:
        return []
    return [e["error"] for e in json.loads(body)["errors"]]


def dropped_errors(served) -> float:
    """The errors the history's writer dropped, from /metrics."""
    return metric(served.url, "stormui_history_dropped_total", part="errors")


class Writer(threading.Thread):
    """Load on a Storm cluster: reports an error on ``storm_id``'s ``tasks`` in turn, and
    every tenth switches ``switched`` (a storm) on or off, until stopped; ``written`` holds
    the errors' texts in order. The known cluster's storms by default."""

    def __init__(
        self, conf: dict, storm_id: str = HEALTHY, tasks=range(1, 6), switched: str = PAUSED
    ):
        super().__init__(daemon=True, name="writer")
        self.state = mk_distributed_cluster_state(conf)
        self.storm = mk_storm_cluster_state(self.state)
        self.storm_id, self.tasks, self.switched = storm_id, list(tasks), switched
        self.written: list[str] = []
        self.paused_active = False
        self.failure: BaseException | None = None
        self._halt = threading.Event()

    def run(self) -> None:
        try:
            n = 0
            while not self._halt.is_set():
                text = f"e{n} {uuid.uuid4().hex[:8]}"
                self.storm.report_task_error(self.storm_id, self.tasks[n % len(self.tasks)], text)
                self.written.append(text)
                if n % 10 == 9:
                    self.switch_paused()
                n += 1
                self._halt.wait(0.05)  # the load's pace, not a wait for anything
        except BaseException as exc:
            self.failure = exc

    def switch_paused(self) -> None:
        if self.paused_active:
            self.storm.deactivate_storm(self.switched)
        else:
            self.storm.activate_storm(self.switched, StormBase("switched", int(time.time())))
        self.paused_active = not self.paused_active

    def stop(self) -> None:
        self._halt.set()
        self.join(WAIT)
        assert self.failure is None, self.failure

    def close(self) -> None:
        self.storm.disconnect()
        self.state.close()


class Poller(threading.Thread):
    """GETs every page of ``pages`` on each daphne in turn until stopped, counting the
    rounds and keeping every answer other than 200."""

    def __init__(self, urls: list[str], pages=POLLED_PAGES):
        super().__init__(daemon=True, name="poller")
        self.urls = urls
        self.pages = pages
        self.rounds = 0
        self.failures: list[tuple[str, object]] = []
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            for url in self.urls:
                for page in self.pages:
                    try:
                        status, _ = get(url + page)
                    except OSError as exc:
                        status = repr(exc)
                    if status != 200:
                        self.failures.append((url + page, status))
            self.rounds += 1
            self._halt.wait(0.1)  # the load's pace

    def stop(self) -> None:
        self._halt.set()
        self.join(WAIT)
