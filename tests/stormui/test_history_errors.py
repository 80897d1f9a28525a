"""The error history: fingerprints, storing once, what ZooKeeper trimmed, the API and pages."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from django.urls import reverse

from clusterstate import (
    Assignment,
    StormBase,
    TaskError,
    TaskInfo,
    mk_memory_cluster_state,
    mk_storm_cluster_state,
)
from clusterstate.mirror import ClusterMirror, MirrorChange
from stormui.history import errors as eh
from stormui.history import recorder as rec
from stormui.history.recorder import HistoryRecorder
from stormui.models import (
    ErrorBlock,
    ErrorGroup,
    ErrorGroupStorm,
    ErrorHour,
    ErrorTask,
    RecorderRun,
    StoredError,
)
from tests.helpers import wait_for

WAIT = 30
STORM = "words-7-1700000000"
OTHER = "clicks-2-1700000001"


# -- fingerprints ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        # the contract's own example
        ("Connection refused to 10.0.0.7:6703", "Connection refused to 10.0.0.9:6701"),
        (
            "java.lang.IllegalStateException: tuple 1234567 acked twice\n\tat a.B(B.java:12)",
            "java.lang.IllegalStateException: tuple 99 acked twice\n\tat a.B(B.java:80)",
        ),
        ("no such key 'user-17'", "no such key 'admin'"),
        ('bad value "x y z" in field', 'bad value "" in field'),
        ("lock held by 0x7f3a2b1c", "lock held by 0xDEADBEEF"),
        ("object java.lang.Object@1b6d3586 leaked", "object java.lang.Object@4554617c leaked"),
        ("session 3f9a2c7e4b1d0a55 expired", "session 0a1b2c3d4e5f6789 expired"),
        (
            "worker 0b6f1e34-52b3-4c8e-9a3f-0c1d2e3f4a5b died",
            "worker 9e1c0d2b-1111-4abc-8def-1234567890ab died",
        ),
        ("storm words-7-1700000000 is not alive", "storm clicks-12-1699999999 is not alive"),
        ("\n\n  first line here 12\nsecond", "first   line here 13"),
    ],
)
def test_one_fingerprint_for_errors_that_differ_only_in_what_varies(a, b):
    assert eh.fingerprint(a) == eh.fingerprint(b)


def test_fingerprints_keep_what_tells_errors_apart():
    assert eh.fingerprint("Connection refused to 10.0.0.7:6703") == (
        "Connection refused to <n>.<n>.<n>.<n>:<n>"
    )
    assert eh.fingerprint("java.lang.NullPointerException\n\tat x") != eh.fingerprint(
        "java.lang.OutOfMemoryError: GC overhead limit exceeded"
    )
    # letters next to digits are a name, not a number
    assert eh.fingerprint("log4j failed") == "log4j failed"
    assert eh.fingerprint("") == ""
    assert len(eh.fingerprint("x" * 100_000)) == eh.FINGERPRINT_LIMIT


# -- what is stored ------------------------------------------------------------------------------


def test_storable_replaces_nul_and_lone_surrogates():
    assert eh.storable("a\x00b") == "a\ufffdb"
    assert eh.storable("a\ud800b") == "a\ufffdb"
    assert eh.storable("plain") == "plain"


def test_long_texts_are_cut_on_a_character_boundary_and_marked():
    text = "é" * 40_000  # 80,000 bytes
    stored, truncated, length = eh.cut(text)
    assert truncated and length == 80_000
    kept, _, mark = stored.partition("\n… [cut at 64 KB")
    assert kept == "é" * (eh.TEXT_LIMIT // 2) and "80,000 bytes" in mark
    assert eh.cut("short") == ("short", False, 5)


class StubReader:
    """The mirror's reads that the part uses, from plain dicts."""

    def __init__(self):
        self.errors: dict[tuple[str, int], list[TaskError]] = {}
        self.infos: dict[tuple[str, int], TaskInfo] = {}
        self.assignments: dict[str, Assignment] = {}

    def task_error_storms(self):
        return sorted({s for s, _ in self.errors})

    def task_ids(self, storm_id):
        return sorted(t for s, t in self.infos if s == storm_id)

    def task_errors(self, storm_id, task_id):
        return list(self.errors.get((storm_id, task_id), ()))

    def task_info(self, storm_id, task_id):
        return self.infos.get((storm_id, task_id))

    def assignment_info(self, storm_id):
        return self.assignments.get(storm_id)


class StubSource:
    def __init__(self, reader):
        self.reader = reader
        self.listeners = []

    def subscribe(self, listener):
        self.listeners.append(listener)
        return lambda: self.listeners.remove(listener)

    def change(self, change):
        for listener in list(self.listeners):
            listener(change)


def stub_cluster(now_secs: int):
    reader = StubReader()
    reader.infos[(STORM, 1)] = TaskInfo("words", "spout")
    reader.infos[(STORM, 2)] = TaskInfo("count", "bolt")
    reader.assignments[STORM] = Assignment(
        "/nimbus",
        {"node-a": "host-a", "node-b": "host-b"},
        {1: ["node-a", 6700], 2: ["node-b", 6701]},
        {1: now_secs, 2: now_secs},
    )
    return reader


def recorder_for(source) -> tuple[HistoryRecorder, eh.Part]:
    part = eh.Part(source)
    recorder = HistoryRecorder(source, [part])
    recorder._unsubscribe = source.subscribe(recorder._on_change)
    return recorder, part


def err(text: str, time_secs: int, seq: int | None) -> TaskError:
    return TaskError(text, time_secs, seq)


