"""What deserves a notification, derived from reports and staleness. Pure code.

- every new event of a report: ``ReconcileFailed`` and other ``*Failed`` warnings are
  errors, other warnings (``DriftCorrected``) warnings, normal events info;
- a unit that turns Ready=False without a failure event in the same report:
  ``ReconcileFailed``; a unit that turns from False to True: ``ReconcileRecovered``;
- a cluster that stops reporting: ``ClusterStale``; one that reports again after that:
  ``ClusterRecovered``.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass, field

from fleet import report as report_schema
from fleet.report import ClusterReport, Event
from hub.config import Severity

RECONCILE_RECOVERED = "ReconcileRecovered"
CLUSTER_STALE = "ClusterStale"
CLUSTER_RECOVERED = "ClusterRecovered"


@dataclass(frozen=True)
class Alert:
    cluster: str
    reason: str
    severity: Severity
    message: str
    time: float
    unit: str = ""
    object: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    kind: str = ""
    """What ``unit`` is (``Kustomization``, ``HelmRelease``), or ``Wave`` for promotion
    alerts; empty for a cluster as a whole."""
    revision: str = ""
    """The commit concerned, when known: what commit-status providers mark."""


def severity_of(event: Event) -> Severity:
    if event.type == "Warning":
        return "error" if event.reason.endswith("Failed") else "warning"
    return "warning" if event.reason == report_schema.DRIFT_CORRECTED else "info"


def alerts_from_report(
    report: ClusterReport,
    previous: ClusterReport | None,
    new_events: Sequence[Event],
    labels: dict[str, str],
    *,
    was_stale: bool,
    now: float,
) -> list[Alert]:
    """Alerts for one ingested report, given the report stored before it."""
    alerts: list[Alert] = []
    kinds = {unit.key: unit.kind for unit in report.units}
    revisions = {
        unit.key: unit.last_attempted_revision or unit.last_applied_revision or ""
        for unit in report.units
    }
    if was_stale:
        alerts.append(
            Alert(report.cluster, CLUSTER_RECOVERED, "info", "reporting again", now, labels=labels)
        )
    for event in new_events:
        alerts.append(
            Alert(
                report.cluster,
                event.reason,
                severity_of(event),
                event.message,
                event.time.timestamp(),
                unit=event.unit,
                object=event.object,
                labels=labels,
                kind=kinds.get(event.unit, "Kustomization") if event.unit else "",
                revision=revisions.get(event.unit, ""),
            )
        )
    failures_reported = {
        event.unit for event in new_events if event.reason == report_schema.RECONCILE_FAILED
    }
    before = {unit.key: unit for unit in previous.units} if previous else {}
    for unit in report.units:
        old = before.get(unit.key)
        was = old.ready if old else "Unknown"
        if unit.ready == "False" and was != "False" and unit.key not in failures_reported:
            alerts.append(
                Alert(
                    report.cluster,
                    report_schema.RECONCILE_FAILED,
                    "error",
                    unit.message or unit.reason,
                    now,
                    unit=unit.key,
                    labels=labels,
                    kind=unit.kind,
                    revision=unit.last_attempted_revision or "",
                )
            )
        elif unit.ready == "True" and was == "False":
            revision = unit.last_applied_revision or ""
            alerts.append(
                Alert(
                    report.cluster,
                    RECONCILE_RECOVERED,
                    "info",
                    f"Ready again at {revision}" if revision else "Ready again",
                    now,
                    unit=unit.key,
                    labels=labels,
                    kind=unit.kind,
                    revision=revision,
                )
            )
    return alerts


def stale_alert(cluster: str, labels: dict[str, str], last_seen: float | None, now: float) -> Alert:
    if last_seen is None:
        message = "has never reported"
    else:
        silent = datetime.timedelta(seconds=round(now - last_seen))
        message = f"no report for {silent}"
    return Alert(cluster, CLUSTER_STALE, "error", message, now, labels=labels)
