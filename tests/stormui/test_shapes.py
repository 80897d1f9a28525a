from stormui.shapes import format_duration, format_time


def test_format_time_in_utc():
    assert format_time(0) == "1970-01-01 00:00:00 UTC"
    assert format_time(1_700_000_000) == "2023-11-14 22:13:20 UTC"
    assert format_time(None) is None


def test_a_time_no_date_can_hold_is_still_shown():
    # error node names and heartbeats can carry any number: a page must not fail on one
    assert format_time(10**15) == "1000000000000000 (epoch seconds)"
    assert format_time(-(10**15)) == "-1000000000000000 (epoch seconds)"


def test_format_duration_as_storm_does():
    assert format_duration(365) == "6m 5s"
    assert format_duration(86400 + 180) == "1d 0h 3m 0s"