def report(source, reader, task_id: int, *errors: TaskError, storm: str = STORM):
    """As the mirror does it: the errors are in its reads, then the change says so."""
    reader.errors.setdefault((storm, task_id), []).extend(errors)
    del reader.errors[(storm, task_id)][: -10 or None]
    source.change(MirrorChange("errors", storm, task_id, tuple(errors)))


@pytest.fixture
def now_secs():
    return rec.now_ms() // 1000


@pytest.mark.django_db
def test_errors_are_stored_once_with_where_their_task_ran(now_secs):
    reader = stub_cluster(now_secs)
    source = StubSource(reader)
    recorder, part = recorder_for(source)
    report(source, reader, 1, err("Connection refused to 10.0.0.7:6703", now_secs - 5, 0))
    report(source, reader, 2, err("Connection refused to 10.0.0.9:6701", now_secs - 2, 0))
    assert recorder.record()
    rows = list(StoredError.objects.order_by("error_time").values())
    assert [(r["task_id"], r["component_id"], r["host"], r["port"]) for r in rows] == [
        (1, "words", "host-a", 6700),
        (2, "count", "host-b", 6701),
    ]
    assert rows[0]["error_time"] == (now_secs - 5) * 1000 and rows[0]["seq"] == 0
    group = ErrorGroup.objects.get()
    assert group.count == 2 and group.sample == "Connection refused to 10.0.0.7:6703"
    assert (group.first_seen, group.last_seen) == ((now_secs - 5) * 1000, (now_secs - 2) * 1000)
    assert group.storms == [STORM] and group.tasks == [[STORM, 1], [STORM, 2]]
    assert group.components == ["count", "words"] and group.hosts == ["host-a", "host-b"]
    assert sum(ErrorHour.objects.values_list("count", flat=True)) == 2

    # a resync puts only what the part has not put; a pass written again stores nothing twice
    source.change(MirrorChange("resync"))
    assert recorder.buffered == 0
    part.write([eh.Noted(STORM, 1, "words", "host-a", 6700, reader.errors[(STORM, 1)][0])], 0)
    assert StoredError.objects.count() == 2 and ErrorGroup.objects.get().count == 2
    assert sum(ErrorHour.objects.values_list("count", flat=True)) == 2


@pytest.mark.django_db
def test_a_restart_stores_nothing_twice_and_counts_the_gap_as_missed(now_secs):
    reader = stub_cluster(now_secs)
    source = StubSource(reader)
    recorder, _ = recorder_for(source)
    report(source, reader, 1, *(err(f"e{n}", now_secs - 100 + n, n) for n in range(3)))
    assert recorder.record()
    assert ErrorTask.objects.get().missed == 0

    # the dashboard is away while the task reports 12 more: ZooKeeper keeps the newest ten
    recorder.stop()
    reader.errors[(STORM, 1)].extend(err(f"e{n}", now_secs - 100 + n, n) for n in range(3, 15))
    del reader.errors[(STORM, 1)][:-10]
    again, _ = recorder_for(StubSource(reader))
    assert again.record()  # the run's start puts what ZooKeeper holds
    assert sorted(StoredError.objects.values_list("seq", flat=True)) == [0, 1, 2, *range(5, 15)]
    task = ErrorTask.objects.get()
    assert (task.first_seq, task.last_seq, task.stored, task.missed) == (0, 14, 13, 2)
    assert ErrorGroup.objects.aggregate(n=eh.Sum("count"))["n"] == 13
    assert RecorderRun.objects.count() == 2


@pytest.mark.django_db
def test_missed_comes_from_sequence_gaps_only(now_secs):
    reader = stub_cluster(now_secs)
    source = StubSource(reader)
    recorder, _ = recorder_for(source)
    # the mirror read seq 4, then 9 (5 to 8 trimmed before it read them), then 10
    report(source, reader, 1, err("a", now_secs - 9, 4))
    report(source, reader, 1, err("b", now_secs - 8, 9), err("c", now_secs - 7, 10))
    # a bare-named error (the original's names) has no number: it never makes a gap
    report(source, reader, 2, err("bare", now_secs - 6, None))
    assert recorder.record()
    missed = {t.task_id: t.missed for t in ErrorTask.objects.all()}
    assert missed == {1: 4, 2: 0}
    # an older one read late (a resync after a dropped pass) fills its gap
    part = recorder.parts[0]
    with eh.transaction.atomic():
        part.write([eh.Noted(STORM, 1, "words", None, None, err("late", now_secs - 9, 6))], 0)
    assert ErrorTask.objects.get(task_id=1).missed == 3
    assert eh.missed(eh.Query(storm=STORM)) == 3
    assert eh.missed(eh.Query(storm=STORM, component="count")) == 0


@pytest.mark.django_db
def test_bare_named_errors_are_stored_once_by_time_and_text(now_secs):
    reader = stub_cluster(now_secs)
    source = StubSource(reader)
    recorder, part = recorder_for(source)
    same = err("same text", now_secs - 3, None)
    report(source, reader, 1, same, err("other text", now_secs - 3, None))
    assert recorder.record()
    item = eh.Noted(STORM, 1, None, None, None, err("same text", now_secs - 3, None))
    part.write([item, item], 0)
    assert StoredError.objects.count() == 2
    # a resync finds nothing new to put
    source.change(MirrorChange("resync"))
    assert recorder.buffered == 0


