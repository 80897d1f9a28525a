"""An error storm: 50 reporter threads on 5 sessions, released together, 400 errors to
four tasks, most in the same second.

- ZooKeeper keeps exactly each task's newest ten, by sequence.
- The dashboard's mirror reports each error at most once, in each task's order. It reads
  after the fact, so an error trimmed before its read is never seen: "every one" is
  every error still in ZooKeeper when the mirror lists the task after its creation. What
  can be checked from outside: each task's final ten all arrive, and nothing else is
  invented or repeated. How many were trimmed unseen is measured.
- The ``/ws/errors/`` socket delivers exactly the errors the mirror reported, in the
  mirror's order.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter

import pytest
from channels.layers import channel_layers
from channels.testing import WebsocketCommunicator

from clusterstate import Assignment, StormBase, TaskInfo
from clusterstate.mirror import MAX_TASK_ERRORS
from clusterstate.paths import taskerror_path
from clusterstate.records import ordered_error_names, parse_error_name
from stormui import live
from stormui.asgi import application
from stormui.source import get_source, reset_source
from tests.clusterstate.mirror_helpers import ChangeLog
from tests.faults.conftest import report
from tests.helpers import wait_for

# the ASGI stack (sessions, auth, Channels' connection clean-up) touches the database
pytestmark = [
    pytest.mark.slow,
    pytest.mark.asyncio,
    pytest.mark.timeout(600),
    pytest.mark.django_db,
]

STORM = "storm-errors-1-1"
TASKS = (1, 2, 3, 4)
SESSIONS = 5
THREADS = 50
PER_THREAD = 8
#: a wait longer than this is stuck, however loaded the machine (seconds)
STUCK_SECS = 90


def parse_created(path: str) -> tuple[int, int]:
    """``(sequence, time_secs)`` of a created error node."""
    time_secs, seq = parse_error_name(path.rsplit("/", 1)[1])
    return seq, time_secs


def run_storm(writers) -> dict:
    """50 threads over the writers' sessions, released together; returns
    ``{text: (task_id, sequence, time_secs)}`` of every error written."""
    barrier = threading.Barrier(THREADS)
    written: dict[str, tuple[int, int, int]] = {}
    lock = threading.Lock()
    failures: list[BaseException] = []

    def reporter(n: int) -> None:
        writer = writers[n % len(writers)]
        try:
            barrier.wait(30)
            for i in range(PER_THREAD):
                task_id = TASKS[(n + i) % len(TASKS)]
                text = f"storm error t{n:02d} #{i}"
                path = writer.report_task_error(STORM, task_id, text)
                with lock:
                    written[text] = (task_id, *parse_created(path))
        except BaseException as exc:  # reported by the test below
            failures.append(exc)

    threads = [threading.Thread(target=reporter, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not failures, failures[:3]
    return written


async def receive_errors_until(comm, last: str, timeout: float) -> list[dict]:
    """Error messages from the socket up to the one whose text is ``last`` (not included);
    fails on a resync snapshot (the socket overflowed), or if ``last`` never comes."""
    got: list[dict] = []
    deadline = time.monotonic() + timeout
    while True:
        try:
            message = await comm.receive_json_from(timeout=max(deadline - time.monotonic(), 0.1))
        except TimeoutError:
            raise AssertionError(f"{last!r} never came; {len(got)} errors before") from None
        assert message["type"] != "snapshot", "the socket was resynced instead of fed"
        if message["type"] == "error":
            if message["error"] == last:
                return got
            got.append(message)


async def test_error_storm(own_zk, fault_conf, sessions, settings):
    settings.STORMUI_ZK_SERVERS = [own_zk.connect_string]
    settings.STORMUI_ZK_ROOT = fault_conf["storm.zookeeper.root"]
    settings.STORMUI_STORE = "zookeeper"
    settings.STORMUI_MIRROR = True
    reset_source()
    channel_layers.backends.clear()
    writers = [sessions.storm() for _ in range(SESSIONS)]
    setup = writers[0]
    for t in TASKS:
        setup.set_task(STORM, t, TaskInfo("bolt-x", "bolt"))
    setup.set_assignment(
        STORM,
        Assignment("/x", {"n1": "host-1"}, {t: ("n1", 6700) for t in TASKS}, {t: 1 for t in TASKS}),
    )
    setup.activate_storm(STORM, StormBase("errors", int(time.time())))
    headers = [(b"origin", b"http://localhost"), (b"host", b"localhost")]
    comm = WebsocketCommunicator(application, "/ws/errors/", headers=headers)
    try:
        connected, _ = await comm.connect(timeout=STUCK_SECS)
        assert connected
        snapshot = await comm.receive_json_from(timeout=STUCK_SECS)
        assert snapshot["type"] == "snapshot" and snapshot["errors"] == []
        source = get_source()
        changes = ChangeLog()
        unsubscribe = source.mirror.subscribe(changes)
        await asyncio.to_thread(wait_for, lambda: STORM in source.mirror.task_storms(), STUCK_SECS)

        began = time.monotonic()
        written = await asyncio.to_thread(run_storm, writers)
        storm_secs = time.monotonic() - began
        assert len(written) == THREADS * PER_THREAD

        # ZooKeeper: exactly each task's newest ten by sequence
        state = sessions()
        final = {}
        for t in TASKS:
            names = ordered_error_names(state.get_children(taskerror_path(STORM, t)))
            newest = sorted(w[1] for w in written.values() if w[0] == t)[-MAX_TASK_ERRORS:]
            assert [parse_error_name(n)[1] for n in names] == newest, t
            final[t] = newest

        # the mirror: the final ten of each task arrive; nothing twice; each task in order
        def mirrored():
            return [
                (c.task_id, e.error) for c in changes.of("errors", storm_id=STORM) for e in c.errors
            ]

        def has_final_ten():
            seen = {written[text][1] for _task, text in mirrored()}
            return all(set(final[t]) <= seen for t in TASKS)

        await asyncio.to_thread(wait_for, has_final_ten, STUCK_SECS)
        settled = time.monotonic() - began
        delivered = mirrored()
        texts = [text for _task, text in delivered]
        assert len(texts) == len(set(texts)), "an error was reported twice"
        assert set(texts) <= set(written)
        for task, text in delivered:
            assert written[text][0] == task, text
        for t in TASKS:
            seqs = [written[text][1] for task, text in delivered if task == t]
            assert seqs == sorted(seqs), f"task {t} out of order: {seqs}"
        unsubscribe()

        # the socket: exactly what the mirror reported, in its order, and nothing else before
        # a last error written after the storm
        last = "after the storm"
        await asyncio.to_thread(setup.report_task_error, STORM, TASKS[0], last)
        received = await receive_errors_until(comm, last, timeout=STUCK_SECS)
        assert [(m["task_id"], m["error"]) for m in received] == delivered
        assert all(m["storm_id"] == STORM and m["component_id"] == "bolt-x" for m in received)

        per_task = {t: sum(1 for w in written.values() if w[0] == t) for t in TASKS}
        per_second = Counter(w[2] for w in written.values())
        report(
            "error_storm",
            written=len(written),
            per_task=min(per_task.values()),
            storm_secs=storm_secs,
            seconds=len(per_second),
            most_in_one_second=max(per_second.values()),
            mirror_delivered=len(delivered),
            mirror_missed=len(written) - len(delivered),
            final_ten_in_mirror_after=settled,
            socket_received=len(received),
        )
    finally:
        await comm.disconnect()
        live.stop_relay()
        await asyncio.sleep(0)
        channel_layers.backends.clear()
        await asyncio.to_thread(reset_source)
