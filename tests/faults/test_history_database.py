"""The history's database stopped under load: what the writer kept, and what it counted.

A real daphne records the known cluster's history into a PostgreSQL of the test's own,
with room for only a few items waiting (``STORMUI_HISTORY_BUFFER``). Errors are reported
while PostgreSQL runs, then while it is down, then it comes back. Pass criteria, on
events: the pages and the live mirror go on while the database is down (the storm page
answers, the errors page shows the new errors); the writer drops what does not fit and says so in
``/metrics``; once the database is back, every error reported before the stop is stored,
nothing is stored twice or invented, every error reported meanwhile is either stored or
counted as dropped, and the history's pages say how many were dropped.
"""

from __future__ import annotations

import pytest

from clusterstate import TaskInfo
from tests.faults.conftest import dropped_errors, get, report, stored_errors
from tests.helpers import WAIT, wait_for
from tests.pgserver import PostgresServer
from tests.stormui.conftest import HEALTHY
from tests.stormui.served import Served

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

BUFFER = 20
BEFORE = 5
#: one error a task, on tasks of their own (of a bolt), so ZooKeeper trims none of them
DURING = 60
FIRST_TASK = 100


def test_the_database_stopped_under_load(zk_server, tmp_path):
    pg = PostgresServer().start()
    served = None
    try:
        served = Served(
            zk_server,
            tmp_path,
            pg.create_database(),
            extra_env={"STORMUI_HISTORY": "true", "STORMUI_HISTORY_BUFFER": str(BUFFER)},
        )
        for t in range(FIRST_TASK, FIRST_TASK + BEFORE + DURING):
            served.writer.set_task(HEALTHY, t, TaskInfo("faulty-bolt", "bolt"))
        served.wait_served(HEALTHY)  # a first request: the relay and the writer start
        before = [f"before the stop {n}" for n in range(BEFORE)]
        for n, text in enumerate(before):
            served.writer.report_task_error(HEALTHY, FIRST_TASK + n, text)
        wait_for(
            lambda: set(before) <= set(stored_errors(served)),
            timeout=WAIT,
            message="the errors before the stop were never stored",
        )

        pg.halt()
        during = [f"while the database was down {n}" for n in range(DURING)]
        for n, text in enumerate(during):
            served.writer.report_task_error(HEALTHY, FIRST_TASK + BEFORE + n, text)
        # the writer cannot keep them all: it drops the rest and says so
        wait_for(
            lambda: dropped_errors(served) > 0,
            timeout=WAIT,
            message="the writer never dropped anything",
        )
        # the mirror and the pages go on without the database
        wait_for(
            lambda: during[-1] in get(f"{served.url}/errors/")[1],
            timeout=WAIT,
            message="the errors page stopped following the cluster",
        )
        status, page = get(f"{served.url}/storms/{HEALTHY}/")
        assert status == 200, page

        pg.resume()
        dropped = dropped_errors(served)

        def accounted() -> bool:
            kept = [text for text in stored_errors(served) if text in during]
            return len(kept) + dropped_errors(served) >= DURING and kept

        wait_for(accounted, timeout=WAIT, message="errors were neither stored nor counted")
        texts = stored_errors(served)
        assert len(texts) == len(set(texts)), "an error was stored twice"
        known = {
            text
            for (storm_id, _task), task in served.known.tasks.items()
            if storm_id == HEALTHY
            for _time, text in task.errors
        }
        assert set(texts) <= known | set(before) | set(during), "an error was invented"
        assert set(before) <= set(texts)
        kept = [text for text in texts if text in during]
        dropped = dropped_errors(served)
        assert len(kept) + dropped >= DURING
        # the pages say it, from the run's row, once the database answers again
        wait_for(
            lambda: "history-dropped" in get(f"{served.url}/errors/history/")[1],
            timeout=WAIT,
            message="the history page never said what was dropped",
        )
        page = get(f"{served.url}/errors/history/")[1]
        assert f"dropped {int(dropped):,} error" in page
        report(
            "history_database",
            buffer=BUFFER,
            before=BEFORE,
            during=DURING,
            kept_during=len(kept),
            dropped=int(dropped),
        )
    finally:
        if served is not None:
            served.close()
        pg.stop()
