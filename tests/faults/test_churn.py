"""100 connection faults on the mirror's session while a simulator churns the cluster:
session expiries (most), forced disconnects (the client's socket shut under it) and a
few ZooKeeper restarts. After each the mirror must converge to a fresh read; threads,
watches and memory must stay flat between the 10th and the 100th round."""

from __future__ import annotations

import gc
import re
import socket
import threading

import pytest

from clusterstate import mk_storm_cluster_state
from clusterstate.mirror import ClusterMirror
from clusterstate.zkserver import four_letter_word
from tests.clusterstate.mirror_helpers import ChangeLog
from tests.faults.conftest import fault_simulator, report, wait_converged
from tests.helpers import expire_session, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]

ROUNDS = 100
RESTART_ROUNDS = {30, 60, 90}  # ZooKeeper stopped and started (slow: a few only)
DISCONNECT_EVERY = 8  # otherwise the socket is shut under the client; the rest expire
#: the goal: converged within this many seconds of the fault's end
CONVERGE_WITHIN = 10.0


def rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def server_watches(server) -> int:
    """ZooKeeper's count of registered watches, all sessions (``wchs``)."""
    text = four_letter_word(server.host, server.port, "wchs")
    match = re.search(r"Total watches:\s*(\d+)", text)
    assert match, text
    return int(match.group(1))


def client_watchers(state) -> int:
    """The watch callbacks kazoo keeps for re-registering (its own bookkeeping)."""
    client = state.client
    return sum(len(v) for v in client._data_watchers.values()) + sum(
        len(v) for v in client._child_watchers.values()
    )


def mirror_watch_paths(mirror) -> int:
    """What the mirror should have watched: every folder and every watched record."""
    with mirror._lock:
        return len(mirror._children) + len(mirror._data)


def shut_socket(state) -> None:
    """Force a disconnect: shut the client's socket under it (kazoo reconnects itself)."""
    sock = state.client._connection._socket
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def test_hundred_faults_under_churn(own_zk, fault_conf, sessions):
    sim = fault_simulator(
        fault_conf,
        error_rate=3.0,
        churn_secs=2.0,  # a storm deactivated, one removed and one submitted every 2 s
        task_death_rate=1.0,
        supervisor_loss_rate=0.05,
        seed=11,
    )
    mirror = None
    try:
        sim.start()
        wait_for(lambda: sim.counts()["storms"] == 3, timeout=30)
        state = sessions()
        reader = mk_storm_cluster_state(sessions())
        mirror = ClusterMirror(state, heartbeat_secs=0.5, resync_secs=30)
        changes = ChangeLog()
        mirror.subscribe(lambda change: changes(change) if change.kind == "resync" else None)
        mirror.start(wait=30)

        kinds = {"expiry": [], "disconnect": [], "restart": []}
        samples = {}
        for n in range(1, ROUNDS + 1):
            if n in RESTART_ROUNDS:
                kind = "restart"
                own_zk.stop()
                wait_for(lambda: not mirror.connected, timeout=10)
                own_zk.start()
            elif n % DISCONNECT_EVERY == 0:
                kind = "disconnect"
                resyncs = len(changes.changes)
                shut_socket(state)
                # the mirror resyncs after the reconnect
                wait_for(lambda r=resyncs: len(changes.changes) > r, timeout=CONVERGE_WITHIN)
            else:
                kind = "expiry"
                expire_session(state)
            try:
                kinds[kind].append(wait_converged(mirror, reader, CONVERGE_WITHIN))
            except AssertionError as exc:
                raise AssertionError(f"round {n} ({kind}): {exc}") from None
            if n in (10, ROUNDS):
                gc.collect()
                samples[n] = {
                    "threads": threading.active_count(),
                    "server_watches": server_watches(own_zk),
                    "client_watchers": client_watchers(state),
                    "mirror_paths": mirror_watch_paths(mirror),
                    "rss": rss_bytes(),
                    "objects": len(gc.get_objects()),
                }
        first, last = samples[10], samples[ROUNDS]
        counts = sim.counts()
        report(
            "churn",
            **{f"{k}_n": len(v) for k, v in kinds.items()},
            **{f"{k}_max": max(v) for k, v in kinds.items()},
            **{f"{k}_mean": sum(v) / len(v) for k, v in kinds.items()},
            **{f"{k}_10": v for k, v in first.items()},
            **{f"{k}_100": v for k, v in last.items()},
            sim_submitted=counts["submitted"],
            sim_removed=counts["removed"],
            sim_errors=counts["errors"],
            sim_deaths=counts["task_deaths"],
            sim_losses=counts["supervisor_losses"],
        )
        assert counts["removed"] >= 5 and counts["task_deaths"] >= 20  # it did churn
        # flat: a leak of one thread, watch or a few hundred KB per round would show
        assert last["threads"] <= first["threads"] + 5, (first, last)
        # the cluster's size moves with the churn: the mirror's paths say by how much
        allowed = max(first["mirror_paths"], last["mirror_paths"]) * 2 + 50
        assert last["server_watches"] <= allowed, (first, last)
        assert last["client_watchers"] <= allowed, (first, last)
        assert last["rss"] - first["rss"] <= 40 * 2**20, (first, last)
        assert last["objects"] <= first["objects"] * 1.3 + 20_000, (first, last)
    finally:
        if not own_zk.is_running():
            own_zk.start()
        if mirror is not None:
            mirror.stop()
        sim.stop()
