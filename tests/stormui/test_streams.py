"""Per-stream stats (``stormui.cluster.output_stream_stats`` / ``input_stream_stats``).

Pure functions over heartbeats' stats maps: each test gives the maps and the sums
worked out by hand.
"""

from __future__ import annotations

import math

import pytest

from stormui.cluster import (
    InputStreamStats,
    OutputStreamStats,
    input_stream_stats,
    is_system_stream,
    output_stream_stats,
)


def spout(window="600", **maps):
    return {"type": "spout", **{k: {window: v} for k, v in maps.items()}}


def bolt(window="600", **maps):
    return {"type": "bolt", **{k: {window: v} for k, v in maps.items()}}


def test_spout_output_summed_per_stream_latency_weighted_by_acked():
    a = spout(
        emitted={"default": 10, "__ack_init": 3},
        transferred={"default": 9, "__ack_init": 3},
        acked={"default": 4, "side": 1},
        failed={"default": 1},
        complete_latencies={"default": 10.0, "side": 2.0},
    )
    b = spout(
        emitted={"default": 20},
        transferred={"default": 20},
        acked={"default": 12},
        failed={"default": 2},
        complete_latencies={"default": 30.0},
    )
    rows = output_stream_stats([a, b], "600")
    assert rows == [
        OutputStreamStats("__ack_init", emitted=3, transferred=3),
        OutputStreamStats(
            "default",
            emitted=30,
            transferred=29,
            acked=16,
            failed=3,
            latency_ms=(10.0 * 4 + 30.0 * 12) / 16,  # 25.0, not the plain mean 20.0
        ),
        OutputStreamStats("side", acked=1, latency_ms=2.0),
    ]
    assert [r.system for r in rows] == [True, False, False]


def test_bolt_output_has_no_acks_and_input_is_per_component_and_stream():
    a = bolt(
        emitted={"default": 5},
        transferred={"default": 4},
        acked={"words": {"default": 10, "__tick": 2}, "other": {"s": 1}},
        failed={"words": {"default": 1}},
        process_latencies={"words": {"default": 2.0, "__tick": 0.5}, "other": {"s": 7.0}},
    )
    b = bolt(
        emitted={"default": 7},
        transferred={"default": 7},
        acked={"words": {"default": 30}},
        failed={"words": {"default": 3}},
        process_latencies={"words": {"default": 6.0}},
    )
    assert output_stream_stats([a, b], "600") == [
        OutputStreamStats("default", emitted=12, transferred=11)
    ]
    rows = input_stream_stats([a, b], "600")
    assert rows == [
        InputStreamStats("other", "s", acked=1, latency_ms=7.0),
        InputStreamStats("words", "__tick", acked=2, latency_ms=0.5),
        InputStreamStats("words", "default", acked=40, failed=4, latency_ms=(20 + 180) / 40),
    ]
    assert [r.system for r in rows] == [False, True, False]
    assert is_system_stream("__system") and not is_system_stream("_one")


def test_only_the_asked_window_counts_and_a_missing_one_adds_nothing():
    stats = {
        "type": "spout",
        "emitted": {"600": {"default": 1}, "all-time": {"default": 100}},
        "acked": {"all-time": {"default": 50}},
    }
    assert output_stream_stats([stats], "all-time") == [
        OutputStreamStats("default", emitted=100, acked=50)
    ]
    assert output_stream_stats([stats], "600") == [OutputStreamStats("default", emitted=1)]
    assert output_stream_stats([stats], "86400") == []
    assert output_stream_stats([None, {}, {"type": "spout"}], "600") == []
    assert input_stream_stats([stats], "all-time") == []  # a spout has no input


@pytest.mark.parametrize("bad", [-1, 2.5, math.nan, math.inf, "3", None, True, [1]])
def test_a_count_that_is_no_count_is_marked_and_left_out(bad):
    rows = output_stream_stats(
        [
            spout(emitted={"default": bad, "ok": 2}),
            spout(emitted={"default": 5}),
        ],
        "600",
    )
    assert rows == [
        OutputStreamStats("default", emitted=5, unreadable=True),
        OutputStreamStats("ok", emitted=2),
    ]
    rows = input_stream_stats([bolt(acked={"c": {"s": bad}}), bolt(acked={"c": {"s": 4}})], "600")
    assert rows == [InputStreamStats("c", "s", acked=4, unreadable=True)]


def test_integral_floats_count_and_bad_latencies_are_marked():
    rows = output_stream_stats(
        [spout(emitted={"s": 3.0}, acked={"s": 2}, complete_latencies={"s": -1.0})], "600"
    )
    assert rows == [OutputStreamStats("s", emitted=3, acked=2, unreadable=True)]
    # a latency with nothing acked weighs nothing: no latency, nothing wrong
    rows = input_stream_stats([bolt(process_latencies={"c": {"s": 5.0}})], "600")
    assert rows == [InputStreamStats("c", "s")]


def test_malformed_maps_never_raise():
    odd = [
        {"type": "bolt", "acked": {"600": {"c": 5}}},  # not keyed by stream
        {"type": "bolt", "acked": {"600": [1, 2]}},
        {"type": "bolt", "acked": "x", "emitted": {"600": None}},
        {"type": "spout", "complete_latencies": {"600": {"s": "slow"}}, "acked": {"600": {"s": 1}}},
        {"type": "bolt", "process_latencies": {"600": {"c": 3}}},
        "not a map",
    ]
    assert input_stream_stats(odd, "600") == [InputStreamStats("c", "", unreadable=True)]
    assert output_stream_stats(odd, "600") == [OutputStreamStats("s", acked=1, unreadable=True)]


def test_stream_ids_that_are_not_strings_are_named():
    # JSON keys are strings; a store built in memory may hold others
    rows = output_stream_stats([spout(emitted={1: 2})], "600")
    assert rows == [OutputStreamStats("1", emitted=2)]
