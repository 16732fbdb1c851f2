"""A hub alert as the Flux event the provider library speaks (``fleet.notify.Event``).

The involved object is the unit (``Kustomization``/``HelmRelease`` ``namespace/name``), the
wave (kind ``Wave``) or the cluster (kind ``Cluster``); its uid is derived from those names,
so PagerDuty's dedup key and the commit-status context stay the same across hub restarts.
Flux has two severities: the hub's ``warning`` is sent as ``error`` (as Kubernetes Warning
events are in Flux) with ``fleetSeverity: warning`` in the metadata.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Mapping

from fleet.notify import Event, InvolvedObject, Severity
from fleet.notify.event import METADATA_REVISION, METADATA_SUMMARY
from hub.notify.alerts import Alert

REPORTING_CONTROLLER = "fleet-hub"
WAVE_KIND = "Wave"
CLUSTER_KIND = "Cluster"
API_VERSIONS = {
    "Kustomization": "kustomize.toolkit.fluxcd.io/v1",
    "HelmRelease": "helm.toolkit.fluxcd.io/v2",
    WAVE_KIND: "fleet.dev/v1alpha1",
    CLUSTER_KIND: "fleet.dev/v1alpha1",
}
WAVE_PREFIX = "wave/"
"""Promotion alerts carry ``wave/<name>`` as their cluster."""


def involved_object(alert: Alert) -> InvolvedObject:
    if alert.unit:
        namespace, _, name = alert.unit.rpartition("/")
        kind = alert.kind or "Kustomization"
    elif alert.kind == WAVE_KIND or alert.cluster.startswith(WAVE_PREFIX):
        kind, namespace, name = WAVE_KIND, "", alert.cluster.removeprefix(WAVE_PREFIX)
    else:
        kind, namespace, name = CLUSTER_KIND, "", alert.cluster
    uid = uuid.uuid5(uuid.NAMESPACE_URL, f"fleet:{alert.cluster}/{kind}/{namespace}/{name}")
    return InvolvedObject(
        kind=kind,
        name=name,
        namespace=namespace,
        uid=str(uid),
        api_version=API_VERSIONS.get(kind, ""),
    )


def event_of(
    alert: Alert,
    *,
    held_back: int = 0,
    summary: str = "",
    extra_metadata: Mapping[str, str] | None = None,
) -> Event:
    """``extra_metadata`` and ``summary`` are the target's ``eventMetadata``/``summary``,
    as an Alert object's."""
    obj = involved_object(alert)
    metadata: dict[str, str] = dict(extra_metadata or {})
    if obj.kind == WAVE_KIND:
        metadata["wave"] = obj.name
    else:
        metadata["cluster"] = alert.cluster
    if alert.revision:
        metadata[METADATA_REVISION] = alert.revision
    if alert.object:
        metadata["object"] = alert.object
    if alert.labels:
        metadata["labels"] = ",".join(f"{k}={v}" for k, v in sorted(alert.labels.items()))
    if alert.severity == "warning":
        metadata["fleetSeverity"] = "warning"
    if summary:
        metadata[METADATA_SUMMARY] = summary
    message = alert.message
    if held_back:
        message += f" ({held_back} similar notifications held back by the rate limit)"
    severity: Severity = "info" if alert.severity == "info" else "error"
    return Event(
        involved_object=obj,
        severity=severity,
        timestamp=datetime.datetime.fromtimestamp(alert.time, datetime.UTC),
        message=message,
        reason=alert.reason,
        reporting_controller=REPORTING_CONTROLLER,
        metadata=metadata,
    )