@pytest.mark.django_db
def test_hostile_and_huge_texts_store_and_what_cannot_is_skipped_and_counted(now_secs):
    reader = stub_cluster(now_secs)
    source = StubSource(reader)
    recorder, part = recorder_for(source)
    huge = "java.lang.RuntimeException: big\n" + "x" * (1024 * 1024)
    report(
        source,
        reader,
        1,
        err(huge, now_secs - 4, 1),
        err("nul \x00 inside \ufffd", now_secs - 3, 2),
        err("past 64 bits", now_secs - 2, 2**64),
    )
    assert recorder.record()  # the bad item did not fail the pass
    rows = {r.seq: r for r in StoredError.objects.all()}
    assert set(rows) == {1, 2}
    assert rows[1].truncated and rows[1].length == len(huge)
    assert len(rows[1].text.encode()) < eh.TEXT_LIMIT + 100 and "bytes in all" in rows[1].text
    assert rows[2].text == "nul \ufffd inside \ufffd"
    assert ErrorTask.objects.get(task_id=1).skipped == 1 and part.skipped[(STORM, 1)] == 1
    assert eh.skipped() == 1
    # nor is it put again by the next resync
    source.change(MirrorChange("resync"))
    assert recorder.buffered == 0


@pytest.mark.django_db
def test_errors_past_the_retention_are_not_stored_and_expire_deletes_in_batches(now_secs):
    reader = stub_cluster(now_secs)
    source = StubSource(reader)
    recorder, part = recorder_for(source)
    day = 86_400
    report(source, reader, 1, err("too old", now_secs - 31 * day, 0))
    report(source, reader, 1, *(err(f"old {n}", now_secs - 20 * day, 1 + n) for n in range(5)))
    report(source, reader, 2, err("old 9", now_secs - 20 * day, 0), err("new", now_secs, 1))
    assert recorder.record()
    assert StoredError.objects.count() == 7
    assert ErrorGroup.objects.get(fingerprint="old <n>").count == 6
    cutoff = (now_secs - 10 * day) * 1000
    gone = eh.expire(cutoff, batch=4)
    assert StoredError.objects.count() == 1
    assert gone >= 6
    assert list(ErrorGroup.objects.values_list("fingerprint", "count")) == [("new", 1)]
    assert not ErrorHour.objects.filter(hour__lt=cutoff - eh.HOUR_MS).exists()
    assert list(ErrorTask.objects.values_list("task_id", flat=True)) == [2]
    assert part.expire(cutoff) == 0


def per_storm() -> dict:
    """The group-storms' counts, first and last seen, components and hosts."""
    return {
        (g.group.fingerprint, g.storm_id): (
            g.count,
            g.first_seen,
            g.last_seen,
            sorted(g.components),
            sorted(map(tuple, g.tasks)),
            sorted(g.hosts),
        )
        for g in ErrorGroupStorm.objects.select_related("group")
    }


def per_storm_of_errors() -> dict:
    """The same, counted from the stored errors themselves."""
    found: dict = {}
    for e in StoredError.objects.select_related("group"):
        n, first, last, comps, tasks, hosts = found.get(
            (e.group.fingerprint, e.storm_id), (0, e.error_time, e.error_time, [], [], [])
        )
        found[(e.group.fingerprint, e.storm_id)] = (
            n + 1,
            min(first, e.error_time),
            max(last, e.error_time),
            sorted({*comps, e.component_id}),
            sorted({*tasks, (e.storm_id, e.task_id)}),
            sorted({*hosts, e.host}),
        )
    return found


@pytest.mark.django_db
def test_the_counts_per_storm_follow_writes_retried_passes_and_expiry(now_secs, monkeypatch):
    reader = stub_cluster(now_secs)
    reader.infos[(OTHER, 1)] = TaskInfo("clicks", "spout")
    reader.assignments[OTHER] = Assignment(
        "/nimbus", {"node-c": "host-c"}, {1: ["node-c", 6700]}, {1: now_secs}
    )
    source = StubSource(reader)
    recorder, part = recorder_for(source)
    day = 86_400
    report(source, reader, 1, *(err(f"refused {n}", now_secs - 20 * day + n, n) for n in range(3)))
    report(source, reader, 2, err("refused 9", now_secs - 5 * day, 0), err("full", now_secs, 1))
    report(source, reader, 1, err("refused 7", now_secs - 4 * day, 0), storm=OTHER)
    assert recorder.record()
    assert per_storm() == per_storm_of_errors()
    assert per_storm()[("refused <n>", STORM)][:3] == (
        4,
        (now_secs - 20 * day) * 1000,
        (now_secs - 5 * day) * 1000,
    )

    # a pass that fails once is rolled back whole and retried: counted once
    real, failed = eh._tasks, []

    def fail_once(*args):
        if not failed:
            failed.append(1)
            raise RuntimeError("the database went away")
        return real(*args)

    monkeypatch.setattr(eh, "_tasks", fail_once)
    report(source, reader, 2, err("refused 8", now_secs - 1, 2), err("full", now_secs - 1, 3))
    assert not recorder.record()
    assert recorder.record()
    # what is stored already (a restart says it all again) counts nothing
    part.write(
        [eh.Noted(STORM, 2, "count", "host-b", 6701, e) for e in reader.errors[(STORM, 2)]], 0
    )
    assert per_storm() == per_storm_of_errors()
    assert per_storm()[("full", STORM)][0] == 2 and per_storm()[("refused <n>", STORM)][0] == 5

    # expiry takes the old errors off their storms' counts, and what no error is left of
    eh.expire((now_secs - 10 * day) * 1000, batch=2)
    # (the lists keep what the group hit, as the groups' own do: none of it is invented)
    kept, left = per_storm(), per_storm_of_errors()
    assert {k: v[:3] for k, v in kept.items()} == {k: v[:3] for k, v in left.items()}
    assert all(set(left[k][i]) <= set(kept[k][i]) for k in left for i in (3, 4, 5))
    assert per_storm()[("refused <n>", STORM)][:3] == (
        2,
        (now_secs - 5 * day) * 1000,
        (now_secs - 1) * 1000,
    )
    eh.expire((now_secs - 3 * day) * 1000)
    assert ("refused <n>", OTHER) not in per_storm()
    assert [g["count"] for g in eh_groups(storm=OTHER)] == []
    assert [(g["fingerprint"], g["count"]) for g in eh_groups(storm=STORM)] == [
        ("full", 2),
        ("refused <n>", 1),
    ]


