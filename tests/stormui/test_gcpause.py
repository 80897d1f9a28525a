"""The builder keeps the mirror's objects out of full collections (stormui.gcpause): what
survived is frozen on schedule, and a whole collection now and then frees any reference
cycle that became garbage while frozen."""

from __future__ import annotations

import gc
import weakref

import pytest

from stormui import gcpause
from stormui.gcpause import Tender


class Node:
    """One half of a reference cycle: only the cyclic collector frees it."""

    def __init__(self):
        self.other = None


def a_cycle() -> weakref.ref:
    a, b = Node(), Node()
    a.other, b.other = b, a
    return weakref.ref(a)


@pytest.fixture(autouse=True)
def alone():
    """Each test thawed, with no collection but its own: no automatic one (it would free
    a test's cycle before it is frozen) and no other thread's tending (a source that another
    test left behind freezes and thaws through the process's ``TENDER``, under its lock)."""
    enabled = gc.isenabled()
    with gcpause.TENDER._lock:
        gc.disable()
        gc.unfreeze()
        try:
            yield
        finally:
            gc.unfreeze()
            if enabled:
                gc.enable()


def test_what_survived_is_frozen_on_schedule():
    tender = Tender(freeze_secs=2.0, thaw_secs=600.0)
    tender.tend(now=100.0)
    frozen = gc.get_freeze_count()
    assert (tender.freezes, frozen > 0) == (1, True)  # the first call freezes at once
    survivors = [Node() for _ in range(1000)]
    tender.tend(now=101.0)  # not due
    assert tender.freezes == 1
    tender.tend(now=102.0)
    assert tender.freezes == 2
    assert gc.get_freeze_count() >= frozen + len(survivors)


def test_a_cycle_that_dies_frozen_is_freed_by_the_next_thaw():
    tender = Tender(freeze_secs=2.0, thaw_secs=600.0)
    tender.tend(now=0.0)
    cycle = a_cycle()
    tender.tend(now=10.0)  # the cycle, garbage already but not collected yet, is frozen:
    gc.collect()  # a full collection skips it, as it skips the mirror's objects
    assert cycle() is not None
    tender.tend(now=600.0)  # the thaw
    assert cycle() is None
    assert (tender.thaws, tender.freed >= 2) == (1, True)
    assert gc.get_freeze_count() > 0  # frozen again after it


def test_reference_counting_still_frees_frozen_objects():
    tender = Tender(freeze_secs=2.0, thaw_secs=600.0)
    plain = Node()
    ref = weakref.ref(plain)
    tender.tend(now=0.0)
    del plain
    assert ref() is None
