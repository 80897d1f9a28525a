"""The base recorder: what it stores of a real ZooKeeper's storms, and when."""

from __future__ import annotations

import asyncio

import pytest

from clusterstate import StormBase
from stormui import bases, live
from stormui.bases import BaseRecorder
from stormui.models import SeenStormBase
from stormui.source import get_source
from tests.helpers import wait_for
from tests.stormui.conftest import BROKEN, HEALTHY, PAUSED, TROUBLED

WAIT = 30


def stored() -> dict[str, StormBase]:
    return {row.storm_id: row.storm_base() for row in SeenStormBase.objects.all()}


def active_bases(known) -> dict[str, StormBase]:
    return {
        storm_id: StormBase(storm["name"], storm["launch"])
        for storm_id, storm in known.storms.items()
        if storm["active"]
    }


@pytest.mark.django_db
def test_stores_the_readable_active_bases_and_nothing_twice(known_cluster):
    recorder = BaseRecorder(get_source())
    assert recorder.record()
    # paused is inactive, broken's base is garbage: neither has a base to keep
    assert stored() == active_bases(known_cluster)
    assert set(stored()) == {HEALTHY, TROUBLED}
    assert recorder.written == 2
    assert recorder.record(everything=True) and recorder.written == 2
    # a restarted process compares with what the database holds
    again = BaseRecorder(get_source())
    assert again.record() and again.written == 0
    assert PAUSED not in stored() and BROKEN not in stored()


@pytest.mark.django_db(transaction=True)
def test_thread_follows_the_mirror_and_keeps_the_base_of_a_deactivated_storm(known_cluster, writer):
    recorder = BaseRecorder(get_source(), batch_secs=0.01).start()
    try:
        wait_for(lambda: stored() == active_bases(known_cluster), timeout=WAIT)
        renamed = StormBase("healthy-2", known_cluster.storms[HEALTHY]["launch"] + 1)
        writer.activate_storm(HEALTHY, renamed)
        wait_for(lambda: stored().get(HEALTHY) == renamed, timeout=WAIT)
        # a storm activated later is stored as it becomes active
        writer.activate_storm(PAUSED, StormBase("paused", 1234))
        wait_for(lambda: stored().get(PAUSED) == StormBase("paused", 1234), timeout=WAIT)

        writer.deactivate_storm(HEALTHY)
        wait_for(lambda: get_source().reader.storm_base(HEALTHY) is None, timeout=WAIT)
        # removed: its assignment gone, nothing could activate it again
        writer.deactivate_storm(TROUBLED)
        writer.remove_storm(TROUBLED)
        wait_for(lambda: TROUBLED not in get_source().reader.assignments(), timeout=WAIT)
    finally:
        recorder.stop(timeout=WAIT)
    assert not recorder.running
    assert recorder.record(everything=True)
    assert stored() == {HEALTHY: renamed, PAUSED: StormBase("paused", 1234)}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("stormui_mirror", [False])
def test_without_the_mirror_it_polls(known_cluster, writer):
    assert get_source().mirror is None
    recorder = BaseRecorder(get_source(), poll_secs=0.05).start()
    try:
        wait_for(lambda: stored() == active_bases(known_cluster), timeout=WAIT)
        writer.activate_storm(PAUSED, StormBase("paused", 99))
        wait_for(lambda: stored().get(PAUSED) == StormBase("paused", 99), timeout=WAIT)
    finally:
        recorder.stop(timeout=WAIT)


@pytest.mark.django_db
def test_not_connected_is_tried_again():
    class Unreached:
        storm_state = None
        zk_connected = False
        mirror = None

    recorder = BaseRecorder(Unreached())
    assert not recorder.record()
    assert recorder._everything  # the next pass looks at everything again


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_the_relaying_process_records(live_cluster, settings):
    settings.STORMUI_BASE_RECORDER = True
    source = await live.ensure_relay()
    recorder = bases.current_recorder()
    assert recorder is not None and recorder.running and recorder.source is source
    # every socket's connect asks again: still the one recorder
    await live.ensure_relay()
    assert bases.current_recorder() is recorder
    try:
        # the database is read off the loop, as the recorder writes it
        await asyncio.to_thread(wait_for, lambda: set(stored()) == {HEALTHY, TROUBLED}, WAIT)
    finally:
        live.stop_relay()
    assert bases.current_recorder() is None
    await asyncio.to_thread(recorder._thread.join, WAIT)
    assert not recorder.running