def eh_groups(**params) -> list[dict]:
    return [eh.group_shape(g) for g in eh.groups(eh.parse_query(params))]


@pytest.mark.django_db
def test_the_migration_fills_the_counts_per_storm_from_the_errors(now_secs):
    from importlib import import_module

    from django.apps import apps
    from django.db import connection

    store(
        [
            (STORM, 1, "words", "host-a", now_secs - 500, "Connection refused to 10.0.0.7:6703"),
            (STORM, 2, "count", "host-b", now_secs - 400, "Connection refused to 10.0.0.9:6701"),
            (OTHER, 5, "clicks", "host-c", now_secs - 100, "Connection refused to 10.0.0.1:1"),
            (OTHER, 5, "clicks", "host-c", now_secs - 50, "java.lang.NullPointerException"),
        ]
    )
    written = per_storm()
    ErrorGroupStorm.objects.all().delete()
    fill = import_module("stormui.migrations.0009_error_group_storms").fill
    fill(apps, SimpleNamespace(connection=connection))
    assert per_storm() == written == per_storm_of_errors()


def blocks_of_hours() -> dict:
    """Each (group, block) as its hours say: count, first and last seen, and every value
    the hours list (a set a list)."""
    found: dict = {}
    for h in ErrorHour.objects.all():
        key = (h.group_id, h.hour - h.hour % eh.BLOCK_MS)
        n, first, last, lists = found.get(key, (0, h.first_seen, h.last_seen, None))
        lists = lists or tuple(set() for _ in _LISTS)
        for values, name in zip(lists, _LISTS, strict=True):
            values.update(json.dumps(v) for v in getattr(h, name))
        found[key] = (n + h.count, min(first, h.first_seen), max(last, h.last_seen), lists)
    return found


def blocks() -> dict:
    return {
        (b.group_id, b.block): (
            b.count,
            b.first_seen,
            b.last_seen,
            tuple([json.dumps(v) for v in getattr(b, name)] for name in _LISTS),
        )
        for b in ErrorBlock.objects.all()
    }


def assert_blocks_match_their_hours() -> None:
    """Every block holds its hours' counts, first and last seen, and lists as long as they
    can be of the values its hours list (and no other)."""
    hours, got = blocks_of_hours(), blocks()
    assert got.keys() == hours.keys()
    for key, (n, first, last, lists) in got.items():
        assert (n, first, last) == hours[key][:3], key
        for listed, every in zip(lists, hours[key][3], strict=True):
            assert set(listed) <= every and len(set(listed)) == len(listed), key
            assert len(listed) == min(ErrorGroup.LISTED, len(every)), key


