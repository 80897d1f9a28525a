"""The elected leader killed under load, ten times (operations.md "Many processes").

Two daphnes serve a simulated cluster (heartbeats every second) behind one Redis, on a
ZooKeeper of the faults' own; a writer reports a numbered error every 0.1 s, round robin
over the cluster's tasks (so that ZooKeeper's ten a task outlast a takeover). Each daphne
has a page open: the error feed (``/ws/errors/``) and the cluster's page
(``/ws/cluster/``). Then, ten times, the leader is SIGKILLed and started again (so two
candidates stand each time); its page dies with it and is opened again on the daphne
started in its place, while the survivor's page stays open across the kills. A leader
is killed once its history run has begun (it has recorded what ZooKeeper held as it took
over). Pass criteria, on events:

- after each kill the other daphne leads (exactly one: ``stormui_leader``), and the
  survivor's pages each get a snapshot (the feed's with ``resync``), then the errors since;
- no feed gets an error twice, nor one that a snapshot it had before held; every open feed
  showed every error written since it opened (as an error, or in a snapshot);
- at the end each numbered error written is in the history (``/api/v1/errors/history``)
  exactly once: nothing recorded is lost or recorded twice;
- the timeline has one ``dashboard-started`` a leadership, and each killed leader's run is
  closed (``dashboard-stopped``) between its start and the next leader's.

How soon the other daphne leads and the pages resync is reported (``pytest -s``), not
asserted: the waits are bounded only to name what is stuck.
"""

from __future__ import annotations

import contextlib
import json
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bench import live_servers
from clusterstate import mk_distributed_cluster_state, mk_storm_cluster_state
from tests.faults.conftest import fault_simulator, get, report
from tests.helpers import ReadSocket, dashboard_runs, redis_and_daphnes, the_leader, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

KILLS = 10
#: a wait longer than this is stuck, however loaded the machine (seconds)
STUCK_SECS = 90.0
#: the writer's errors: one this often, numbered after this prefix
ERROR_EVERY_SECS = 0.1
PREFIX = "leader-kill "
#: the simulated cluster: 3 storms of this many tasks, 30 in all (each task keeps ten
#: errors in ZooKeeper: 30 s of the writer's before any is trimmed)
TASKS_PER_STORM = 10


class NumberedWriter(threading.Thread):
    """Reports ``PREFIX<n>`` every :data:`ERROR_EVERY_SECS`, round robin over ``tasks``
    (``(storm_id, task_id)`` pairs); ``written`` holds the texts acknowledged, in order.

    A failed write fails the test, unless ``tolerant`` (ZooKeeper's servers are killed):
    then ``failed`` holds its text (it may have been written all the same) and the writer
    goes on with the next."""

    def __init__(self, conf: dict, tasks: list[tuple[str, int]], *, tolerant: bool = False):
        super().__init__(daemon=True, name="numbered-writer")
        self.state = mk_distributed_cluster_state(conf, timeout=30)
        self.storm = mk_storm_cluster_state(self.state)
        self.tasks = tasks
        self.tolerant = tolerant
        self.written: list[str] = []
        self.failed: list[str] = []
        self.failure: BaseException | None = None
        self._halt = threading.Event()

    def run(self) -> None:
        n = 0
        try:
            while not self._halt.wait(ERROR_EVERY_SECS):  # the load's pace
                text = f"{PREFIX}{n:05d}"
                try:
                    self.storm.report_task_error(*self.tasks[n % len(self.tasks)], text)
                except Exception:
                    if not self.tolerant:
                        raise
                    self.failed.append(text)
                else:
                    self.written.append(text)
                n += 1
        except BaseException as exc:
            self.failure = exc

    def stop(self) -> None:
        self._halt.set()
        self.join(STUCK_SECS)
        assert self.failure is None, self.failure

    def close(self) -> None:
        self.storm.disconnect()
        self.state.close()


class Socket(ReadSocket):
    """A page's socket, with what the checks ask of its messages."""

    def __init__(self, base_url: str, path: str):
        super().__init__(base_url, path, timeout=STUCK_SECS)

    def shown(self) -> set[str]:
        """Every error this socket showed: in a snapshot or as an error."""
        shown: set[str] = set()
        for message in list(self.messages):
            if message["type"] == "snapshot":
                shown.update(e["error"] for e in message.get("errors", ()))
            elif message["type"] == "error":
                shown.add(message["error"])
        return shown

    def repeats(self) -> list[str]:
        """Errors this socket got while the page showed them: a snapshot replaces what the
        feed shows (live.js), errors come on top of it."""
        shown: set[str] = set()
        again = []
        for message in list(self.messages):
            if message["type"] == "snapshot":
                shown = {e["error"] for e in message.get("errors", ())}
            elif message["type"] == "error":
                if message["error"] in shown:
                    again.append(message["error"])
                shown.add(message["error"])
        return again

    def trace(self, text: str) -> list:
        """Where ``text`` came: ``(index, type, resync)`` of each message holding it, with the
        messages' types between (for a failure's message)."""
        out = []
        for i, m in enumerate(list(self.messages)):
            held = m.get("error") == text or any(
                e["error"] == text for e in m.get("errors", ()) if m["type"] == "snapshot"
            )
            if held or m["type"] not in ("error", "cluster"):
                out.append((i, m["type"], m.get("resync"), held))
        return out


