"""The ClusterReport schema: health, digest, limits, redaction. Plain data only."""

from __future__ import annotations

import datetime

import pydantic
import pytest

from fleet import report as schema
from fleet.report import ClusterReport, Event, SourceReport, UnitReport

NOW = datetime.datetime(2026, 5, 1, 12, 0, tzinfo=datetime.UTC)
REVISION = "main@sha1:" + "a" * 40
MINUTE = datetime.timedelta(minutes=1)


def unit(name: str = "apps", ready: str = "True", **fields: object) -> UnitReport:
    return UnitReport.model_validate(
        {"namespace": "flux-system", "name": name, "ready": ready, **fields}
    )


def make(
    units: list[UnitReport] | None = None,
    *,
    source_ready: bool = True,
    revision: str | None = REVISION,
    reported_at: datetime.datetime = NOW,
    events: list[Event] | None = None,
) -> ClusterReport:
    return ClusterReport(
        cluster="dev",
        reported_at=reported_at,
        source=SourceReport(
            url="https://g/x.git", ref="main", revision=revision, ready=source_ready
        ),
        units=units if units is not None else [unit()],
        events=events or [],
    )


@pytest.mark.parametrize(
    ("report", "expected"),
    [
        (make(), "Ready"),
        (make([unit(), unit("infra", "False")]), "Degraded"),
        (make([unit(), unit("infra", "Unknown")]), "Unknown"),
        (make(source_ready=False), "Degraded"),
        (make(revision=None, source_ready=False), "Unknown"),
        (make([unit(suspended=True), unit("infra", "False", suspended=True)]), "Suspended"),
        (make([unit(), unit("infra", "False", suspended=True)]), "Ready"),
        (make([]), "Ready"),
    ],
)
def test_cluster_health_from_units_and_source(report: ClusterReport, expected: str) -> None:
    assert schema.cluster_health(report, NOW, 3 * MINUTE) == expected


def test_cluster_health_is_stale_after_the_window_and_unknown_without_a_report() -> None:
    report = make([unit("infra", "False")])

    assert schema.cluster_health(report, NOW + 2 * MINUTE, 3 * MINUTE) == "Degraded"
    assert schema.cluster_health(report, NOW + 4 * MINUTE, 3 * MINUTE) == "Stale"
    assert schema.cluster_health(report, NOW + 4 * MINUTE, None) == "Degraded"
    assert schema.cluster_health(None, NOW, 3 * MINUTE) == "Unknown"


def test_cluster_health_judges_staleness_by_when_the_hub_heard_it() -> None:
    skewed = make(reported_at=NOW - datetime.timedelta(hours=2))  # the agent's clock is off

    assert schema.cluster_health(skewed, NOW, 3 * MINUTE, last_seen=NOW - MINUTE) == "Ready"


def test_content_digest_ignores_volatile_fields_only() -> None:
    base = make([unit(last_reconcile_at=NOW, last_reconcile_seconds=1.5)])
    heartbeat = make(
        [unit(last_reconcile_at=NOW + MINUTE, last_reconcile_seconds=0.2)],
        reported_at=NOW + MINUTE,
    )
    heartbeat.source.last_fetched_at = NOW + MINUTE
    changed = make([unit(ready="False", message="boom")])
    with_event = make(events=[Event(time=NOW, reason="DriftCorrected", message="replicas")])

    assert schema.content_digest(base) == schema.content_digest(heartbeat)
    assert schema.content_digest(base) != schema.content_digest(changed)
    assert schema.content_digest(base) != schema.content_digest(with_event)


def test_wire_form_is_camel_case_and_round_trips() -> None:
    report = make([unit(last_applied_revision=REVISION, inventory_size=4, depends_on=["infra"])])

    wire = report.wire()

    assert wire["apiVersion"] == "fleet.dev/v1alpha1" and wire["kind"] == "ClusterReport"
    assert wire["units"][0]["lastAppliedRevision"] == REVISION
    assert wire["units"][0]["dependsOn"] == ["infra"]
    assert wire["heartbeatSeconds"] == 30
    assert ClusterReport.model_validate(wire) == report