@pytest.mark.django_db
def test_the_blocks_follow_writes_and_the_migration_fills_them_from_the_hours(now_secs):
    from importlib import import_module

    from django.apps import apps
    from django.db import connection

    block = eh.BLOCK_MS // 1000
    start = (now_secs - 2 * 86_400) // block * block
    items = []
    for hour in range(0, 26, 3):  # blocks of one hour and of several, edges apart
        for task in range(1, 31 if hour == 9 else 4):  # one block hits more tasks than listed
            storm = STORM if task % 2 else OTHER
            text = f"disk full on volume {task}" if task % 3 else "java.lang.OutOfMemoryError"
            when = start + hour * 3600 + task * 60
            items.append((storm, task, f"c{task % 4}", f"host-{task}", when, text))
    # in two passes, as the writer gets them
    from django.db import transaction

    noted = [
        eh.Noted(storm, task, component, host, 6700, err(text, secs, n))
        for n, (storm, task, component, host, secs, text) in enumerate(items)
    ]
    for half in (noted[: len(noted) // 2], noted[len(noted) // 2 :]):
        with transaction.atomic():
            eh.Part(None).write(half, rec.now_ms())
    assert ErrorBlock.objects.filter(block=start * 1000 + 2 * eh.BLOCK_MS).exists()
    assert_blocks_match_their_hours()
    written = blocks()
    assert sum(n for n, *_ in written.values()) == len(items)
    ErrorBlock.objects.all().delete()
    migration = import_module("stormui.migrations.0011_error_blocks")
    assert (migration.BLOCK_MS, migration.LISTED) == (eh.BLOCK_MS, ErrorGroup.LISTED)
    migration.fill(apps, SimpleNamespace(connection=connection))
    assert_blocks_match_their_hours()
    filled = blocks()
    assert filled.keys() == written.keys()
    for key, (n, first, last, lists) in filled.items():
        assert (n, first, last) == written[key][:3]
        for mine, theirs in zip(lists, written[key][3], strict=True):
            if len(theirs) < ErrorGroup.LISTED:  # not full: the same values
                assert sorted(mine) == sorted(theirs), key


@pytest.mark.django_db
def test_expiry_deletes_the_blocks_that_ended_before_the_cutoff(now_secs):
    block = eh.BLOCK_MS // 1000
    start = (now_secs - 3 * 86_400) // block * block
    store(
        [
            (STORM, 1, "words", "host-a", start + n * 3 * 3600 + 60, f"refused {n}")
            for n in range(20)  # an error every 3 hours: 15 blocks
        ]
    )
    assert ErrorBlock.objects.count() == 15
    cutoff = (start + 5 * block + 3600) * 1000  # an hour into the sixth block
    eh.expire(cutoff)
    left = sorted(ErrorBlock.objects.values_list("block", flat=True))
    assert left == [(start + n * block) * 1000 for n in range(5, 15)]  # the sixth is kept
    assert sum(ErrorBlock.objects.values_list("count", flat=True)) == sum(
        ErrorHour.objects.filter(hour__gte=(start + 5 * block) * 1000).values_list(
            "count", flat=True
        )
    )
    eh.expire((now_secs + 3600) * 1000)
    assert not ErrorBlock.objects.exists() and not ErrorHour.objects.exists()


# -- through the real mirror ----------------------------------------------------------------------


@pytest.mark.django_db
def test_through_a_mirror_the_cold_load_and_new_errors_are_stored(now_secs):
    state = mk_memory_cluster_state(root="/errors-history")
    writer = mk_storm_cluster_state(state)
    writer.activate_storm(STORM, StormBase("words", now_secs))
    writer.set_task(STORM, 1, TaskInfo("words", "spout"))
    writer.set_assignment(
        STORM, Assignment("/n", {"node-a": "host-a"}, {1: ["node-a", 6700]}, {1: now_secs})
    )
    writer.report_task_error(STORM, 1, "before the dashboard")
    mirror = ClusterMirror(state, resync_secs=600)
    source = SimpleNamespace(reader=mirror, subscribe=mirror.subscribe)
    recorder, _ = recorder_for(source)
    try:
        mirror.start(wait=WAIT)
        wait_for(lambda: recorder.buffered == 1, timeout=WAIT)  # the cold load's resync
        writer.report_task_error(STORM, 1, "after")
        wait_for(lambda: recorder.buffered == 2, timeout=WAIT)
        assert recorder.record()
    finally:
        recorder.stop()
        mirror.stop()
        state.close()
    assert list(
        StoredError.objects.order_by("seq").values_list("text", "seq", "component_id", "host")
    ) == [("before the dashboard", 0, "words", "host-a"), ("after", 1, "words", "host-a")]


# -- the API ----------------------------------------------------------------------------------


def store(items):
    """Store ``(storm, task, component, host, seconds, text)`` as the writer would."""
    from django.db import transaction

    part = eh.Part(None)
    seq: dict = {}
    noted = []
    for storm, task, component, host, secs, text in items:
        n = seq[(storm, task)] = seq.get((storm, task), -1) + 1
        noted.append(eh.Noted(storm, task, component, host, 6700, err(text, secs, n)))
    with transaction.atomic():
        part.write(noted, rec.now_ms())


@pytest.fixture
def stored(now_secs):
    other = "clicks-2-1700000001"
    store(
        [
            (STORM, 1, "words", "host-a", now_secs - 500, "Connection refused to 10.0.0.7:6703"),
            (STORM, 2, "count", "host-b", now_secs - 400, "Connection refused to 10.0.0.9:6701"),
            (STORM, 2, "count", "host-b", now_secs - 300, "<script>alert(1)</script> & co"),
            (other, 5, "clicks", "host-c", now_secs - 200, "java.lang.NullPointerException"),
            (other, 5, "clicks", "host-c", now_secs - 100, "Connection refused to 10.0.0.1:1"),
        ]
    )
    return SimpleNamespace(now=now_secs, other=other)


def get_json(client, url, status=200, **params):
    response = client.get(url, params)
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    return json.loads(response.content)


@pytest.mark.django_db
def test_history_api_answers_newest_first_in_the_contracts_shape(client, stored):
    url = reverse("api-error-history")
    body = get_json(client, url)
    assert set(body) == {"errors", "next", "missed"}
    assert body["next"] is None and body["missed"] == 0
    first = body["errors"][0]
    assert first == {
        "stormId": stored.other,
        "taskId": 5,
        "componentId": "clicks",
        "host": "host-c",
        "port": 6700,
        "errorTime": (stored.now - 100) * 1000,
        "error": "Connection refused to 10.0.0.1:1",
        "fingerprint": "Connection refused to <n>.<n>.<n>.<n>:<n>",
    }
    times = [e["errorTime"] for e in body["errors"]]
    assert times == sorted(times, reverse=True) and len(times) == 5


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("params", "texts"),
    [
        (
            {"storm": STORM},
            ["<script>", "Connection refused to 10.0.0.9", "Connection refused to 10.0.0.7"],
        ),
        ({"storm": STORM, "component": "count"}, ["<script>", "Connection refused to 10.0.0.9"]),
        ({"component": "words"}, ["Connection refused to 10.0.0.7"]),
        ({"storm": STORM, "task": "1"}, ["Connection refused to 10.0.0.7"]),
        ({"host": "host-c"}, ["Connection refused to 10.0.0.1", "java.lang.Null"]),
        (
            {"q": "CONNECTION refused"},
            [
                "Connection refused to 10.0.0.1",
                "Connection refused to 10.0.0.9",
                "Connection refused to 10.0.0.7",
            ],
        ),
        ({"q": "no such text"}, []),
        ({"fingerprint": "java.lang.NullPointerException"}, ["java.lang.Null"]),
    ],
)
def test_history_api_filters(client, stored, params, texts):
    body = get_json(client, reverse("api-error-history"), **params)
    got = [e["error"] for e in body["errors"]]
    assert len(got) == len(texts) and all(g.startswith(t) for g, t in zip(got, texts, strict=True))


@pytest.mark.django_db
def test_history_api_time_range_and_cursor(client, stored):
    url = reverse("api-error-history")
    since, until = (stored.now - 400) * 1000, (stored.now - 200) * 1000
    body = get_json(client, url, since=since, until=until)
    assert [e["errorTime"] for e in body["errors"]] == [until, until - 100_000, since]
    seen, cursor = [], None
    while True:
        body = get_json(client, url, limit=2, **({"cursor": cursor} if cursor else {}))
        seen.extend(e["errorTime"] for e in body["errors"])
        cursor = body["next"]
        if cursor is None:
            break
    assert len(seen) == 5 and seen == sorted(seen, reverse=True)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "params",
    [
        {"limit": "0"},
        {"limit": "1001"},
        {"limit": "ten"},
        {"since": "-5"},
        {"since": "20", "until": "10"},
        {"task": "1.5"},
        {"storm": "a/b"},
        {"component": ".."},
        {"cursor": "not-a-cursor!"},
        {"cursor": "bm90LWEtY3Vyc29y"},
        {"q": "x" * 201},
    ],
)
def test_history_api_refuses_bad_params_with_a_clear_400(client, params):
    body = get_json(client, reverse("api-error-history"), status=400, **params)
    assert set(body) == {"error"} and body["error"]