class Page:
    """A page's sockets on one daphne: the error feed and the cluster's page, opened once
    ``since`` errors were written."""

    def __init__(self, base_url: str, since: int):
        self.url = base_url
        self.since = since
        self.feed = Socket(base_url, "/ws/errors/")
        self.cluster = Socket(base_url, "/ws/cluster/")
        self.sockets = (self.feed, self.cluster)
        wait_for(
            lambda: all(s.snapshots() for s in self.sockets),
            timeout=STUCK_SECS,
            message=f"a socket on {base_url} had no first snapshot",
        )

    def close(self) -> None:
        for s in self.sockets:
            s.close()

    def check_feed(self, writer: NumberedWriter) -> None:
        """The feed got no error twice, and showed every error written since it opened
        (as an error, or in a snapshot after a resync)."""
        feed = self.feed
        again = feed.repeats()
        assert not again, f"{feed.name} got errors again: {again[:10]}; {feed.trace(again[0])}"
        shown = feed.shown()
        missing = [t for t in writer.written[self.since :] if t not in shown]
        assert not missing, f"{feed.name} never showed {len(missing)}: {missing[:10]}"


def history_texts(url: str) -> list[str]:
    """Every error text in the history, paged through (newest first)."""
    texts: list[str] = []
    cursor = None
    while True:
        query = "limit=1000" + (f"&cursor={cursor}" if cursor else "")
        status, body = get(f"{url}/api/v1/errors/history?{query}")
        assert status == 200, body
        page = json.loads(body)
        texts += [e["error"] for e in page["errors"]]
        cursor = page["next"]
        if not cursor:
            return texts


def runs_are_consistent(runs: dict[str, list[int]], leaderships: int) -> None:
    """One run a leadership; each but the last closed between its start and the next's."""
    started, stopped = runs["dashboard-started"], runs["dashboard-stopped"]
    assert len(started) == leaderships, runs
    assert len(stopped) == leaderships - 1, runs
    for i, stop in enumerate(stopped):
        assert started[i] <= stop <= started[i + 1], (i, runs)


@contextlib.contextmanager
def simulated_cluster(conf: dict):
    """The faults' small cluster, 3 storms of :data:`TASKS_PER_STORM` tasks beating every
    second, no errors of its own; yields its ``(storm_id, task_id)`` pairs."""
    sim = fault_simulator(conf, tasks_per_storm=TASKS_PER_STORM, heartbeat_secs=1.0, error_rate=0.0)
    sim.start()
    try:
        wait_for(
            lambda: sim.counts()["tasks"] == 3 * TASKS_PER_STORM,
            timeout=STUCK_SECS,
            message="the simulator's cluster was never whole",
        )
        state = mk_distributed_cluster_state(conf, timeout=30)
        try:
            storms = mk_storm_cluster_state(state)
            tasks = [
                (storm_id, task_id)
                for storm_id in sorted(storms.active_storms())
                for task_id in sorted(storms.task_ids(storm_id))
            ]
        finally:
            state.close()
        assert len(tasks) == 3 * TASKS_PER_STORM, tasks
        yield tasks
    finally:
        sim.stop()