def test_source_url_password_is_redacted_on_the_way_in() -> None:
    source = SourceReport(url="https://bot:hunter22@git.example.com/f.git", ref="main")

    assert source.url == "https://bot:***@git.example.com/f.git"
    assert (
        SourceReport(url="git@git.example.com:f.git", ref="main").url == "git@git.example.com:f.git"
    )


def test_limits_are_enforced_with_messages_that_say_the_limit() -> None:
    events = [Event(time=NOW, reason="X", message=str(n)) for n in range(schema.MAX_EVENTS + 1)]
    units = [unit(f"u{n}") for n in range(schema.MAX_UNITS + 1)]

    with pytest.raises(pydantic.ValidationError, match=f"the limit is {schema.MAX_EVENTS}"):
        make(events=events)
    with pytest.raises(pydantic.ValidationError, match=f"the limit is {schema.MAX_UNITS}"):
        make(units)
    with pytest.raises(pydantic.ValidationError, match="the limit is 1024"):
        unit(message="x" * 1025)
    with pytest.raises(pydantic.ValidationError, match="units listed twice: flux-system/apps"):
        make([unit(), unit()])


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("cluster", "Dev_1", "must be a DNS label"),
        ("reportedAt", "2026-05-01T12:00:00", "must carry a timezone"),
        ("labels", {"env": "bad value"}, "not a valid Kubernetes label value"),
    ],
)
def test_invalid_fields_are_named(field: str, value: object, message: str) -> None:
    wire = make().wire()
    wire[field] = value

    with pytest.raises(pydantic.ValidationError, match=message):
        ClusterReport.model_validate(wire)


def test_revision_must_be_in_flux_form() -> None:
    with pytest.raises(pydantic.ValidationError, match="Flux's form"):
        SourceReport(url="u", ref="main", revision="abc")
    assert SourceReport(url="u", ref="v1", revision="sha1:" + "b" * 40).revision


def test_clip_message_and_recent_events_help_an_agent_fit() -> None:
    clipped = schema.clip_message("y" * 5000)
    events = [Event(time=NOW + n * MINUTE, reason="R") for n in range(150)][::-1]

    assert len(clipped) == schema.MAX_MESSAGE_LENGTH and clipped.endswith("...")
    recent = schema.recent_events(events)
    assert len(recent) == schema.MAX_EVENTS
    assert recent[0].time == NOW + 50 * MINUTE and recent[-1].time == NOW + 149 * MINUTE


def test_event_fingerprint_is_stable_and_distinguishes_events() -> None:
    first = Event(time=NOW, reason="DriftCorrected", object="apps/v1/Deployment/a/b")

    assert first.fingerprint() == Event.model_validate(first.wire()).fingerprint()
    assert first.fingerprint() != Event(time=NOW + MINUTE, reason="DriftCorrected").fingerprint()


def test_summarize_counts_units_and_recent_drift() -> None:
    old = Event(time=NOW - datetime.timedelta(days=2), reason="DriftCorrected")
    recent = Event(time=NOW - MINUTE, reason="DriftCorrected")
    report = make([unit(), unit("infra", "False", message="boom")], events=[old, recent])

    summary = schema.summarize(report, "Degraded", NOW)

    assert (summary.units_ready, summary.units_total, summary.drift24h) == (1, 2, 1)
    assert summary.message == "flux-system/infra: boom"
    assert summary.wire()["drift24h"] == 1


def test_short_revision() -> None:
    assert schema.short_revision(REVISION) == "main@sha1:aaaaaaaa"
    assert schema.short_revision("sha1:" + "c" * 40) == "sha1:cccccccc"
    assert schema.short_revision(None) == ""