@pytest.mark.django_db
def test_groups_api(client, stored):
    url = reverse("api-error-groups")
    body = get_json(client, url)
    groups = body["groups"]
    assert [g["fingerprint"] for g in groups] == [
        "Connection refused to <n>.<n>.<n>.<n>:<n>",
        "java.lang.NullPointerException",
        "<script>alert(<n>)</script> & co",
    ]
    refused = groups[0]
    assert refused == {
        "fingerprint": "Connection refused to <n>.<n>.<n>.<n>:<n>",
        "sample": "Connection refused to 10.0.0.7:6703",
        "count": 3,
        "firstSeen": (stored.now - 500) * 1000,
        "lastSeen": (stored.now - 100) * 1000,
        "storms": [stored.other, STORM],
        "components": ["clicks", "count", "words"],
        "tasks": [
            {"stormId": stored.other, "taskId": 5},
            {"stormId": STORM, "taskId": 1},
            {"stormId": STORM, "taskId": 2},
        ],
        "hosts": ["host-a", "host-b", "host-c"],
    }
    # a storm's groups, counted from its own errors
    mine = get_json(client, url, storm=STORM)["groups"]
    assert [(g["fingerprint"][:10], g["count"]) for g in mine] == [
        ("<script>al", 1),
        ("Connection", 2),
    ]
    assert mine[1]["storms"] == [STORM] and mine[1]["lastSeen"] == (stored.now - 400) * 1000
    # a storm's in a range: counted from its errors, exactly
    since, until = (stored.now - 450) * 1000, (stored.now - 150) * 1000
    ranged = get_json(client, url, storm=STORM, since=since, until=until)["groups"]
    assert [(g["count"], g["firstSeen"]) for g in ranged] == [
        (1, (stored.now - 300) * 1000),
        (1, (stored.now - 400) * 1000),
    ]
    # a range alone: counted by the hour (the hours it overlaps count whole)
    hours = get_json(client, url, since=(stored.now - 500) * 1000, until=stored.now * 1000)
    hours = hours["groups"]
    assert sum(g["count"] for g in hours) == 5 and hours[0]["count"] == 3
    assert hours[0]["firstSeen"] == (stored.now - 500) * 1000 and hours[0]["storms"] == [
        stored.other,
        STORM,
    ]
    day = 86_400_000
    assert get_json(client, url, since=since - 2 * day, until=until - day)["groups"] == []
    assert get_json(client, url, status=400, storm="a/b")["error"]


@pytest.mark.django_db
def test_groups_of_a_range_count_its_hours_whole(client, now_secs):
    hour = (now_secs - 5 * 3600) // 3600 * 3600  # an hour's start, five hours ago
    store(
        [
            (STORM, 1, "words", "host-a", hour + 600, "disk full on volume 1"),
            (STORM, 1, "words", "host-a", hour + 3000, "disk full on volume 2"),
            (STORM, 2, "count", "host-b", hour + 4200, "disk full on volume 3"),
        ]
    )
    url = reverse("api-error-groups")
    ms = 1000
    (group,) = get_json(client, url, since=(hour + 2400) * ms, until=(hour + 2700) * ms)["groups"]
    assert (group["count"], group["firstSeen"], group["lastSeen"]) == (
        2,
        (hour + 600) * ms,
        (hour + 3000) * ms,
    )
    assert group["tasks"] == [{"stormId": STORM, "taskId": 1}]
    (group,) = get_json(client, url, since=(hour + 2400) * ms, until=(hour + 3700) * ms)["groups"]
    assert group["count"] == 3 and group["components"] == ["count", "words"]


