"""The event a provider is told about: Flux's ``eventv1.Event``, as the notification-controller
hands it to its notifiers (metadata keys already without their API-group prefix).

``to_wire`` gives the JSON object in the field order Go's encoder writes it (the generic
providers post exactly this); ``event_key`` is the identity Flux rate-limits duplicates by.
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Severity = Literal["info", "error", "trace"]

METADATA_REVISION = "revision"
METADATA_ORIGIN_REVISION = "originRevision"
METADATA_TOKEN = "token"
METADATA_SUMMARY = "summary"
PROGRESSING = "Progressing"
"""Flux's ``meta.ProgressingReason``: commit-status and PagerDuty providers skip these."""


@dataclass(frozen=True)
class InvolvedObject:
    """A Kubernetes ``ObjectReference``: what the event is about."""

    kind: str
    name: str
    namespace: str = ""
    uid: str = ""
    api_version: str = ""
    resource_version: str = ""

    def to_wire(self) -> dict[str, str]:
        """Go's ``corev1.ObjectReference`` order; every field is ``omitempty``."""
        pairs = [
            ("kind", self.kind),
            ("namespace", self.namespace),
            ("name", self.name),
            ("uid", self.uid),
            ("apiVersion", self.api_version),
            ("resourceVersion", self.resource_version),
        ]
        return {key: value for key, value in pairs if value}


@dataclass(frozen=True)
class Event:
    involved_object: InvolvedObject
    severity: Severity
    timestamp: datetime.datetime
    message: str
    reason: str
    reporting_controller: str
    metadata: Mapping[str, str] = field(default_factory=dict)
    reporting_instance: str = ""

    def __post_init__(self) -> None:
        if self.timestamp.tzinfo is None:
            raise ValueError("Event.timestamp must be timezone-aware")

    @property
    def object_name(self) -> str:
        """``kustomization/apps.flux-system``: how Flux's chat providers name the object."""
        obj = self.involved_object
        return f"{obj.kind.lower()}/{obj.name}.{obj.namespace}"

    @property
    def revision(self) -> str | None:
        """Flux's ``GetRevision``: the origin revision first, then the revision."""
        return self.metadata.get(METADATA_ORIGIN_REVISION) or self.metadata.get(METADATA_REVISION)

    @property
    def time_rfc3339(self) -> str:
        """``metav1.Time``'s JSON form: UTC, whole seconds, ``Z``."""
        utc = self.timestamp.astimezone(datetime.UTC).replace(microsecond=0)
        return utc.strftime("%Y-%m-%dT%H:%M:%SZ")

    def to_wire(self) -> dict[str, Any]:
        """The event as JSON, fields in ``eventv1.Event``'s order, map keys sorted as Go does."""
        wire: dict[str, Any] = {
            "involvedObject": self.involved_object.to_wire(),
            "severity": self.severity,
            "timestamp": self.time_rfc3339,
            "message": self.message,
            "reason": self.reason,
        }
        if self.metadata:
            wire["metadata"] = dict(sorted(self.metadata.items()))
        wire["reportingController"] = self.reporting_controller
        if self.reporting_instance:
            wire["reportingInstance"] = self.reporting_instance
        return wire


def event_key(event: Event) -> str:
    """What makes two events the same one, as notification-controller's ``EventKey``:
    the object, the message and the revision/origin revision/token metadata (sha256 hex)."""
    obj = event.involved_object
    parts = [
        "event",
        f"name={obj.name}",
        f"namespace={obj.namespace}",
        f"kind={obj.kind}",
        f"message={event.message}",
    ]
    for key in (METADATA_ORIGIN_REVISION, METADATA_REVISION, METADATA_TOKEN):
        if key in event.metadata:
            parts.append(f"{key}={event.metadata[key]}")
    return hashlib.sha256("/".join(parts).encode()).hexdigest()
