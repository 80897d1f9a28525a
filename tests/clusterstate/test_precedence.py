"""News first: the gate background work steps aside at while a change is on its way."""

from __future__ import annotations

import threading
import time

from clusterstate.precedence import Gate
from tests.helpers import WAIT, wait_for


def test_background_work_passes_at_once_without_news():
    gate = Gate(max_wait=WAIT)
    assert gate.step_aside() == 0.0
    gate.begin()
    gate.end()
    assert gate.step_aside() == 0.0
    assert (gate.pending, gate.waits) == (0, 0)


def test_background_work_waits_until_every_piece_of_news_has_gone():
    gate = Gate(max_wait=WAIT)  # longer than the test: only the news' end lets it on
    gate.begin(2)
    waited = []
    worker = threading.Thread(target=lambda: waited.append(gate.step_aside()))
    worker.start()
    wait_for(lambda: gate.waiting == 1, interval=0.005)
    gate.end()  # one of two gone: it still waits
    assert worker.is_alive() and gate.pending == 1
    gate.end()
    worker.join(WAIT)
    assert not worker.is_alive()
    assert len(waited) == 1 and 0.0 < waited[0] < WAIT
    assert (gate.waits, gate.waiting) == (1, 0)


def test_news_that_never_ends_holds_background_work_to_half_its_pace_at_worst():
    gate = Gate(max_wait=0.05)
    gate.begin()  # and never ended
    first = gate.step_aside()
    assert first > 0.0  # waited it out
    # right after a wait it runs on: the next checkpoints pass at once for max_wait
    assert gate.step_aside() == 0.0
    assert gate.waits == 1
    # and once max_wait has passed since, it waits again
    resumed = time.monotonic()
    wait_for(lambda: time.monotonic() - resumed >= 0.05, interval=0.005)
    assert gate.step_aside() > 0.0
    assert gate.waits == 2


def test_each_thread_keeps_its_own_pace():
    gate = Gate(max_wait=WAIT)
    gate.begin()
    gate.max_wait = 0.01
    gate.step_aside()  # this thread waited just now
    gate.max_wait = WAIT
    waited = []
    other = threading.Thread(target=lambda: waited.append(gate.step_aside()))
    other.start()
    wait_for(lambda: gate.waiting == 1, interval=0.005)  # another thread still waits for the news
    gate.end()
    other.join(WAIT)
    assert waited and waited[0] > 0.0


def test_more_ends_than_begins_leave_no_debt():
    gate = Gate(max_wait=WAIT)
    gate.end(3)
    gate.begin()
    assert gate.pending == 1
    gate.end(5)
    gate.begin(0)
    gate.end(0)
    assert gate.pending == 0 and gate.step_aside() == 0.0