def groups_from_errors(since: int | None, until: int | None, limit: int = 100) -> list[dict]:
    """A range's groups as the API answers them, counted from the stored errors themselves:
    those of the hours the range overlaps (``None``: no bound); each list every value
    those errors hold, sorted (the API lists at most ``LISTED`` of them)."""
    hour = eh.HOUR_MS
    rows = StoredError.objects.all()
    if since is not None:
        rows = rows.filter(error_time__gte=since - since % hour)
    if until is not None:
        rows = rows.filter(error_time__lt=until - until % hour + hour)
    fields = ("group_id", "storm_id", "task_id", "component_id", "host", "error_time")
    by_group: dict = {}
    for gid, storm, task, component, host, t in rows.values_list(*fields):
        g = by_group.setdefault(gid, {"times": [], "lists": (set(), set(), set(), set())})
        g["times"].append(t)
        for values, v in zip(g["lists"], (storm, component, (storm, task), host), strict=True):
            if v != "":
                values.add(v)
    found = []
    for gid, g in by_group.items():
        storms, components, tasks, hosts = (sorted(v) for v in g["lists"])
        group = ErrorGroup.objects.get(pk=gid)
        found.append(
            (
                (-max(g["times"]), -gid),
                {
                    "fingerprint": group.fingerprint,
                    "sample": group.sample,
                    "count": len(g["times"]),
                    "firstSeen": min(g["times"]),
                    "lastSeen": max(g["times"]),
                    "storms": storms,
                    "components": components,
                    "tasks": [{"stormId": s, "taskId": t} for s, t in tasks],
                    "hosts": hosts,
                },
            )
        )
    return [g for _, g in sorted(found, key=lambda pair: pair[0])][:limit]


_LISTS = ("storms", "components", "tasks", "hosts")


def assert_groups_match(got: list[dict], truth: list[dict], where) -> None:
    """``got`` is ``truth`` but for the lists: each a sorted part of the truth's (nothing
    from outside the range), as long as it can be (``LISTED``, or all the truth holds)."""
    assert [g["fingerprint"] for g in got] == [g["fingerprint"] for g in truth], where
    for mine, real in zip(got, truth, strict=True):
        for name in ("sample", "count", "firstSeen", "lastSeen"):
            assert mine[name] == real[name], (where, name)
        for name in _LISTS:
            listed = [json.dumps(v, sort_keys=True) for v in mine[name]]
            every = {json.dumps(v, sort_keys=True) for v in real[name]}
            assert set(listed) <= every, (where, name, set(listed) - every)
            assert len(set(listed)) == len(listed) == min(ErrorGroup.LISTED, len(every))
            assert mine[name] == sorted(
                mine[name], key=lambda v: list(v.values()) if isinstance(v, dict) else v
            ), (where, name)


@pytest.mark.django_db
def test_a_ranges_groups_are_its_hours_errors_counted(client, now_secs):
    import random

    rng = random.Random(12)
    block = eh.BLOCK_MS // 1000
    # 15 hours from an hour before a block starts: three whole blocks and hours at each edge
    start = (now_secs - 20 * 3600) // block * block - 3600
    storms = [STORM, OTHER, "logs-3-1700000002", "index-4-1700000003"]
    texts = ["disk full on volume {}", "timeout after {} ms talking to db", "queue {} overflow"]
    items = []
    for hour in range(15):  # each hour, each group: 15 errors (an hour's lists never fill)
        for text in texts:
            for _ in range(15):
                storm, task = rng.choice(storms), rng.randint(1, 15)
                items.append(
                    (
                        storm,
                        task + 100 * (hour % 3),  # tasks and hosts tell some hours apart
                        f"c{task % 6}" if task % 7 else "",  # some with no component known
                        f"host-{hour}-{rng.randint(1, 3)}",
                        start + hour * 3600 + rng.randrange(3600),
                        text.format(rng.randint(1, 10**6)),
                    )
                )
    store(items)
    assert StoredError.objects.count() == len(items)
    assert ErrorBlock.objects.count() == 3 * 5  # the three groups' five blocks, edges too
    url = reverse("api-error-groups")
    ms, hour = 1000, 3_600_000
    first_block = (start + 3600) * ms
    ranges = [(start * ms, (start + 15 * 3600) * ms)]  # all of it
    ranges += [(start * ms + hour + 1, start * ms + 3 * hour - 1)]  # two hours, not on edges
    # whole blocks only; several blocks and edges; several blocks and the newest edge only
    ranges += [(first_block, first_block + 8 * hour - 1)]
    ranges += [(first_block - 1, first_block + 9 * hour + 5)]
    ranges += [(first_block + 4 * hour + 7, first_block + 13 * hour)]
    ranges += [(first_block + hour, first_block + 11 * hour - 1)]
    ranges += [(first_block + 2 * hour, None), (None, first_block + 6 * hour + 1)]
    for _ in range(8):
        since = start * ms + rng.randrange(15 * hour)
        ranges.append((since, since + rng.randrange(12 * hour)))
    listed = ErrorGroup.LISTED
    for since, until in ranges:
        bounds = {k: v for k, v in (("since", since), ("until", until)) if v is not None}
        got = get_json(client, url, **bounds)["groups"]
        assert_groups_match(got, groups_from_errors(since, until), (since, until))
        counted = StoredError.objects.all()
        if since is not None:
            counted = counted.filter(error_time__gte=since - since % hour)
        if until is not None:
            counted = counted.filter(error_time__lt=until - until % hour + hour)
        assert sum(g["count"] for g in got) == counted.count()
    # the whole range hits more tasks and hosts than a group lists
    whole = get_json(client, url, since=ranges[0][0], until=ranges[0][1])["groups"][0]
    assert len(whole["tasks"]) == listed and len(whole["hosts"]) == listed
    # paged by the newest last seen
    since, until = ranges[0]
    assert_groups_match(
        get_json(client, url, since=since, until=until, limit=2)["groups"],
        groups_from_errors(since, until, limit=2),
        "limit 2",
    )


@pytest.mark.django_db
def test_the_api_needs_login_when_the_deployment_asks(client, settings):
    settings.STORMUI_LOGIN_REQUIRED = True
    for name in ("api-error-history", "api-error-groups"):
        assert client.get(reverse(name)).status_code == 401
    for name in ("error-history", "error-groups"):
        response = client.get(reverse(name))
        assert response.status_code == 302 and "login" in response["Location"]


