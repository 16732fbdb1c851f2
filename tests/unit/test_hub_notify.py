"""Which alerts a report produces, which target takes them, dedupe and rate limit. Plain data."""

from __future__ import annotations

import datetime

import pytest

from fleet.report import ClusterReport, Event, SourceReport, UnitReport
from hub.config import NotificationTarget
from hub.notify import Alert, NotificationGate, Verdict, alerts_from_report, matches, slack_payload
from hub.notify.delivery import generic_payload

NOW = datetime.datetime(2026, 5, 1, 12, 0, tzinfo=datetime.UTC)


def alert(reason: str = "ReconcileFailed", message: str = "boom", **fields: object) -> Alert:
    values: dict[str, object] = {
        "cluster": "prod-eu",
        "reason": reason,
        "severity": "error",
        "message": message,
        "time": NOW.timestamp(),
        "unit": "flux-system/apps",
        "labels": {"env": "prod"},
    }
    values.update(fields)
    return Alert(**values)  # type: ignore[arg-type]


def target(**fields: object) -> NotificationTarget:
    return NotificationTarget.model_validate(
        {"name": "t", "type": "slack", "url": "http://x", **fields}
    )


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({}, True),
        ({"severity": "warning"}, True),
        ({"severity": "error"}, True),
        ({"clusters": ["prod-*"]}, True),
        ({"clusters": ["dev-*", "staging"]}, False),
        ({"labels": {"env": "prod"}}, True),
        ({"labels": {"env": "dev"}}, False),
        ({"labels": {"wave": "canary"}}, False),
        ({"reasons": ["ReconcileFailed"]}, True),
        ({"reasons": ["DriftCorrected"]}, False),
        ({"excludeReasons": ["ReconcileFailed"]}, False),
    ],
)
def test_target_filters(filters: dict[str, object], expected: bool) -> None:
    assert matches(target(**filters), alert()) is expected


def test_severity_floor() -> None:
    info = alert(severity="info")

    assert matches(target(severity="info"), info)
    assert not matches(target(severity="warning"), info)


def test_gate_drops_the_same_alert_within_the_dedupe_window() -> None:
    gate = NotificationGate(dedupe_seconds=600, rate_count=10, rate_seconds=600)
    t = NOW.timestamp()

    assert gate.admit(alert(), t) == (Verdict.SEND, 0)
    assert gate.admit(alert(), t + 60) == (Verdict.DUPLICATE, 0)
    assert gate.admit(alert(message="other"), t + 60) == (Verdict.SEND, 0)
    assert gate.admit(alert(), t + 601) == (Verdict.SEND, 0)


def test_gate_rate_limits_a_flapping_unit_and_reports_what_it_held_back() -> None:
    gate = NotificationGate(dedupe_seconds=1, rate_count=2, rate_seconds=600)
    t = NOW.timestamp()
    verdicts = [gate.admit(alert(message=f"attempt {n}"), t + n)[0] for n in range(6)]

    assert verdicts == [Verdict.SEND, Verdict.SEND] + [Verdict.RATE_LIMITED] * 4
    assert gate.admit(alert(unit="flux-system/infra"), t + 7)[0] is Verdict.SEND, "per unit"
    assert gate.admit(alert(reason="ReconcileRecovered"), t + 7)[0] is Verdict.SEND, "per reason"
    assert gate.admit(alert(message="later"), t + 601) == (Verdict.SEND, 4)


def report(units: list[UnitReport], events: list[Event] | None = None) -> ClusterReport:
    return ClusterReport(
        cluster="prod-eu",
        reported_at=NOW,
        source=SourceReport(url="u", ref="main", revision="main@sha1:" + "a" * 40, ready=True),
        units=units,
        events=events or [],
    )


def unit(ready: str, message: str = "") -> UnitReport:
    return UnitReport.model_validate(
        {"namespace": "flux-system", "name": "apps", "ready": ready, "message": message}
    )


def test_alerts_from_unit_transitions() -> None:
    ready, failing = report([unit("True")]), report([unit("False", "apply failed")])

    failed = alerts_from_report(failing, ready, [], {}, was_stale=False, now=NOW.timestamp())
    recovered = alerts_from_report(ready, failing, [], {}, was_stale=False, now=NOW.timestamp())
    still_failing = alerts_from_report(failing, failing, [], {}, was_stale=False, now=0)

    assert [(a.reason, a.severity, a.message) for a in failed] == [
        ("ReconcileFailed", "error", "apply failed")
    ]
    assert [(a.reason, a.severity) for a in recovered] == [("ReconcileRecovered", "info")]
    assert still_failing == []


def test_failure_event_is_not_doubled_by_the_transition() -> None:
    failure = Event(
        time=NOW, type="Warning", reason="ReconcileFailed", unit="flux-system/apps", message="x"
    )
    drift = Event(time=NOW, type="Normal", reason="DriftCorrected", unit="flux-system/apps")
    failing = report([unit("False", "x")], [failure, drift])

    alerts = alerts_from_report(
        failing, report([unit("True")]), [failure, drift], {"env": "prod"}, was_stale=True, now=1.0
    )

    assert [(a.reason, a.severity) for a in alerts] == [
        ("ClusterRecovered", "info"),
        ("ReconcileFailed", "error"),
        ("DriftCorrected", "warning"),
    ]
    assert all(a.labels == {"env": "prod"} for a in alerts)


def test_payload_formats() -> None:
    slack = slack_payload(alert(object="apps/v1/Deployment/a/web"), held_back=3)
    generic = generic_payload(alert())

    assert slack["text"] == ":rotating_light: ReconcileFailed on prod-eu/flux-system/apps: boom"
    attachment = slack["attachments"][0]
    assert "3 similar notifications held back" in attachment["text"]
    assert {"title": "Object", "value": "apps/v1/Deployment/a/web", "short": False} in attachment[
        "fields"
    ]
    assert generic["kind"] == "Alert" and generic["time"] == "2026-05-01T12:00:00+00:00"
    assert generic["heldBack"] == 0