class Run:
    """The daphnes, their pages and the writer, as the kills change them."""

    def __init__(self, env: dict, folder: Path, daphnes: dict, writer: NumberedWriter):
        self.env, self.folder, self.daphnes, self.writer = env, folder, daphnes, writer
        self.pages: dict[str, Page] = {}
        self.closed: list[Page] = []  # the killed daphnes' pages
        self.starting = None  # the daphne being started again (a future)
        self.kill_marks: list[int] = []  # errors written before each kill
        self.figures: dict[str, list[float]] = {"leads": [], "resynced": [], "errors_flow": []}

    def kill_the_leader(self, kill: int, starter: ThreadPoolExecutor) -> None:
        """SIGKILL the leader, start it again; the other must lead and its pages resync."""
        daphnes, writer = self.daphnes, self.writer
        leader = the_leader(list(daphnes), STUCK_SECS)
        (follower,) = [url for url in daphnes if url != leader]
        survivor = self.pages[follower]
        # the leader writes the history: its run has begun (and with it, it has recorded
        # what ZooKeeper held as it took over) before it is killed
        wait_for(
            lambda: len(dashboard_runs(leader)["dashboard-started"]) == kill + 1,
            timeout=STUCK_SECS,
            message=f"kill {kill + 1}: the leader's run never began",
        )
        marks = {s: len(s.messages) for s in survivor.sockets}
        written_before = len(writer.written)
        self.kill_marks.append(written_before)
        killed_at = time.monotonic()
        proc = daphnes.pop(leader)
        proc.kill()  # its election node goes only with its session
        proc.wait()
        # started again at once, on a new port: it stands behind the survivor
        self.starting = starter.submit(
            live_servers.start_daphne, self.env, self.folder, name=f"daphne-again-{kill}"
        )
        assert the_leader([follower], STUCK_SECS) == follower
        self.figures["leads"].append(time.monotonic() - killed_at)
        # every page starts again from a snapshot: what it had came from the old leader (the
        # feed's says ``resync``: the feed replaces what it shows)
        try:
            wait_for(
                lambda: (
                    survivor.feed.snapshots(marks[survivor.feed], resync=True)
                    and survivor.cluster.snapshots(marks[survivor.cluster])
                ),
                timeout=STUCK_SECS,
            )
        except AssertionError:
            got = {
                s.name: [(m["type"], m.get("resync")) for m in s.messages[marks[s] :]][:40]
                for s in survivor.sockets
            }
            raise AssertionError(f"kill {kill + 1}: no resync on the survivor: {got}") from None
        self.figures["resynced"].append(time.monotonic() - killed_at)
        # and errors flow again: one written after the kill reaches the survivor's feed
        wait_for(
            lambda: (
                set(survivor.feed.errors(marks[survivor.feed]))
                & set(writer.written[written_before:])
            ),
            timeout=STUCK_SECS,
            message=f"kill {kill + 1}: no error written after the kill reached the feed",
        )
        self.figures["errors_flow"].append(time.monotonic() - killed_at)
        # the killed daphne's page is opened again on the one started in its place
        self.closed.append(self.pages.pop(leader))
        proc, url = self.starting.result(timeout=STUCK_SECS)
        daphnes[url] = proc
        self.starting = None
        self.pages[url] = Page(url, len(writer.written))
        report(
            f"kill {kill + 1}",
            leads=self.figures["leads"][-1],
            resynced=self.figures["resynced"][-1],
            errors_flow=self.figures["errors_flow"][-1],
        )

    def close(self) -> None:
        if self.starting is not None and self.starting.exception(timeout=STUCK_SECS) is None:
            live_servers.stop(self.starting.result()[0])
        for page in [*self.closed, *self.pages.values()]:
            page.close()


def test_the_leader_killed_ten_times_under_load(fault_conf, tmp_path, server_database_factory):
    began = time.monotonic()
    database = server_database_factory(tmp_path)
    with (
        simulated_cluster(fault_conf) as tasks,
        redis_and_daphnes(fault_conf, tmp_path, database) as (env, daphnes),
        ThreadPoolExecutor(1) as starter,
    ):
        leader = the_leader(list(daphnes), STUCK_SECS)
        writer = NumberedWriter(fault_conf, tasks)
        run = Run(env, tmp_path, daphnes, writer)
        writer.start()
        try:
            run.pages.update({url: Page(url, len(writer.written)) for url in daphnes})
            # the leader relays to both daphnes
            wait_for(
                lambda: all(p.feed.errors() for p in run.pages.values()),
                timeout=STUCK_SECS,
                message="no error reached a feed before the kills",
            )
            for kill in range(KILLS):
                run.kill_the_leader(kill, starter)
            leader = the_leader(list(daphnes), STUCK_SECS)
            writer.stop()
            # the last error written reaches every open feed, and the history holds them all
            last = writer.written[-1]
            wait_for(
                lambda: all(last in p.feed.shown() for p in run.pages.values()),
                timeout=STUCK_SECS,
                message="the last error never reached a feed",
            )
            expected = set(writer.written)
            try:
                wait_for(lambda: expected <= set(history_texts(leader)), timeout=STUCK_SECS)
            except AssertionError:
                missing = sorted(expected - set(history_texts(leader)))
                raise AssertionError(
                    f"the history lacks {len(missing)} errors written: {missing[:50]}; "
                    f"kills at {run.kill_marks}, missed {get(leader + '/api/v1/errors/history')}"
                ) from None
            recorded = [t for t in history_texts(leader) if t.startswith(PREFIX)]
            twice = sorted({t for t in recorded if recorded.count(t) > 1})
            assert not twice, f"recorded twice: {twice[:10]}"
            assert sorted(recorded) == sorted(writer.written)
            runs_are_consistent(dashboard_runs(leader), KILLS + 1)
            for page in run.closed:  # up to its daphne's kill
                again = page.feed.repeats()
                assert not again, f"{again[:10]}; {page.feed.trace(again[0])}"
            for page in run.pages.values():
                page.check_feed(writer)
        finally:
            run.close()
            writer.stop()
            writer.close()
    for name, values in run.figures.items():
        report(f"{KILLS} kills, {name}", p50=statistics.median(values), max=max(values))
    report("leader killed", secs=time.monotonic() - began, errors=len(writer.written))
