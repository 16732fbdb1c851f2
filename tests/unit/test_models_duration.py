from __future__ import annotations

import datetime

import pytest

from fleet.models.duration import DurationError, format_duration, parse_duration

td = datetime.timedelta


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10m", td(minutes=10)),
        ("1h30m", td(hours=1, minutes=30)),
        ("30s", td(seconds=30)),
        ("1.5s", td(seconds=1.5)),
        (".5h", td(minutes=30)),
        ("250ms", td(milliseconds=250)),
        ("1h0m0s", td(hours=1)),
        ("2h45m30.5s", td(hours=2, minutes=45, seconds=30.5)),
        ("100us", td(microseconds=100)),
        ("100µs", td(microseconds=100)),
        ("1500ns", td(microseconds=1)),
        ("0", td(0)),
        ("-1m", td(minutes=-1)),
        ("+5s", td(seconds=5)),
    ],
)
def test_parses_go_durations(text: str, expected: datetime.timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "5 minutes", "10", "1d", "m", "1h 30m", "1.2.3s", "-", "."])
def test_refuses_what_go_refuses(text: str) -> None:
    with pytest.raises(DurationError, match="invalid duration"):
        parse_duration(text)


def test_error_quotes_the_input() -> None:
    with pytest.raises(DurationError) as caught:
        parse_duration("5 minutes")
    assert str(caught.value) == 'invalid duration "5 minutes"'


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (td(hours=1, minutes=30), "1h30m0s"),
        (td(minutes=10), "10m0s"),
        (td(seconds=1.5), "1.5s"),
        (td(milliseconds=250), "250ms"),
        (td(microseconds=5), "5µs"),
        (td(0), "0s"),
        (td(minutes=-1), "-1m0s"),
    ],
)
def test_formats_like_go(value: datetime.timedelta, expected: str) -> None:
    assert format_duration(value) == expected


@pytest.mark.parametrize("text", ["1h30m", "45s", "1.25s", "3h0m7s", "999ms"])
def test_format_round_trips(text: str) -> None:
    assert parse_duration(format_duration(parse_duration(text))) == parse_duration(text)
