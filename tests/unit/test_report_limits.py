"""The report schema against hostile values: lengths, control characters, timestamps."""

from __future__ import annotations

import datetime
from typing import Any

import pydantic
import pytest

from fleet import report as report_schema
from fleet.report import ClusterReport


def _wire(**changes: Any) -> dict[str, Any]:
    wire: dict[str, Any] = {
        "cluster": "dev",
        "reportedAt": datetime.datetime.now(datetime.UTC).isoformat(),
        "source": {"url": "https://git.example.com/f.git", "ref": "main"},
        "units": [{"namespace": "apps", "name": "web", "message": "ok"}],
    }
    wire.update(changes)
    return wire


@pytest.mark.parametrize(
    "stamp",
    ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59", "1969-12-31T23:59:59Z"],
)
def test_timestamps_that_overflow_or_precede_the_epoch_are_invalid(stamp: str) -> None:
    with pytest.raises(pydantic.ValidationError, match="reportedAt"):
        ClusterReport.model_validate(_wire(reportedAt=stamp))


def test_a_timestamp_a_day_ahead_is_refused_but_an_hour_is_clock_skew() -> None:
    now = datetime.datetime.now(datetime.UTC)
    ClusterReport.model_validate(_wire(reportedAt=(now + datetime.timedelta(hours=1)).isoformat()))
    with pytest.raises(pydantic.ValidationError, match="ahead"):
        ClusterReport.model_validate(
            _wire(reportedAt=(now + datetime.timedelta(days=2)).isoformat())
        )


def test_control_characters_are_refused_in_names_and_replaced_in_messages() -> None:
    with pytest.raises(pydantic.ValidationError, match="control characters"):
        ClusterReport.model_validate(_wire(agentVersion="1\x1b[2J"))
    parsed = ClusterReport.model_validate(
        _wire(units=[{"namespace": "apps", "name": "web", "message": "a\x1b[31mb\nc"}])
    )
    assert parsed.units[0].message == "a\ufffd[31mb\nc"


def test_every_string_has_a_limit() -> None:
    with pytest.raises(pydantic.ValidationError, match="limit is 64"):
        ClusterReport.model_validate(_wire(agentVersion="v" * 65))
    with pytest.raises(pydantic.ValidationError, match="limit is 256"):
        ClusterReport.model_validate(
            _wire(units=[{"namespace": "apps", "name": "web", "reason": "R" * 257}])
        )


def test_the_summary_message_is_clipped() -> None:
    long = "m" * 1000
    parsed = ClusterReport.model_validate(
        _wire(
            source={"url": "u", "ref": "main", "revision": "main@sha1:" + "a" * 40, "ready": True},
            units=[{"namespace": "apps", "name": "web", "ready": "False", "message": long}],
        )
    )
    message = report_schema.health_message(parsed)
    assert len(message) == report_schema.MAX_SUMMARY_MESSAGE_LENGTH
    assert message.startswith("apps/web: mmm") and message.endswith("...")