# -- the pages ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_history_page_filters_pages_and_escapes(client, stored):
    page = client.get(reverse("error-history"), {"storm": STORM, "limit": "2"})
    assert page.status_code == 200
    html = page.content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in html
    assert "<script>alert(1)" not in html
    assert "10.0.0.9" in html and "10.0.0.7" not in html  # the second page's
    assert 'rel="next"' in html and f"storm={STORM}" in html
    nxt = html.split('rel="next" href="')[1].split('"')[0].replace("&amp;", "&")
    second = client.get(reverse("error-history") + nxt).content.decode()
    assert "10.0.0.7" in second and "&lt;script&gt;" not in second
    bad = client.get(reverse("error-history"), {"since": "yesterday"})
    assert bad.status_code == 400 and "since" in bad.content.decode()


@pytest.mark.django_db
def test_history_page_shows_missed_and_the_writers_drops(client, stored):
    ErrorTask.objects.filter(task_id=2).update(missed=7)
    RecorderRun.objects.create(
        started_at=rec.now_ms(), alive_at=rec.now_ms(), dropped={"errors": 42}
    )
    html = client.get(reverse("error-history"), {"storm": STORM}).content.decode()
    assert "7 errors" in html and "trimmed" in html
    assert "42" in html and "dropped" in html
    html = client.get(reverse("error-groups")).content.decode()
    assert "42" in html and "dropped" in html


@pytest.mark.django_db
def test_groups_page_lists_groups_with_hourly_charts_escaped(client, stored):
    page = client.get(reverse("error-groups"))
    assert page.status_code == 200
    html = page.content.decode()
    assert "Connection refused to &lt;n&gt;.&lt;n&gt;" in html
    assert "&lt;script&gt;alert(&lt;n&gt;)&lt;/script&gt;" in html and "<script>alert" not in html
    assert html.count('<svg class="chart hour-chart"') == 3
    assert 'href="/errors/history/?fingerprint=' in html
    mine = client.get(reverse("error-groups"), {"storm": stored.other}).content.decode()
    assert "NullPointerException" in mine and "&lt;script&gt;" not in mine
    assert client.get(reverse("error-groups"), {"storm": "a/b"}).status_code == 400


# -- end to end: the relaying process records what a real cluster reports --------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_the_relaying_process_records_a_real_clusters_errors(live_cluster, writer, settings):
    import asyncio

    from stormui import history, live
    from tests.stormui.conftest import HOSTILE_ERROR, TROUBLED

    settings.STORMUI_HISTORY = True
    await live.ensure_relay()
    recorder = history.recorder.current_recorder()
    assert recorder is not None and recorder.running
    written = len(live_cluster.errors())

    async def off_loop(fn, *args):
        """``fn(*args)`` in a thread of its own (the database is read off the loop, as the
        recorder writes it), its connection closed after (PostgreSQL drops the test
        database only when no session holds it)."""
        from django.db import connection

        def run():
            try:
                return fn(*args)
            finally:
                connection.close()

        return await asyncio.to_thread(run)

    def count():
        from django.db import OperationalError

        try:
            return StoredError.objects.count()
        except OperationalError:  # SQLite's shared in-memory test database: the writer's
            return -1  # transaction holds the table's lock; ask again

    try:
        await off_loop(wait_for, lambda: count() == written, WAIT)
        writer.report_task_error(TROUBLED, 13, "java.net.ConnectException: refused 10.1.2.3")
        await off_loop(wait_for, lambda: count() == written + 1, WAIT)
    finally:
        live.stop_relay()

    def check():
        late = StoredError.objects.get(text__startswith="java.net.ConnectException")
        assert (late.storm_id, late.task_id, late.component_id) == (TROUBLED, 13, "sink")
        assert (late.host, late.port) == ("host-b.example", 6701) and late.seq is not None
        hostile = StoredError.objects.get(text=HOSTILE_ERROR)
        assert (hostile.task_id, hostile.host) == (12, "host-gone.example")
        assert ErrorTask.objects.filter(missed__gt=0).count() == 0
        assert recorder.faults == 0

    await off_loop(check)


@pytest.mark.django_db
def test_the_storm_and_component_pages_link_to_their_groups(client, known_cluster):
    from tests.stormui.conftest import TROUBLED

    storm = client.get(reverse("storm", args=[TROUBLED])).content.decode()
    assert f'href="/errors/groups/?storm={TROUBLED}"' in storm
    component = client.get(reverse("component", args=[TROUBLED, "sink"])).content.decode()
    assert f'href="/errors/groups/?storm={TROUBLED}&amp;component=sink"' in component


@pytest.mark.django_db
def test_a_text_search_reads_in_blocks_and_pages_by_cursor(client, stored, monkeypatch):
    monkeypatch.setattr(eh, "SEARCH_BLOCK", 2)
    url = reverse("api-error-history")
    seen, cursor = [], None
    while True:
        params = {"q": "refused", "limit": 1, **({"cursor": cursor} if cursor else {})}
        body = get_json(client, url, **params)
        seen.extend(e["error"] for e in body["errors"])
        cursor = body["next"]
        if cursor is None:
            break
    assert seen == [
        "Connection refused to 10.0.0.1:1",
        "Connection refused to 10.0.0.9:6701",
        "Connection refused to 10.0.0.7:6703",
    ]
    assert get_json(client, url, q="<script>", storm=STORM)["errors"][0]["taskId"] == 2
