"""Error history: every error node the dashboard sees, stored once, grouped by fingerprint.

The contract is ``docs/contract/history.md`` ("Error history").

- On the mirror's thread, :class:`Part` notes each task's new errors (an ``"errors"``
  change), and after a full sync (``"resync"``, the cold load too) every task's errors it
  has not noted yet, each with the task's component, host and port as the mirror knows them
  then. It remembers, per task, the highest sequence number it put (and the bare-named
  errors it put), so a resync every minute puts only what is new.
- On the recorder's thread, :meth:`Part.write` stores them: ``INSERT ... ON CONFLICT DO
  NOTHING RETURNING``, so an error already stored (a retried pass, a restart, a resync) is
  a no-op, and only what was really inserted is counted: in its group
  (:class:`~stormui.models.ErrorGroup`), its group's hour (:class:`~stormui.models.ErrorHour`)
  and block of hours (:class:`~stormui.models.ErrorBlock`), its group's storm, and its task
  (:class:`~stormui.models.ErrorTask`, whose ``missed`` is the sequence numbers between the
  lowest and the highest stored that never were: what ZooKeeper trimmed before the mirror
  read it; nothing is invented).
- Texts past :data:`TEXT_LIMIT` bytes are cut and marked; NUL (which PostgreSQL's text
  columns refuse) is stored as U+FFFD, as undecodable bytes already are. An item that still
  cannot be stored (a sequence number past 64 bits) is skipped and counted in its task's
  ``skipped``, never retried for ever.
- Reads: :func:`history` (newest first, keyset-paged, filtered through an index per filter)
  and :func:`groups`.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import logging
import re
import threading
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from typing import NamedTuple

from django.db import connection, transaction
from django.db.models import Count, F, Max, Min, Q, Sum

from clusterstate.paths import is_valid_id

from ..models import (
    ErrorBlock,
    ErrorGroup,
    ErrorGroupStorm,
    ErrorHour,
    ErrorTask,
    RecorderRun,
    StoredError,
)
from . import recorder
from .query import DEFAULT_LIMIT, BadQuery, after, encode_cursor, number, paging, where

log = logging.getLogger(__name__)

#: a text longer than this (in UTF-8 bytes) is stored cut, and marked
TEXT_LIMIT = 64 * 1024
#: a fingerprint longer than this (in characters) is cut
FINGERPRINT_LIMIT = 500
#: an hour, in ms
HOUR_MS = 3_600_000
#: a block of hours (:class:`~stormui.models.ErrorBlock`), in ms: blocks start at its multiples
BLOCK_MS = 4 * HOUR_MS
#: rows a statement inserts at most
INSERT_CHUNK = 400
_MAX_BIGINT = 2**63 - 1

# -- fingerprints ------------------------------------------------------------------------

# in this order: a quoted value may hold anything, a storm id holds numbers
_NORMALISE = (
    (re.compile(r"(?<![A-Za-z])'[^'\n]*'"), "'<q>'"),
    (re.compile(r'"[^"\n]*"'), '"<q>"'),
    (re.compile(r"\b[A-Za-z][\w.]*(?:-[\w.]+)*?-\d+-\d+\b"), "<storm>"),
    (
        re.compile(
            r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"
        ),
        "<hex>",
    ),
    (re.compile(r"\b0[xX][0-9a-fA-F]+\b"), "<hex>"),
    (re.compile(r"@[0-9a-fA-F]{4,}\b"), "@<hex>"),
    (re.compile(r"\b(?=[0-9a-fA-F]*[a-fA-F])(?=[0-9a-fA-F]*\d)[0-9a-fA-F]{8,}\b"), "<hex>"),
    (re.compile(r"(?<![A-Za-z<])\d+"), "<n>"),
    (re.compile(r"\s+"), " "),
)


def fingerprint(text: str) -> str:
    """What groups an error: its first line that holds anything, with numbers, hex ids,
    quoted values and storm ids normalised (``<n>``, ``<hex>``, ``'<q>'``, ``<storm>``),
    spaces collapsed, cut to :data:`FINGERPRINT_LIMIT` characters.

    >>> fingerprint("Connection refused to 10.0.0.7:6703\\n\\tat ...")
    'Connection refused to <n>.<n>.<n>.<n>:<n>'
    """
    line = next((ln for ln in text.splitlines() if ln.strip()), "")
    line = line[: FINGERPRINT_LIMIT * 4]  # the rules below never lengthen much past this
    for pattern, replacement in _NORMALISE:
        line = pattern.sub(replacement, line)
    return line.strip()[:FINGERPRINT_LIMIT]


def group_key(fp: str) -> str:
    return hashlib.blake2b(fp.encode("utf-8"), digest_size=16).hexdigest()


# -- what is stored ------------------------------------------------------------------------


def storable(text: str) -> str:
    """``text`` as both databases store it: NUL (PostgreSQL's text refuses it) and lone
    surrogates (no UTF-8 holds them) become U+FFFD, as undecodable bytes already did."""
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = _SURROGATE.sub("\ufffd", text)
    return text


_SURROGATE = re.compile("[\ud800-\udfff]")


def cut(text: str) -> tuple[str, bool, int]:
    """``(text to store, truncated, size of the whole in UTF-8 bytes)``: past
    :data:`TEXT_LIMIT` bytes, the first ones, on a character boundary, and a mark."""
    raw = text.encode("utf-8")
    if len(raw) <= TEXT_LIMIT:
        return text, False, len(raw)
    kept = raw[:TEXT_LIMIT].decode("utf-8", "ignore")
    return f"{kept}\n… [cut at 64 KB: {len(raw):,} bytes in all]", True, len(raw)


class Noted(NamedTuple):
    """An error as the part puts it: the task's component, host and port as noted."""

    storm_id: str
    task_id: int
    component_id: str | None
    host: str | None
    port: int | None
    error: object  # a clusterstate.TaskError


class _Row(NamedTuple):
    storm_id: str
    task_id: int
    component_id: str
    host: str
    port: int | None
    error_time: int
    seq: int | None
    text: str
    truncated: bool
    length: int
    digest: str
    fingerprint: str

    @property
    def key(self) -> tuple:
        if self.seq is not None:
            return (self.storm_id, self.task_id, self.seq)
        return (self.storm_id, self.task_id, None, self.error_time, self.digest)


def _short(value, limit: int = 255) -> str:
    return storable(value)[:limit] if isinstance(value, str) else ""


def row_of(item: Noted) -> _Row:
    """The row ``item`` is stored as. Raises ``ValueError`` for what no row can hold."""
    e = item.error
    seq = e.seq
    if seq is not None and not 0 <= seq <= _MAX_BIGINT:
        raise ValueError(f"sequence number {seq} does not fit in 64 bits")
    task_id = int(item.task_id)
    if not 0 <= task_id <= _MAX_BIGINT:
        raise ValueError(f"task id {task_id} does not fit in 64 bits")
    error_time = int(e.time_secs) * 1000
    if not 0 <= error_time <= _MAX_BIGINT:
        raise ValueError(f"time {e.time_secs} does not fit in 64 bits")
    whole = storable(e.error if isinstance(e.error, str) else str(e.error))
    text, truncated, length = cut(whole)
    port = item.port if isinstance(item.port, int) and 0 <= item.port <= 65535 else None
    return _Row(
        storm_id=_short(item.storm_id),
        task_id=task_id,
        component_id=_short(item.component_id),
        host=_short(item.host),
        port=port,
        error_time=error_time,
        seq=seq,
        text=text,
        truncated=truncated,
        length=min(length, 2**31 - 1),
        digest=hashlib.blake2b(whole.encode("utf-8"), digest_size=16).hexdigest(),
        fingerprint=fingerprint(whole),
    )


# -- the part --------------------------------------------------------------------------------


class Part(recorder.Part):
    name = "errors"

    def __init__(self, source):
        super().__init__(source)
        self._lock = threading.Lock()
        # (storm, task) -> (highest sequence number put, the bare-named errors put)
        self._put: dict[tuple[str, int], tuple[int, frozenset]] = {}
        #: items that could not be stored, by (storm, task); kept in ErrorTask.skipped too
        self.skipped: Counter = Counter()

    # -- the mirror's thread (and the run's start): look, put -----------------------------

    def note(self, change, put) -> None:
        if change.kind == "errors":
            if change.storm_id is None:
                return
            if change.task_id is None:  # the storm's error folder went
                if not change.errors:
                    with self._lock:
                        for pair in [p for p in self._put if p[0] == change.storm_id]:
                            del self._put[pair]
                return
            if change.errors:
                self._put_errors(change.storm_id, change.task_id, change.errors, put, True)
        elif change.kind == "resync":
            self._put_all(put, only_new=True)

    def started(self, now, previous, put) -> None:
        # what ZooKeeper holds as the run starts: all of it (the unique key makes what is
        # stored already a no-op; if this pass fails, the next says it all again)
        self._put_all(put, only_new=False)

    def _reader(self):
        return getattr(self.source, "reader", None)

    def _put_all(self, put, *, only_new: bool) -> None:
        reader = self._reader()
        if reader is None:
            return
        for storm_id in reader.task_error_storms():
            try:
                task_ids = set(reader.task_ids(storm_id))
                assignment = _read(reader.assignment_info, storm_id)
            except ValueError:  # an id no read takes
                continue
            if assignment is not None:
                task_ids.update(assignment.task_node_port)
            for task_id in sorted(task_ids):
                errors = reader.task_errors(storm_id, task_id)
                if errors:
                    self._put_errors(storm_id, task_id, errors, put, only_new, assignment)

    def _put_errors(self, storm_id, task_id, errors, put, only_new, assignment=False):
        pair = (storm_id, task_id)
        with self._lock:
            top, bare = self._put.get(pair, (-1, frozenset()))
            if only_new:
                errors = [
                    e for e in errors if (e.seq > top if _numbered(e) else _bare(e) not in bare)
                ]
            if not errors:
                return
            seqs = [e.seq for e in errors if _numbered(e)]
            bare_now = frozenset(_bare(e) for e in errors if not _numbered(e))
            if bare_now:
                # the task's other errors now in ZooKeeper (older ones never come back)
                current = self._reader().task_errors(storm_id, task_id)
                bare = frozenset(_bare(e) for e in current if not _numbered(e)) | bare_now
            self._put[pair] = (max([top, *seqs]), bare)
        component, host, port = self._where(storm_id, task_id, assignment)
        for e in errors:
            put(Noted(storm_id, task_id, component, host, port, e))

    def _where(self, storm_id, task_id, assignment=False):
        """The task's component, host and port as the mirror knows them now."""
        reader = self._reader()
        info = _read(reader.task_info, storm_id, task_id)
        if assignment is False:
            assignment = _read(reader.assignment_info, storm_id)
        node_port = assignment.task_node_port.get(task_id) if assignment is not None else None
        if node_port is None:
            return (info.component_id if info else None), None, None
        node, port = node_port
        return (info.component_id if info else None), assignment.node_host.get(node), port

    # -- the recorder's thread: write, expire ---------------------------------------------

    def write(self, items, now) -> None:
        oldest = now - recorder.retention_ms()
        rows: dict[tuple, _Row] = {}
        skipped: Counter = Counter()
        bad = set()
        for item in items:
            try:
                row = row_of(item)
            except (ValueError, TypeError, OverflowError) as exc:
                key = (item.storm_id, item.task_id, item.error.seq, item.error.time_secs)
                if key not in bad:  # once a pass, however often it was put
                    bad.add(key)
                    skipped[(item.storm_id, item.task_id)] += 1
                    log.warning("history: an error of %s/%s skipped: %s", *item[:2], exc)
                continue
            if row.error_time >= oldest:  # past the retention it would only be deleted again
                rows.setdefault(row.key, row)
        samples: dict[str, _Row] = {}
        for r in rows.values():  # a new group's sample: its oldest error here
            if r.fingerprint not in samples or r.error_time < samples[r.fingerprint].error_time:
                samples[r.fingerprint] = r
        groups = _groups(samples)
        inserted = _insert(list(rows.values()), groups)
        _count(inserted, groups)
        _tasks(inserted, skipped, now)
        self.skipped.update(skipped)

    def expire(self, cutoff) -> int:
        return expire(cutoff)


def _numbered(error) -> bool:
    # a sequence number no row can hold is remembered as a bare name is: by time and text
    return error.seq is not None and 0 <= error.seq <= _MAX_BIGINT


def _bare(error) -> tuple:
    return (error.time_secs, error.error)


def _read(read, *args):
    try:
        return read(*args)
    except ValueError:  # UnreadableNodeError is one
        return None


def _groups(samples: dict[str, _Row]) -> dict[str, ErrorGroup]:
    """fingerprint -> its group, made for the fingerprints first seen (the row, the sample)."""
    keys = {group_key(fp): fp for fp in samples}
    found: dict[str, ErrorGroup] = {}
    key_list = list(keys)
    for i in range(0, len(key_list), 500):
        for g in ErrorGroup.objects.filter(key__in=key_list[i : i + 500]):
            found[keys[g.key]] = g
    new = [
        ErrorGroup(
            key=key,
            fingerprint=fp,
            sample=samples[fp].text,
            count=0,
            first_seen=samples[fp].error_time,
            last_seen=samples[fp].error_time,
        )
        for key, fp in keys.items()
        if fp not in found
    ]
    if new:
        ErrorGroup.objects.bulk_create(new, batch_size=200)
        for g in ErrorGroup.objects.filter(key__in=[g.key for g in new]):
            found[keys[g.key]] = g
    return found


_COLUMNS = (
    "storm_id",
    "task_id",
    "component_id",
    "host",
    "port",
    "error_time",
    "seq",
    "text",
    "truncated",
    "length",
    "digest",
    "group_id",
)


class _Inserted(NamedTuple):
    storm_id: str
    task_id: int
    seq: int | None
    error_time: int
    group_id: int
    component_id: str
    host: str


def _insert(rows: list[_Row], groups: dict[str, ErrorGroup]) -> list[_Inserted]:
    """Insert ``rows``; those already stored (by either unique key) are left: returns only
    the rows inserted."""
    if not rows:
        return []
    qn = connection.ops.quote_name
    table = qn(StoredError._meta.db_table)
    columns = ", ".join(qn(c) for c in _COLUMNS)
    one = "(" + ", ".join(["%s"] * len(_COLUMNS)) + ")"
    returning = ", ".join(
        qn(c) for c in ("storm_id", "task_id", "seq", "error_time", "group_id", "component_id")
    )
    inserted = []
    with connection.cursor() as cursor:
        for i in range(0, len(rows), INSERT_CHUNK):
            chunk = rows[i : i + INSERT_CHUNK]
            params = []
            for r in chunk:
                params.extend(r[:11])
                params.append(groups[r.fingerprint].pk)
            cursor.execute(
                f"INSERT INTO {table} ({columns}) VALUES {', '.join([one] * len(chunk))}"
                f" ON CONFLICT DO NOTHING RETURNING {returning}, {qn('host')}",
                params,
            )
            inserted.extend(_Inserted(*got) for got in cursor.fetchall())
    return inserted


def _listed(values: list, more, limit: int = ErrorGroup.LISTED) -> list:
    """``values`` with the values of ``more`` it lacks added, in order, up to ``limit``
    (a [storm, task] pair is a list in JSON, a tuple here)."""
    if len(values) >= limit:
        return values
    have = {tuple(v) if type(v) is list else v for v in values}
    for v in sorted(more):
        if len(values) >= limit:
            break
        if v != "" and v not in have:
            values.append(list(v) if type(v) is tuple else v)
            have.add(v)
    return values


def _merge(obj, rows: list[_Inserted]) -> None:
    """Add ``rows`` to a group's, a group-hour's or a group-storm's count, first and last
    seen and lists (a group-storm lists no storms: it is one)."""
    obj.count += len(rows)
    obj.first_seen = min(obj.first_seen, *(r.error_time for r in rows))
    obj.last_seen = max(obj.last_seen, *(r.error_time for r in rows))
    if not isinstance(obj, ErrorGroupStorm):
        obj.storms = _listed(obj.storms, {r.storm_id for r in rows})
    obj.components = _listed(obj.components, {r.component_id for r in rows})
    obj.tasks = _listed(obj.tasks, {(r.storm_id, r.task_id) for r in rows})
    obj.hosts = _listed(obj.hosts, {r.host for r in rows})


_LISTS = ["count", "first_seen", "last_seen", "storms", "components", "tasks", "hosts"]


def _count(inserted: list[_Inserted], groups: dict[str, ErrorGroup]) -> None:
    """Count what was inserted in its group, its group's hour and block, and its group's
    storm."""
    if not inserted:
        return
    by_pk = {g.pk: g for g in groups.values()}
    per_group: dict[int, list[_Inserted]] = defaultdict(list)
    per_hour: dict[tuple[int, int], list[_Inserted]] = defaultdict(list)
    per_block: dict[tuple[int, int], list[_Inserted]] = defaultdict(list)
    per_storm: dict[tuple[int, str], list[_Inserted]] = defaultdict(list)
    for r in inserted:
        per_group[r.group_id].append(r)
        per_hour[(r.group_id, r.error_time - r.error_time % HOUR_MS)].append(r)
        per_block[(r.group_id, r.error_time - r.error_time % BLOCK_MS)].append(r)
        per_storm[(r.group_id, r.storm_id)].append(r)
    for gid, rows in per_group.items():
        _merge(by_pk[gid], rows)
    _update([by_pk[gid] for gid in per_group], _LISTS)
    _count_in(ErrorHour, "hour", per_hour, _LISTS)
    _count_in(ErrorBlock, "block", per_block, _LISTS)
    _count_in(ErrorGroupStorm, "storm_id", per_storm, [f for f in _LISTS if f != "storms"])


def _count_in(model, name: str, rows_by: dict[tuple, list[_Inserted]], fields) -> None:
    """Add each ``(group id, value of name)``'s rows to its ``model`` row, made if new."""
    values = list({value for _, value in rows_by})
    found = {}
    for i in range(0, len(values), 500):
        for obj in model.objects.filter(
            group_id__in=list({gid for gid, _ in rows_by}), **{f"{name}__in": values[i : i + 500]}
        ):
            found[(obj.group_id, getattr(obj, name))] = obj
    changed, new = [], []
    for (gid, value), rows in rows_by.items():
        obj = found.get((gid, value))
        if obj is None:
            first = rows[0].error_time
            obj = model(group_id=gid, count=0, first_seen=first, last_seen=first, **{name: value})
            new.append(obj)
        else:
            changed.append(obj)
        _merge(obj, rows)
    _update(changed, fields)
    model.objects.bulk_create(new, batch_size=500)


def _tasks(inserted: list[_Inserted], skipped: Counter, now: int) -> None:
    """Each task's stored sequence numbers (so its ``missed``) and what was skipped."""
    seqs: dict[tuple, list[int]] = defaultdict(list)
    newest: dict[tuple, _Inserted] = {}
    for r in inserted:
        pair = (r.storm_id, r.task_id)
        if r.seq is not None:
            seqs[pair].append(r.seq)
        if pair not in newest or r.error_time >= newest[pair].error_time:
            newest[pair] = r
    pairs = set(newest) | {(_short(s), int(t)) for s, t in skipped if _fits(t)}
    if not pairs:
        return
    by_storm: dict[str, list[int]] = defaultdict(list)
    for s, t in pairs:
        by_storm[s].append(t)
    found = {}
    for s, ts in by_storm.items():
        for i in range(0, len(ts), 500):
            for task in ErrorTask.objects.filter(storm_id=s, task_id__in=ts[i : i + 500]):
                found[(task.storm_id, task.task_id)] = task
    skipped_by = Counter()
    for (s, t), n in skipped.items():
        if _fits(t):
            skipped_by[(_short(s), int(t))] += n
    changed, new = [], []
    for pair in pairs:
        task = found.get(pair)
        if task is None:
            task = ErrorTask(storm_id=pair[0], task_id=pair[1], seen_at=0)
            new.append(task)
        else:
            changed.append(task)
        got = seqs.get(pair)
        if got:
            low, high = min(got), max(got)
            task.first_seq = low if task.first_seq is None else min(task.first_seq, low)
            task.last_seq = high if task.last_seq is None else max(task.last_seq, high)
            task.stored += len(got)
            task.missed = max(task.last_seq - task.first_seq + 1 - task.stored, 0)
        r = newest.get(pair)
        if r is not None and r.error_time >= task.seen_at:
            task.seen_at = r.error_time
            task.component_id = r.component_id
            task.host = r.host
        elif task.seen_at == 0:
            task.seen_at = now
        task.skipped += skipped_by.get(pair, 0)
    _update(
        changed,
        ["first_seq", "last_seq", "stored", "missed", "skipped", "seen_at", "component_id", "host"],
    )
    ErrorTask.objects.bulk_create(new, batch_size=500)


def _update(objs: list, fields: list[str]) -> None:
    """Save ``fields`` of ``objs`` (of one model), one ``UPDATE`` a row, sent as one batch
    (Django's ``bulk_update`` builds a ``CASE`` a field, which costs far more to build than
    the database takes to run these)."""
    if not objs:
        return
    meta = objs[0]._meta
    qn = connection.ops.quote_name
    model_fields = [meta.get_field(name) for name in fields]
    sets = ", ".join(f"{qn(f.column)} = %s" for f in model_fields)
    sql = f"UPDATE {qn(meta.db_table)} SET {sets} WHERE {qn(meta.pk.column)} = %s"
    params = [
        [f.get_db_prep_save(getattr(obj, f.attname), connection) for f in model_fields] + [obj.pk]
        for obj in objs
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)


def _fits(task_id) -> bool:
    return isinstance(task_id, int) and 0 <= task_id <= _MAX_BIGINT


def expire(cutoff: int, batch: int = recorder.EXPIRE_BATCH) -> int:
    """Delete the errors older than ``cutoff`` (epoch ms), ``batch`` a transaction, taking
    them off their groups' and group-storms' counts; then the hours and blocks that ended
    before it, and the groups, group-storms and tasks no longer seen since."""
    total = 0
    touched = set()  # the (group, storm) pairs that lost errors
    old = StoredError.objects.filter(error_time__lt=cutoff).order_by("error_time")
    while True:
        got = list(old.values_list("pk", "group_id", "storm_id")[:batch])
        if not got:
            break
        with transaction.atomic():
            StoredError.objects.filter(pk__in=[pk for pk, *_ in got]).delete()
            for gid, n in Counter(gid for _, gid, _ in got).items():
                ErrorGroup.objects.filter(pk=gid).update(count=F("count") - n)
            for (gid, storm), n in Counter((gid, storm) for _, gid, storm in got).items():
                ErrorGroupStorm.objects.filter(group_id=gid, storm_id=storm).update(
                    count=F("count") - n
                )
                touched.add((gid, storm))
        total += len(got)
        if len(got) < batch:
            break
    total += recorder.delete_before(ErrorHour.objects.all(), "hour", cutoff - HOUR_MS + 1)
    total += recorder.delete_before(ErrorBlock.objects.all(), "block", cutoff - BLOCK_MS + 1)
    total += recorder.delete_before(ErrorGroupStorm.objects.all(), "last_seen", cutoff, batch=batch)
    total += recorder.delete_before(ErrorGroup.objects.all(), "last_seen", cutoff, batch=batch)
    total += recorder.delete_before(ErrorTask.objects.all(), "seen_at", cutoff, batch=batch)
    # what is left of a group (in a storm) began at its oldest error left
    for g in ErrorGroup.objects.filter(first_seen__lt=cutoff).only("pk"):
        first = StoredError.objects.filter(group_id=g.pk).aggregate(t=Min("error_time"))["t"]
        if first is not None:
            ErrorGroup.objects.filter(pk=g.pk).update(first_seen=first)
    for gid, storm in touched:
        mine = StoredError.objects.filter(storm_id=storm, group_id=gid)
        first = mine.aggregate(t=Min("error_time"))["t"]
        if first is not None:
            ErrorGroupStorm.objects.filter(group_id=gid, storm_id=storm).update(first_seen=first)
    return total


# -- reading: the filters, the history, the groups ---------------------------------------------

#: the longest text search
MAX_Q = 200


@dataclass(frozen=True)
class Query:
    storm: str | None = None
    component: str | None = None
    task: int | None = None
    host: str | None = None
    q: str | None = None
    since: int | None = None
    until: int | None = None
    fingerprint: str | None = None
    limit: int = DEFAULT_LIMIT
    cursor: tuple[int, int] | None = None
    raw: dict = field(default_factory=dict, compare=False)

    def fields(self) -> dict[str, str]:
        """The filters as the query string says them (no limit or cursor)."""
        return {
            name: str(value)
            for name in ("storm", "component", "task", "host", "q", "since", "until")
            for value in (getattr(self, name),)
            if value is not None
        } | ({"fingerprint": self.fingerprint} if self.fingerprint is not None else {})


def _id(params, name: str) -> str | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    if not is_valid_id(raw):
        raise BadQuery(f"{name} is not a valid id")
    return raw


def _text(params, name: str, limit: int) -> str | None:
    raw = params.get(name)
    if raw is None or raw.strip() == "":
        return None
    if len(raw) > limit:
        raise BadQuery(f"{name} is longer than {limit} characters")
    if "\x00" in raw:
        raise BadQuery(f"{name} must not hold NUL")
    return raw.strip()


def parse_query(params) -> Query:
    """The history's or the groups' filters from a query (a QueryDict or a dict).

    :raises BadQuery: for an id that could not be one, a number out of range, a ``since``
        after ``until``, a text too long, a cursor this API did not give.
    """
    page = paging(params)
    return Query(
        storm=_id(params, "storm"),
        component=_id(params, "component"),
        task=number(params, "task"),
        host=_text(params, "host", 255),
        q=_text(params, "q", MAX_Q),
        since=page.since,
        until=page.until,
        fingerprint=_text(params, "fingerprint", FINGERPRINT_LIMIT),
        limit=page.limit,
        cursor=page.cursor,
    )


def _filtered(query: Query, *, text: bool = True):
    return where(
        StoredError.objects.all(),
        storm_id=query.storm,
        component_id=query.component,
        task_id=query.task,
        host=query.host,
        error_time__gte=query.since,
        error_time__lte=query.until,
        text__icontains=query.q if text else None,
        group__key=None if query.fingerprint is None else group_key(query.fingerprint),
    )


@dataclass(frozen=True)
class HistoryPage:
    errors: list[dict]  # rows: the stored fields and "fingerprint"
    next: str | None
    missed: int


_FIELDS = ("pk", "storm_id", "task_id", "component_id", "host", "port", "error_time", "text")


def history(query: Query) -> HistoryPage:
    """The errors ``query`` selects, newest first, ``query.limit`` after its cursor; and how
    many ZooKeeper trimmed of the tasks it names (storm, component, task, host) before they
    were read."""
    if query.q is not None:
        rows = _search(query)
    else:
        rows = list(
            _after(_filtered(query), query.cursor)
            .order_by("-error_time", "-pk")
            .values(*_FIELDS, "group__fingerprint")[: query.limit + 1]
        )
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    last = rows[-1] if rows else None
    return HistoryPage(
        errors=rows,
        next=encode_cursor(last["error_time"], last["pk"]) if more and last else None,
        missed=missed(query),
    )


#: a text search reads the other filters' rows this many at a time, newest first
SEARCH_BLOCK = 2000


def _after(qs, cursor):
    return after(qs, "error_time", cursor)


def _search(query: Query) -> list[dict]:
    """The first ``query.limit + 1`` rows whose text holds ``query.q``, newest first: the
    other filters' rows are read in blocks of :data:`SEARCH_BLOCK`, newest first through
    their index, and each block searched, so a common word ends the search early (a planner
    left to itself may scan and sort the whole table for a ``LIKE``). A block is bounded by
    its oldest row's time and id (one row read through the index), not by a list of ids,
    which costs far more to send and look up than the range."""
    base = _filtered(replace(query, q=None))
    found: list[dict] = []
    cursor = query.cursor
    while len(found) <= query.limit:
        rows = _after(base, cursor).order_by("-error_time", "-pk")
        edge = list(rows.values_list("error_time", "pk")[SEARCH_BLOCK - 1 : SEARCH_BLOCK])
        hits = rows.filter(text__icontains=query.q)
        if edge:
            t, pk = edge[0]
            hits = hits.filter(error_time__gte=t).filter(Q(error_time__gt=t) | Q(pk__gte=pk))
        found.extend(hits.values(*_FIELDS, "group__fingerprint"))
        if not edge:
            break
        cursor = edge[0]
    return found[: query.limit + 1]


def missed(query: Query) -> int:
    """How many errors of the tasks ``query`` names ZooKeeper trimmed before they were read
    (by task, as a task's component and host were last noted; the time and text filters
    do not apply: a trimmed error has neither)."""
    tasks = where(
        ErrorTask.objects.all(),
        storm_id=query.storm,
        component_id=query.component,
        task_id=query.task,
        host=query.host,
    )
    return tasks.aggregate(n=Sum("missed"))["n"] or 0


def error_shape(row: dict) -> dict:
    """A stored error as the API answers it."""
    return {
        "stormId": row["storm_id"],
        "taskId": row["task_id"],
        "componentId": row["component_id"] or None,
        "host": row["host"] or None,
        "port": row["port"],
        "errorTime": row["error_time"],
        "error": row["text"],
        "fingerprint": row["group__fingerprint"],
    }


@dataclass
class Group:
    key: str
    fingerprint: str
    sample: str
    count: int
    first_seen: int
    last_seen: int
    storms: list = field(default_factory=list)
    components: list = field(default_factory=list)
    tasks: list = field(default_factory=list)  # [storm id, task id]
    hosts: list = field(default_factory=list)
    hours: dict = field(default_factory=dict)  # hour start (ms) -> count


def groups(query: Query) -> list[Group]:
    """The groups of the errors ``query`` selects (storm, component, since, until; the rest
    is ignored), newest last seen first, at most ``query.limit``.

    - No filter: the groups' own counts and lists.
    - A storm alone: its group-storms' counts and lists
      (:class:`~stormui.models.ErrorGroupStorm`).
    - A storm and a range, or a component: counted from those errors (an index holds
      them in time order: a storm's errors are a small part of the whole).
    - A range alone: counted by the hour (:class:`~stormui.models.ErrorHour`), ``since``
      and ``until`` rounded out to whole hours, so the range's first and last hours count
      whole; first and last seen are those hours'. Counted, ordered and paged by the
      database (an index holds what it needs); only the page's groups' storms, components,
      tasks and hosts are read, each list until it holds ``LISTED``: from the blocks of
      hours (:class:`~stormui.models.ErrorBlock`) wholly inside those hours, newest first,
      then from the hours at their edges for the groups whose lists are not all full.
    """
    ranged = query.since is not None or query.until is not None
    if query.storm is not None and query.component is None and not ranged:
        return _groups_of_storm(query)
    if query.storm is not None or query.component is not None:
        return _groups_of_errors(query)
    if not ranged:
        found = ErrorGroup.objects.filter(count__gt=0).order_by("-last_seen", "-pk")
        return [
            _group(g, g.count, g.first_seen, g.last_seen, g.storms, g.components, g.tasks, g.hosts)
            for g in found[: query.limit]
        ]
    return _groups_of_hours(query)


def _group(g: ErrorGroup, count, first, last, storms, components, tasks, hosts) -> Group:
    return Group(
        g.key, g.fingerprint, g.sample, count, first, last, storms, components, tasks, hosts
    )


def _built(top: list[dict], lists: dict[int, tuple]) -> list[Group]:
    """The groups of ``top`` (rows of group id, count ``n``, ``first`` and ``last`` seen, in
    order) with their storms, components, tasks and hosts from ``lists`` (sets, by group)."""
    texts = ErrorGroup.objects.filter(pk__in=[t["group_id"] for t in top])
    by_pk = {pk: rest for pk, *rest in texts.values_list("pk", *_GROUP_TEXT)}
    return [
        Group(
            *by_pk[t["group_id"]],
            t["n"],
            t["first"],
            t["last"],
            *(_first(v) for v in lists[t["group_id"]]),
        )
        for t in top
    ]


def _first(values: set) -> list:
    """The first :attr:`~stormui.models.ErrorGroup.LISTED` of ``values`` but the empty
    one, in order (a heap: a busy group's hours may list hundreds of tasks)."""
    values.discard("")
    return heapq.nsmallest(ErrorGroup.LISTED, values)


def _top(rows, n, first, last, limit: int) -> list[dict]:
    """The groups of ``rows``, newest ``last`` first: group id, ``n``, ``first``, ``last``."""
    found = rows.values("group_id").annotate(n=n, first=first, last=last)
    return list(found.order_by("-last", "-group_id")[:limit])


def _groups_of_storm(query: Query) -> list[Group]:
    found = (
        ErrorGroupStorm.objects.filter(storm_id=query.storm, count__gt=0)
        .select_related("group")
        .only(
            "storm_id",
            "count",
            "first_seen",
            "last_seen",
            "components",
            "tasks",
            "hosts",
            *(f"group__{name}" for name in _GROUP_TEXT),
        )
        .order_by("-last_seen", "-group_id")[: query.limit]
    )
    return [
        _group(
            g.group,
            g.count,
            g.first_seen,
            g.last_seen,
            [g.storm_id],
            g.components,
            g.tasks,
            g.hosts,
        )
        for g in found
    ]


def _hours(query: Query):
    hours = ErrorHour.objects.all()
    if query.since is not None:
        hours = hours.filter(hour__gte=query.since - query.since % HOUR_MS)
    if query.until is not None:
        hours = hours.filter(hour__lte=query.until)
    return hours


def _groups_of_hours(query: Query) -> list[Group]:
    hours = _hours(query)
    top = _top(hours, Sum("count"), Min("first_seen"), Max("last_seen"), query.limit)
    if not top:
        return []
    gids = [t["group_id"] for t in top]
    return _built(top, _lists_of(query, gids))


def _lists_of(query: Query, gids: list[int]) -> dict[int, tuple]:
    """The storms, components, tasks and hosts (sets) of the groups ``gids`` over the hours
    ``query``'s range overlaps, each at most ``LISTED``: first from the blocks wholly
    inside those hours, newest first, then, for the groups with a list not yet full, from
    the hours at the edges (before the first such block, after the last), newest first."""
    lists = {gid: (set(), set(), set(), set()) for gid in gids}
    full = ErrorGroup.LISTED
    pending = gids
    for rows_of in _list_sources(query):
        if not pending:
            break
        sql, params = rows_of(pending)
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            _add_lists(lists, cursor.fetchall())
        pending = [gid for gid in pending if any(len(v) < full for v in lists[gid])]
    return lists


def _add_lists(lists: dict[int, tuple], rows) -> None:
    """Add ``rows`` (group id, then the four lists' JSON texts, as stored) to ``lists``,
    each list until it holds ``LISTED``: a busy group's older rows need not be decoded; a
    row's lists not yet full are decoded in one go, a list that fits added whole."""
    full = ErrorGroup.LISTED
    done = set()  # the groups whose lists are all full
    for gid, *texts in rows:
        if gid in done:
            continue
        mine = lists[gid]
        wanted = [i for i, values in enumerate(mine) if len(values) < full]
        if not wanted:
            done.add(gid)
            continue
        decoded = json.loads("[" + ",".join([texts[i] for i in wanted]) + "]")
        for i, got in zip(wanted, decoded, strict=True):
            values = mine[i]
            if i == _PAIRS:
                got = [tuple(v) for v in got]
            if len(got) <= full - len(values):
                values.update(got)
                continue
            for v in got:
                values.add(v)
                if len(values) >= full:
                    break


def _list_sources(query: Query) -> list:
    """Functions of group ids giving the query (SQL and its parameters: group id, then the
    four lists) of their rows over the hours ``query``'s range overlaps, newest first: the
    blocks wholly inside those hours, then the hours at their edges; or the hours alone if
    no block is whole. (Written as SQL: building each through the ORM cost more than the
    database took to answer it.)"""
    start = _first_hour(query)
    if start is None:
        return []
    end = None if query.until is None else query.until - query.until % HOUR_MS + HOUR_MS
    first = -(-start // BLOCK_MS) * BLOCK_MS  # the first block starting in the range
    last = None if end is None else end - end % BLOCK_MS  # the end of its last block
    hours = (ErrorHour, "hour")
    blocks = (ErrorBlock, "block")
    if last is not None and last <= first:  # no whole block
        return [_rows_of(*hours, [(">=", start), ("<", end)])]
    if last is None:
        return [_rows_of(*blocks, [(">=", first)]), _rows_of(*hours, [(">=", start), ("<", first)])]
    edges = _rows_of(*hours, [(">=", start), ("<", end)], outside=(first, last))
    return [_rows_of(*blocks, [(">=", first), ("<", last)]), edges]


def _rows_of(model, name: str, bounds: list[tuple[str, int]], outside=None):
    """A function of group ids giving the SQL (and its parameters) of the lists of the
    rows of ``model`` whose ``name`` is within ``bounds`` (and not within ``outside``, a
    range), newest first."""
    qn = connection.ops.quote_name
    column = qn(name)
    where = [f"{column} {op} %s" for op, _ in bounds]
    params = [value for _, value in bounds]
    if outside is not None:
        where.append(f"({column} < %s OR {column} >= %s)")
        params.extend(outside)
    table = qn(model._meta.db_table)
    group = qn(model._meta.get_field("group").column)
    columns = ", ".join(qn(n) for n in _LIST_FIELDS)

    def sql(gids):
        marks = ", ".join(["%s"] * len(gids))
        return (
            f"SELECT {group}, {columns} FROM {table} WHERE {group} IN ({marks})"
            f" AND {' AND '.join(where)} ORDER BY {column} DESC",
            [*gids, *params],
        )

    return sql


def _first_hour(query: Query) -> int | None:
    """The first hour of ``query``'s range: ``since``'s, or else the oldest stored."""
    if query.since is not None:
        return query.since - query.since % HOUR_MS
    return ErrorHour.objects.order_by("hour").values_list("hour", flat=True).first()


_GROUP_TEXT = ("key", "fingerprint", "sample")
_LIST_FIELDS = ("storms", "components", "tasks", "hosts")
_PAIRS = _LIST_FIELDS.index("tasks")  # the list of [storm id, task id] pairs


def _groups_of_errors(query: Query) -> list[Group]:
    qs = _filtered(
        Query(storm=query.storm, component=query.component, since=query.since, until=query.until)
    )
    # counted by the database, from the storm's index alone (it holds all these columns)
    top = _top(qs, Count("pk"), Min("error_time"), Max("error_time"), query.limit)
    gids = [t["group_id"] for t in top]
    lists = {gid: (set(), set(), set(), set()) for gid in gids}
    mine = qs.filter(group_id__in=gids).order_by()
    for gid, s, c, h in mine.values_list("group_id", "storm_id", "component_id", "host").distinct():
        storms, comps, _tasks, hosts = lists[gid]
        storms.add(s)
        comps.add(c)
        hosts.add(h)
    for gid, s, t in mine.values_list("group_id", "storm_id", "task_id").distinct():
        lists[gid][2].add((s, t))
    return _built(top, lists)


def hourly(found: list[Group], start: int, end: int, query: Query | None = None) -> None:
    """Fill each group's ``hours`` (hour start -> count) for the hours from ``start`` to
    ``end`` (epoch ms): of ``query``'s storm and component if it names them."""
    if not found:
        return
    by_key = {g.key: g for g in found}
    start -= start % HOUR_MS
    if query is not None and (query.storm is not None or query.component is not None):
        errors = _filtered(
            Query(storm=query.storm, component=query.component, since=start, until=end)
        ).filter(group__key__in=list(by_key))
        for key, t in errors.values_list("group__key", "error_time").iterator(chunk_size=5000):
            hours = by_key[key].hours
            hour = t - t % HOUR_MS
            hours[hour] = hours.get(hour, 0) + 1
        return
    rows = ErrorHour.objects.filter(group__key__in=list(by_key), hour__gte=start, hour__lte=end)
    for key, hour, n in rows.values_list("group__key", "hour", "count"):
        by_key[key].hours[hour] = n


def group_shape(g: Group) -> dict:
    """A group as the API answers it."""
    return {
        "fingerprint": g.fingerprint,
        "sample": g.sample,
        "count": g.count,
        "firstSeen": g.first_seen,
        "lastSeen": g.last_seen,
        "storms": sorted(g.storms),
        "components": sorted(c for c in g.components if c),
        "tasks": [{"stormId": s, "taskId": t} for s, t in sorted(map(tuple, g.tasks))],
        "hosts": sorted(h for h in g.hosts if h),
    }


def dropped(since: int) -> int:
    """How many errors the history's writer dropped (the database too slow or away) in the
    runs alive since ``since`` (epoch ms)."""
    return sum(
        int((run.dropped or {}).get(Part.name, 0) or 0)
        for run in RecorderRun.objects.filter(alive_at__gte=since).only("dropped")
    )


def skipped(query: Query | None = None) -> int:
    """How many errors could not be stored at all, of the tasks ``query`` names."""
    tasks = ErrorTask.objects.all()
    if query is not None and query.storm is not None:
        tasks = tasks.filter(storm_id=query.storm)
    return tasks.aggregate(n=Sum("skipped"))["n"] or 0
