"""Records and their JSON: round trips, normalisation, and refusing what does not fit."""

import json

import pytest

from clusterstate import records
from clusterstate.errors import UnreadableNodeError
from clusterstate.records import (
    Assignment,
    StormBase,
    SupervisorInfo,
    TaskHeartbeat,
    TaskInfo,
    decode,
    encode,
    ordered_error_names,
    parse_error_name,
)

SPOUT_STATS = {
    "type": "spout",
    "rate": 20,
    "emitted": {"600": {"default": 40}, "all-time": {"default": 400}},
    "transferred": {"600": {"default": 40}},
    "acked": {"600": {"default": 20}},
    "failed": {"600": {"default": 1}},
    "complete_latencies": {"600": {"default": 12.5}},
}
BOLT_STATS = {
    "type": "bolt",
    "emitted": {"600": {"default": 10}},
    "acked": {"600": {"word-spout": {"default": 5}}},
    "process_latencies": {"600": {"word-spout": {"default": 1.5}}},
}

RECORDS = [
    StormBase("words", 1_700_000_000),
    Assignment("/code/w", {"n1": "host-1"}, {1: ("n1", 6700), 2: ("n1", 6701)}, {1: 5, 2: 6}),
    TaskInfo("word-spout", "spout"),
    TaskInfo("split-bolt"),
    SupervisorInfo(1_700_000_000, "host-1", (6700, 6701), 30),
    TaskHeartbeat(1_700_000_000, 12, SPOUT_STATS),
    TaskHeartbeat(1_700_000_000, 12, BOLT_STATS),
    TaskHeartbeat(1_700_000_000, 12, None),
]


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: type(r).__name__)
def test_a_record_read_back_equals_the_record_written(record):
    assert decode(type(record), encode(record), "/x") == record


def test_constructors_normalise_to_what_a_read_gives():
    written = Assignment("d", {"n": "h"}, {"3": ["n", 6700]}, {"3": 9})
    assert written.task_node_port == {3: ("n", 6700)}
    assert written.task_start_time_secs == {3: 9}
    assert SupervisorInfo(1, "h", [6700], 2).worker_ports == (6700,)
    wire = json.loads(encode(written))
    assert wire["task_node_port"] == {"3": ["n", 6700]}


def test_optional_fields_are_left_out_and_unknown_keys_ignored():
    assert json.loads(encode(TaskInfo("c"))) == {"component_id": "c"}
    newer = b'{"storm_name": "w", "launch_time_secs": 5, "owner": "someone"}'
    assert decode(StormBase, newer, "/storms/w") == StormBase("w", 5)
    # a heartbeat always carries its stats, null when there are none
    assert json.loads(encode(TaskHeartbeat(1, 2)))["stats"] is None


@pytest.mark.parametrize(
    "cls, data",
    [
        (StormBase, b"\xff\xfe"),
        (StormBase, b"not json"),
        (StormBase, b"[]"),
        (StormBase, b'{"storm_name": 5, "launch_time_secs": 1}'),
        (StormBase, b'{"storm_name": "w"}'),
        (StormBase, b'{"storm_name": "w", "launch_time_secs": true}'),
        (StormBase, b'{"storm_name": "w", "launch_time_secs": 99999999999999999999}'),
        (
            Assignment,
            b'{"master_code_dir": "d", "node_host": {}, "task_node_port": '
            b'{"x": ["n", 1]}, "task_start_time_secs": {}}',
        ),
        (
            Assignment,
            b'{"master_code_dir": "d", "node_host": {}, "task_node_port": '
            b'{"1": ["n"]}, "task_start_time_secs": {}}',
        ),
        (TaskInfo, b'{"component_id": "c", "component_type": "sink"}'),
        (
            SupervisorInfo,
            b'{"time_secs": 1, "hostname": "h", "worker_ports": "6700", "uptime_secs": 1}',
        ),
        (TaskHeartbeat, b'{"time_secs": 1, "uptime_secs": 1, "stats": {"type": "pump"}}'),
        (
            TaskHeartbeat,
            b'{"time_secs": 1, "uptime_secs": 1, "stats": {"type": "spout", '
            b'"acked": {"600": {"default": NaN}}}}',
        ),
        (
            TaskHeartbeat,
            b'{"time_secs": 1, "uptime_secs": 1, "stats": {"type": "spout", '
            b'"acked": {"600": {"default": false}}}}',
        ),
        (
            TaskHeartbeat,
            b'{"time_secs": 1, "uptime_secs": 1, "stats": {"type": "bolt", '
            b'"acked": {"600": {"default": 3}}}}',
        ),
        (TaskHeartbeat, b"[" * 100_000),
    ],
)
def test_data_that_does_not_fit_is_unreadable_naming_its_path(cls, data):
    with pytest.raises(UnreadableNodeError) as raised:
        decode(cls, data, "/some/path")
    assert raised.value.path == "/some/path"
    assert "/some/path" in str(raised.value)
    assert isinstance(raised.value, ValueError)


def test_a_missing_node_reads_as_none():
    assert decode(StormBase, None, "/storms/x") is None


def test_stats_checks_say_what_is_wrong():
    with pytest.raises(ValueError, match=r"stats\.acked\.600\.word-spout\.default"):
        records.check_stats({"type": "bolt", "acked": {"600": {"word-spout": {"default": "many"}}}})


def test_error_names_order_bare_names_first_then_by_sequence():
    names = [
        "1700000005-0000000002",
        "1700000001",
        "1700000009-0000000001",
        "junk",
        "1700000000",
        "1700000003-0000000010",
    ]
    assert ordered_error_names(names) == [
        "1700000000",
        "1700000001",
        "1700000009-0000000001",
        "1700000005-0000000002",
        "1700000003-0000000010",
    ]
    assert parse_error_name("1700000005-0000000002") == (1700000005, 2)
    assert parse_error_name("1700000001") == (1700000001, None)
    assert parse_error_name("abc") is None


def test_an_error_carries_its_node_sequence_number_outside_comparisons():
    from clusterstate.records import TaskError, decode_error

    numbered = decode_error("1700000000-0000000042", b"boom", "/e/1700000000-0000000042")
    assert numbered.seq == 42 and numbered.time_secs == 1700000000
    bare = decode_error("1700000000", b"boom", "/e/1700000000")
    assert bare.seq is None
    # the same text at the same time is the same error, however it was named
    assert numbered == bare == TaskError("boom", 1700000000)
