"""The history's one writer: batches, bounds, retries, runs and batched deletes."""

from __future__ import annotations

import threading

import pytest

from stormui.history import recorder as rec
from stormui.history.recorder import HistoryRecorder, Part, delete_before
from stormui.models import AuditEntry, RecorderRun
from tests.helpers import wait_for

WAIT = 30


class FakeSource:
    """What the recorder asks of a source: subscribe."""

    def __init__(self):
        self.listeners = []

    def subscribe(self, listener):
        self.listeners.append(listener)
        return lambda: self.listeners.remove(listener)

    def change(self, change):
        for listener in list(self.listeners):
            listener(change)


class Notes(Part):
    """Notes every change; writes them as audit rows (a table the test can count), or fails
    while ``refuse`` is set."""

    name = "notes"

    def __init__(self, source):
        super().__init__(source)
        self.refuse = threading.Event()
        self.writes: list[list] = []
        self.previous = "unset"
        self.stopped = False

    def note(self, change, put):
        put(change)

    def started(self, now, previous, put):
        self.previous = previous
        put(f"started-{now}")

    def stopping(self, now, put):
        self.stopped = True
        put("stopping")

    def write(self, items, now):
        if self.refuse.is_set():
            raise RuntimeError("the database refused")
        AuditEntry.objects.bulk_create(
            AuditEntry(action="remove", storm_id=str(item), outcome="success", via="api")
            for item in items
        )
        self.writes.append(list(items))


def listening(**kwargs) -> tuple[FakeSource, Notes, HistoryRecorder]:
    """A recorder of one :class:`Notes` part that hears changes but has no thread: the test
    runs its passes (``record()``)."""
    source = FakeSource()
    part = Notes(source)
    recorder = HistoryRecorder(source, [part], **kwargs)
    recorder._unsubscribe = source.subscribe(recorder._on_change)
    return source, part, recorder


def written() -> list[str]:
    return list(AuditEntry.objects.order_by("id").values_list("storm_id", flat=True))


@pytest.mark.django_db
def test_a_pass_writes_everything_waiting_in_order_once():
    source, part, recorder = listening()
    for n in range(5):
        source.change(f"c{n}")
    assert recorder.buffered == 5
    assert recorder.record()
    run = RecorderRun.objects.get()
    assert written() == [f"started-{run.started_at}", "c0", "c1", "c2", "c3", "c4"]
    assert part.previous is None and run.stopped_at is None
    assert recorder.buffered == 0 and recorder.written == 6
    # nothing waits: a pass writes nothing again
    assert recorder.record() and len(written()) == 6


@pytest.mark.django_db
def test_a_refused_pass_keeps_its_items_and_the_bound_drops_and_counts():
    source, part, recorder = listening(max_buffered=4)
    assert recorder.record()  # the run starts
    part.refuse.set()
    for n in range(3):
        source.change(f"c{n}")
    assert not recorder.record()
    assert recorder.faults == 1 and "refused" in recorder.last_error
    # the three wait again, in front of what comes next; past the bound, dropped and counted
    for n in range(3, 6):
        source.change(f"c{n}")
    assert recorder.buffered == 4 and recorder.dropped["notes"] == 2
    part.refuse.clear()
    assert recorder.record()
    assert written()[1:] == ["c0", "c1", "c2", "c3"]
    # the drops are in the run's row, for every process's pages
    assert RecorderRun.objects.get().dropped == {"notes": 2}


@pytest.mark.django_db
def test_a_refused_first_pass_starts_the_run_once():
    source, part, recorder = listening()
    part.refuse.set()
    source.change("c0")
    assert not recorder.record()
    assert recorder.run is None and not RecorderRun.objects.exists()
    part.refuse.clear()
    assert recorder.record()
    run = RecorderRun.objects.get()
    assert written() == [f"started-{run.started_at}", "c0"]


@pytest.mark.django_db
def test_a_killed_run_is_closed_by_the_next_at_its_last_alive_time():
    source = FakeSource()
    first = HistoryRecorder(source, [Notes(source)])
    assert first.record()
    killed = RecorderRun.objects.get()
    RecorderRun.objects.filter(pk=killed.pk).update(alive_at=killed.started_at + 1234)
    part = Notes(source)
    second = HistoryRecorder(source, [part])
    assert second.record()
    killed.refresh_from_db()
    assert killed.stopped_at == killed.started_at + 1234
    assert part.previous.pk == killed.pk and part.previous.stopped_at == killed.stopped_at
    assert RecorderRun.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_the_thread_writes_as_changes_come_and_says_when_it_stopped():
    source = FakeSource()
    part = Notes(source)
    recorder = HistoryRecorder(source, [part], tick_secs=0.05).start()
    try:
        wait_for(lambda: RecorderRun.objects.exists(), timeout=WAIT)
        source.change("late")
        wait_for(lambda: "late" in written(), timeout=WAIT)
    finally:
        recorder.stop(timeout=WAIT)
    assert not recorder.running and part.stopped
    assert written()[-1] == "stopping"
    run = RecorderRun.objects.get()
    assert run.stopped_at is not None and run.alive_at == run.stopped_at
    assert source.listeners == []


@pytest.mark.django_db
def test_delete_before_goes_in_batches_and_leaves_the_rest():
    AuditEntry.objects.bulk_create(
        AuditEntry(action="remove", storm_id=f"s{n}", outcome="success", via="api")
        for n in range(25)
    )
    ids = list(AuditEntry.objects.order_by("id").values_list("id", flat=True))
    gone = delete_before(AuditEntry.objects.all(), "id", ids[20], batch=7)
    assert gone == 20
    assert list(AuditEntry.objects.order_by("id").values_list("id", flat=True)) == ids[20:]


def test_retention_follows_the_setting(settings):
    settings.STORMUI_HISTORY_DAYS = 2
    assert rec.retention_ms() == 2 * 86_400_000
