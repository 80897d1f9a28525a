"""The forms requests are read through: the error feed's filter and the confirmation form."""

from __future__ import annotations

import pytest
from django.http import QueryDict

from stormui.forms import (
    ERRORS_DEFAULT_LIMIT,
    BadErrorFilter,
    ConfirmForm,
    ErrorFilter,
    parse_error_filter,
)


def query(text: str) -> QueryDict:
    return QueryDict(text)


# -- the error filter: the page and its socket ----------------------------------------------------


def test_page_filter_reads_storm_component_and_q_trimmed():
    parsed = parse_error_filter(query("storm=+healthy-1-1+&component=sink&q=%20timeout%20"))
    assert parsed == ErrorFilter(storm="healthy-1-1", component="sink", text="timeout")
    assert parsed.fields() == {"storm": "healthy-1-1", "component": "sink", "q": "timeout"}


def test_page_filter_of_nothing_selects_everything():
    for text in ("", "storm=&component=%20&q=", "since=5&limit=1&text=x&other=1"):
        parsed = parse_error_filter(query(text))
        assert parsed == ErrorFilter()
        assert parsed.fields() == {"storm": "", "component": "", "q": ""}


def test_page_filter_refuses_nothing():
    # an id that could not name a storm simply names none
    parsed = parse_error_filter(query("storm=..&component=a%2Fb&q=%00%3Cscript%3E"))
    assert parsed == ErrorFilter(storm="..", component="a/b", text="\x00<script>")


def test_page_filter_takes_a_plain_mapping_as_the_socket_passes_it():
    assert parse_error_filter({"storm": "s-1-1", "q": " x "}) == ErrorFilter(
        storm="s-1-1", text="x"
    )


# -- the error filter: the API ---------------------------------------------------------------------


def test_api_filter_reads_storms_feed_parameters():
    parsed = parse_error_filter(
        query("storm=healthy-1-1&component=sink&since=17&limit=2&text=%20Timeout"), api=True
    )
    assert parsed == ErrorFilter(
        storm="healthy-1-1", component="sink", text=" Timeout", since=17, limit=2
    )


def test_api_filter_defaults():
    assert parse_error_filter(query(""), api=True) == ErrorFilter(limit=ERRORS_DEFAULT_LIMIT)
    assert parse_error_filter(query("q=x&since=&limit="), api=True) == ErrorFilter(
        limit=ERRORS_DEFAULT_LIMIT
    )
    assert parse_error_filter(query("limit=1000&since=0"), api=True) == ErrorFilter(
        since=0, limit=1000
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("storm=..", "storm is not a valid id"),
        ("storm=a%2Fb", "storm is not a valid id"),
        ("component=.", "component is not a valid id"),
        ("since=abc", "since must be a non-negative integer"),
        ("since=-5", "since must be a non-negative integer"),
        ("since=%EF%BC%95", "since must be a non-negative integer"),  # a full-width digit
        ("since=1234567890123456789", "since must be a non-negative integer"),
        ("limit=0", "limit must be at least 1 and 1000"),
        ("limit=1001", "limit must be at least 1 and 1000"),
        ("limit=x", "limit must be a non-negative integer"),
    ],
)
def test_api_filter_refuses_bad_input_saying_why(text, message):
    with pytest.raises(BadErrorFilter) as refused:
        parse_error_filter(query(text), api=True)
    assert str(refused.value) == message
    assert isinstance(refused.value, ValueError)


# -- the confirmation form ------------------------------------------------------------------------


def test_confirm_form_takes_the_name_or_the_id():
    for typed in ("healthy", "healthy-1-1"):
        form = ConfirmForm({"confirm": typed}, storm_name="healthy", storm_id="healthy-1-1")
        assert form.is_valid()
    for typed in ("", "Healthy", "healthyx"):
        form = ConfirmForm({"confirm": typed}, storm_name="healthy", storm_id="healthy-1-1")
        assert not form.is_valid()
