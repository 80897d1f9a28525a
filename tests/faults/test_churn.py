"""At least 100 connection faults on the mirror's session while a simulator churns the
cluster: session expiries (most), forced disconnects (the client's socket shut under it)
and a few ZooKeeper restarts. Faults go on past the 100th until the simulator has churned
enough (storms removed, tasks died), however fast the machine runs the rounds. After each
the mirror must converge to a fresh read; threads, watches and memory must stay flat
between the 10th and the last round.

How long convergence takes is reported (``pytest -s``), not asserted: the wait for it is
bounded only to name what is stuck."""

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

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

ROUNDS = 100  # faults at least; more while the churn is short of its counts
MAX_ROUNDS = 400  # a simulator that has not churned enough by then is stuck
RESTART_ROUNDS = {30, 60, 90}  # ZooKeeper stopped and started (slow: a few only)
DISCONNECT_EVERY = 8  # otherwise the socket is shut under the client; the rest expire
#: "under churn": at least this many storms removed and tasks died during the faults
MIN_REMOVED = 5
MIN_DEATHS = 20
#: a wait on the mirror longer than this is stuck, however loaded the machine (seconds)
STUCK_SECS = 90.0


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


def churned(counts: dict) -> bool:
    return counts["removed"] >= MIN_REMOVED and counts["task_deaths"] >= MIN_DEATHS


def flatness_sample(own_zk, state, mirror) -> dict:
    gc.collect()
    return {
        "threads": threading.active_count(),
        "server_watches": server_watches(own_zk),
        "client_watchers": client_watchers(state),
        "mirror_paths": mirror_watch_paths(mirror),
        "rss": rss_bytes(),
        "objects": len(gc.get_objects()),
    }


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
        wait_for(lambda: sim.counts()["storms"] == 3, timeout=STUCK_SECS)
        state = sessions()
        reader = mk_storm_cluster_state(sessions())
        mirror = ClusterMirror(state, heartbeat_secs=0.5, resync_secs=30)
        changes = ChangeLog()
        mirror.subscribe(lambda change: changes(change) if change.kind == "resync" else None)
        mirror.start(wait=STUCK_SECS)

        kinds = {"expiry": [], "disconnect": [], "restart": []}
        first = None
        n = 0
        # the simulator churns on its own clock, the faults as fast as the machine allows:
        # go on until both have done their share
        while n < ROUNDS or not churned(sim.counts()):
            n += 1
            if n > MAX_ROUNDS:
                raise AssertionError(
                    f"the simulator did not churn enough in {MAX_ROUNDS} fault rounds "
                    f"(wanted {MIN_REMOVED} storms removed and {MIN_DEATHS} task deaths): "
                    f"{sim.counts()}"
                )
            if n in RESTART_ROUNDS:
                kind = "restart"
                own_zk.stop()
                wait_for(lambda: not mirror.connected, timeout=STUCK_SECS)
                own_zk.start()
            elif n % DISCONNECT_EVERY == 0:
                kind = "disconnect"
                resyncs = len(changes.changes)
                shut_socket(state)
                # the mirror resyncs after the reconnect
                wait_for(lambda r=resyncs: len(changes.changes) > r, timeout=STUCK_SECS)
            else:
                kind = "expiry"
                expire_session(state, timeout=STUCK_SECS)
            try:
                kinds[kind].append(wait_converged(mirror, reader, STUCK_SECS))
            except AssertionError as exc:
                raise AssertionError(f"round {n} ({kind}): {exc}") from None
            if n == 10:
                first = flatness_sample(own_zk, state, mirror)
        last = flatness_sample(own_zk, state, mirror)
        counts = sim.counts()
        report(
            "churn",
            rounds=n,
            **{f"{k}_n": len(v) for k, v in kinds.items()},
            **{f"{k}_max": max(v) for k, v in kinds.items()},
            **{f"{k}_mean": sum(v) / len(v) for k, v in kinds.items()},
            **{f"{k}_10": v for k, v in first.items()},
            **{f"{k}_last": v for k, v in last.items()},
            sim_submitted=counts["submitted"],
            sim_removed=counts["removed"],
            sim_errors=counts["errors"],
            sim_deaths=counts["task_deaths"],
            sim_losses=counts["supervisor_losses"],
        )

        # flat: a leak of one thread, watch or a few hundred KB per round would show. What a
        # fault left closing (a thread, an old session's watches) goes on its own: sample
        # again until flat; a leak never is
        def flat(sample: dict) -> list[str]:
            # the cluster's size moves with the churn: the mirror's paths say by how much
            allowed = max(first["mirror_paths"], sample["mirror_paths"]) * 2 + 50
            bounds = {
                "threads": first["threads"] + 5,
                "server_watches": allowed,
                "client_watchers": allowed,
                "rss": first["rss"] + 40 * 2**20,
                "objects": first["objects"] * 1.3 + 20_000,
            }
            return [
                f"{k}: {sample[k]} > {bound}" for k, bound in bounds.items() if sample[k] > bound
            ]

        if flat(last):
            try:
                wait_for(
                    lambda: not flat(flatness_sample(own_zk, state, mirror)),
                    timeout=STUCK_SECS,
                    interval=1.0,
                )
            except AssertionError:
                last = flatness_sample(own_zk, state, mirror)
                raise AssertionError(
                    f"not flat: {flat(last)}; first {first}, last {last}"
                ) from None
    finally:
        if not own_zk.is_running():
            own_zk.start()
        if mirror is not None:
            mirror.stop()
        sim.stop()
