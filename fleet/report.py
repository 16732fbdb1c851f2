"""``ClusterReport``: what an agent says about its cluster, read by the hub, the TUI and Git.

One schema for every consumer: the agent builds a report after each change and hands it
to its reporters (hub HTTP, Git status branch); the hub stores and aggregates it; ``fleet
get clusters`` and the TUI print it. Pure code: pydantic and the standard library only.

The wire form is camelCase JSON/YAML (``lastAppliedRevision``), as Kubernetes and Flux
write status. Sizes are bounded (``MAX_UNITS``, ``MAX_EVENTS``, ``MAX_MESSAGE_LENGTH``, a
length for every other string) so one broken or hostile cluster cannot grow the hub's
store or its streams without limit; ``clip_message`` and ``recent_events`` help an agent stay inside
them. A report is untrusted input: control characters are refused in names, versions,
refs and URLs and replaced in messages (see ``fleet.untrusted``); timestamps must lie
between the epoch and a day from now, and must convert to UTC.
"""

from __future__ import annotations

import collections
import datetime
import hashlib
import re
from collections.abc import Iterable, Sequence
from typing import Annotated, Any, Literal

import pydantic
from pydantic.alias_generators import to_camel

from fleet import untrusted
from fleet.redact import redact_url

API_VERSION: Literal["fleet.dev/v1alpha1"] = "fleet.dev/v1alpha1"
KIND: Literal["ClusterReport"] = "ClusterReport"

MAX_UNITS = 500
"""Far more units than one cluster path holds in practice; a bound, not a target."""
MAX_EVENTS = 100
"""Recent events only: the hub keeps the history, the report carries what is new."""
MAX_MESSAGE_LENGTH = 1024
"""Kubernetes' own limit for an event note; longer text is kustomize/helm output noise."""
MAX_LABELS = 32
MAX_NAME_LENGTH = 253
"""A Kubernetes object name (DNS subdomain); namespaces are shorter still."""
MAX_UNIT_KEY_LENGTH = 2 * MAX_NAME_LENGTH + 1
MAX_OBJECT_LENGTH = 1024
"""``group/version/Kind/namespace/name`` of one object."""
MAX_REASON_LENGTH = 256
"""Reasons are CamelCase words (``HealthCheckFailed``), not sentences."""
MAX_VERSION_LENGTH = 64
MAX_URL_LENGTH = 2048
MAX_REF_LENGTH = 512
MAX_REVISION_LENGTH = 512
MAX_DEPENDS_ON = 100
MAX_SUMMARY_MESSAGE_LENGTH = 300
"""The one-line reason in a cluster listing and in each streamed change."""
MAX_FUTURE = datetime.timedelta(days=1)
"""How far ahead of this machine's clock a timestamp may be: clocks drift, dates in the
far future are an attack on time windows (the hub clamps event times to its own clock)."""
DEFAULT_HEARTBEAT_SECONDS = 30

ClusterHealth = Literal["Ready", "Degraded", "Stale", "Unknown", "Suspended"]
HEALTH_VALUES: tuple[ClusterHealth, ...] = ("Ready", "Degraded", "Stale", "Unknown", "Suspended")
ConditionStatus = Literal["True", "False", "Unknown"]
UnitKind = Literal["Kustomization", "HelmRelease"]
EventType = Literal["Normal", "Warning"]

DRIFT_CORRECTED = "DriftCorrected"
RECONCILE_FAILED = "ReconcileFailed"
RECONCILE_SUCCEEDED = "ReconcileSucceeded"

_CLUSTER_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
_REVISION = re.compile(r"^(?:[^@\s]+@)?sha(?:1|256):[0-9a-f]{7,64}$")
_ELLIPSIS = "..."

VOLATILE_FIELDS = (
    "reportedAt",
    "source.lastFetchedAt",
    "units[].lastReconcileAt",
    "units[].lastReconcileSeconds",
)
"""Fields that change on every heartbeat or periodic run without the cluster changing."""


class ReportModel(pydantic.BaseModel):
    """camelCase on the wire; unknown keys ignored so an older hub accepts a newer agent."""

    model_config = pydantic.ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore"
    )

    def wire(self, *, exclude: Any = None) -> dict[str, Any]:
        """The JSON-ready camelCase form sent over HTTP and written to Git."""
        data: dict[str, Any] = self.model_dump(mode="json", by_alias=True, exclude=exclude)
        return data


_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


def _utc(value: datetime.datetime) -> datetime.datetime:
    if value.tzinfo is None:
        raise ValueError("timestamps must carry a timezone (RFC 3339 with Z or an offset)")
    try:
        moment = value.astimezone(datetime.UTC)
    except (OverflowError, ValueError):
        raise ValueError(f"timestamp {value.isoformat()} cannot be converted to UTC") from None
    if moment < _EPOCH:
        raise ValueError(f"timestamp {moment.isoformat()} is before 1970")
    return moment


def _not_far_ahead(moment: datetime.datetime) -> datetime.datetime:
    if moment > utc_now() + MAX_FUTURE:
        raise ValueError(
            f"timestamp {moment.isoformat()} is more than {MAX_FUTURE.days} day ahead of now"
        )
    return moment


Timestamp = Annotated[
    datetime.datetime, pydantic.AfterValidator(_utc), pydantic.AfterValidator(_not_far_ahead)
]
"""A time a cluster reports: in UTC, after 1970, at most ``MAX_FUTURE`` ahead of us."""
HubTimestamp = Annotated[datetime.datetime, pydantic.AfterValidator(_utc)]
"""A time the hub's clock set: not judged against this machine's clock, which may lag."""


def _message_within_limit(value: str) -> str:
    if len(value) > MAX_MESSAGE_LENGTH:
        raise ValueError(
            f"message is {len(value)} characters long; the limit is {MAX_MESSAGE_LENGTH} "
            "(agents clip with fleet.report.clip_message)"
        )
    return untrusted.printable(value, multiline=True)


Message = Annotated[str, pydantic.AfterValidator(_message_within_limit)]
"""Free text (tool output): control characters other than newline and tab are replaced."""


def _identifier(limit: int) -> Any:
    def check(value: str) -> str:
        if len(value) > limit:
            raise ValueError(f"{len(value)} characters long; the limit is {limit}")
        bad = untrusted.control_characters(value)
        if bad:
            raise ValueError(f"control characters are not allowed here: {' '.join(bad)}")
        return value

    return pydantic.AfterValidator(check)


Name = Annotated[str, _identifier(MAX_NAME_LENGTH)]
UnitKey = Annotated[str, _identifier(MAX_UNIT_KEY_LENGTH)]
ObjectRef = Annotated[str, _identifier(MAX_OBJECT_LENGTH)]
Reason = Annotated[str, _identifier(MAX_REASON_LENGTH)]
Version = Annotated[str, _identifier(MAX_VERSION_LENGTH)]
URL = Annotated[str, _identifier(MAX_URL_LENGTH)]
Ref = Annotated[str, _identifier(MAX_REF_LENGTH)]
RevisionText = Annotated[str, _identifier(MAX_REVISION_LENGTH)]


class SourceReport(ReportModel):
    """The Git source the agent follows and the revision it last resolved."""

    url: URL
    """Repository URL; credentials in it are replaced by ``***`` on the way in."""
    ref: Ref
    """What the agent follows: ``refs/heads/main``, ``main``, ``refs/tags/v1``, ``semver ^1``."""
    revision: RevisionText | None = None
    """Flux's form, ``main@sha1:<sha>``; None until the first fetch succeeded."""
    ready: bool = False
    message: Message = ""
    last_fetched_at: Timestamp | None = None

    @pydantic.field_validator("url")
    @classmethod
    def _redacted(cls, value: str) -> str:
        return redact_url(value)

    @pydantic.field_validator("revision")
    @classmethod
    def _flux_revision(cls, value: str | None) -> str | None:
        if value is not None and not _REVISION.match(value):
            raise ValueError(f"revision {value!r} is not in Flux's form <ref>@sha1:<sha>")
        return value


class UnitReport(ReportModel):
    """One reconcile unit (a Flux Kustomization or HelmRelease) as the agent last saw it."""

    kind: UnitKind = "Kustomization"
    namespace: Name
    name: Name
    ready: ConditionStatus = "Unknown"
    reason: Reason = ""
    message: Message = ""
    suspended: bool = False
    last_applied_revision: RevisionText | None = None
    last_attempted_revision: RevisionText | None = None
    inventory_size: int = pydantic.Field(default=0, ge=0, le=10**9)
    drift_count: int = pydantic.Field(default=0, ge=0, le=10**9)
    """Drift corrections since the agent started; the hub counts events for time windows."""
    depends_on: list[UnitKey] = pydantic.Field(default_factory=list, max_length=MAX_DEPENDS_ON)
    last_reconcile_seconds: float | None = pydantic.Field(
        default=None, ge=0, le=10**7, allow_inf_nan=False
    )
    last_reconcile_at: Timestamp | None = None
    source: str = pydantic.Field(default="", max_length=300)
    """The Git source of a Kustomization when it is not the cluster's own (``source``):
    ``GitRepository/<namespace>/<name>``; empty for the fleet repository itself."""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


class Event(ReportModel):
    """Something that happened to a unit, in the shape of a Kubernetes Event."""

    time: Timestamp
    type: EventType = "Normal"
    reason: Reason
    """``DriftCorrected``, ``ReconcileFailed``, ``ReconcileSucceeded``, ``Pruned``..."""
    unit: UnitKey = ""
    """``namespace/name`` of the unit, empty for the cluster as a whole."""
    object: ObjectRef = ""
    """The object concerned, ``apps/v1/Deployment/default/web``, if any."""
    message: Message = ""

    def fingerprint(self) -> str:
        """Identity across reports: a report repeats its recent events until they age out."""
        parts = (
            self.time.isoformat(),
            self.type,
            self.reason,
            self.unit,
            self.object,
            self.message,
        )
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


class ClusterReport(ReportModel):
    """The whole state of one cluster's agent, sent after every change and as heartbeat."""

    api_version: Literal["fleet.dev/v1alpha1"] = API_VERSION
    kind: Literal["ClusterReport"] = KIND
    cluster: str
    agent_version: Version = ""
    reported_at: Timestamp
    labels: dict[str, str] = pydantic.Field(default_factory=dict)
    """Labels the agent was started with (``env=dev``); a hub token's labels win over them."""
    source: SourceReport
    units: list[UnitReport] = pydantic.Field(default_factory=list)
    events: list[Event] = pydantic.Field(default_factory=list)
    heartbeat_seconds: int = pydantic.Field(default=DEFAULT_HEARTBEAT_SECONDS, gt=0, le=3600)

    @pydantic.field_validator("cluster")
    @classmethod
    def _dns_label(cls, value: str) -> str:
        return validate_cluster_name(value)

    @pydantic.field_validator("labels")
    @classmethod
    def _kubernetes_labels(cls, value: dict[str, str]) -> dict[str, str]:
        return validate_labels(value)

    @pydantic.field_validator("units")
    @classmethod
    def _bounded_units(cls, value: list[UnitReport]) -> list[UnitReport]:
        if len(value) > MAX_UNITS:
            raise ValueError(f"the report lists {len(value)} units; the limit is {MAX_UNITS}")
        counts = collections.Counter(unit.key for unit in value)
        duplicates = sorted(key for key, count in counts.items() if count > 1)
        if duplicates:
            raise ValueError(f"units listed twice: {', '.join(duplicates)}")
        return value

    @pydantic.field_validator("events")
    @classmethod
    def _bounded_events(cls, value: list[Event]) -> list[Event]:
        if len(value) > MAX_EVENTS:
            raise ValueError(
                f"the report carries {len(value)} events; the limit is {MAX_EVENTS} "
                "(send the most recent, see fleet.report.recent_events)"
            )
        return value


def validate_cluster_name(name: str) -> str:
    """Cluster names are DNS labels: they appear in URLs, file names and Kubernetes labels."""
    if not _CLUSTER_NAME.match(name):
        raise ValueError(
            f"cluster name {name!r} must be a DNS label: lowercase letters, digits and '-', "
            "at most 63 characters"
        )
    return name


def validate_labels(labels: dict[str, str]) -> dict[str, str]:
    """Kubernetes label syntax, so labels read the same in the hub, Git and kubectl."""
    if len(labels) > MAX_LABELS:
        raise ValueError(f"{len(labels)} labels; the limit is {MAX_LABELS}")
    for key, value in labels.items():
        if not _LABEL_KEY.match(key):
            raise ValueError(f"label key {key!r} is not a valid Kubernetes label key")
        if not _LABEL_VALUE.match(value):
            raise ValueError(f"label {key}={value!r}: not a valid Kubernetes label value")
    return labels


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def clip_message(text: str, limit: int = MAX_MESSAGE_LENGTH) -> str:
    """Shorten ``text`` to fit ``limit``, keeping the start where errors say what failed."""
    if len(text) <= limit:
        return text
    return text[: limit - len(_ELLIPSIS)] + _ELLIPSIS


def recent_events(events: Iterable[Event], limit: int = MAX_EVENTS) -> list[Event]:
    """The newest ``limit`` events, oldest first, as a report carries them."""
    return sorted(events, key=lambda event: event.time)[-limit:]


def cluster_health(
    report: ClusterReport | None,
    now: datetime.datetime,
    stale_after: datetime.timedelta | None,
    *,
    last_seen: datetime.datetime | None = None,
) -> ClusterHealth:
    """The one-word health of a cluster, as the hub list and the TUI show it.

    ``Stale`` when nothing was heard for ``stale_after`` (None: never, as for the Git
    status branch, which has no heartbeats); ``last_seen`` is when the hub received the
    report, which is safer than the agent's clock. Then ``Suspended`` if every unit is
    suspended, ``Degraded`` if the source or any active unit is not Ready, ``Unknown`` if
    the source never resolved or a unit is still in progress, else ``Ready``.
    """
    if report is None:
        return "Unknown"
    seen = last_seen or report.reported_at
    if stale_after is not None and now - seen > stale_after:
        return "Stale"
    active = [unit for unit in report.units if not unit.suspended]
    if report.units and not active:
        return "Suspended"
    if report.source.revision is not None and not report.source.ready:
        return "Degraded"
    if any(unit.ready == "False" for unit in active):
        return "Degraded"
    if report.source.revision is None or any(unit.ready == "Unknown" for unit in active):
        return "Unknown"
    return "Ready"


_WITHOUT_VOLATILE: dict[str, Any] = {
    "reported_at": True,
    "source": {"last_fetched_at"},
    "units": {"__all__": {"last_reconcile_at", "last_reconcile_seconds"}},
}


def status_document(report: ClusterReport) -> dict[str, Any]:
    """The report without its volatile fields: what the Git status branch stores."""
    return report.wire(exclude=_WITHOUT_VOLATILE)


def content_digest(report: ClusterReport) -> str:
    """SHA-256 of the report's lasting content, to decide whether anything changed.

    Two reports that differ only in ``VOLATILE_FIELDS`` have the same digest, so a heartbeat
    is never mistaken for a change. The JSON comes from pydantic-core in field order, which
    the schema fixes; the hub computes this for every report, so it must be cheap.
    """
    canonical = report.model_dump_json(by_alias=True, exclude=_WITHOUT_VOLATILE)
    return hashlib.sha256(canonical.encode()).hexdigest()


def short_revision(revision: str | None, length: int = 8) -> str:
    """``main@sha1:0123abcd`` for tables; the full form stays in JSON output."""
    if not revision:
        return ""
    label, _, digest = revision.rpartition("@")
    algorithm, _, sha = digest.partition(":")
    short = f"{algorithm}:{sha[:length]}"
    return f"{label}@{short}" if label else short


class ClusterSummary(ReportModel):
    """One line of ``GET /api/v1/clusters`` and of ``fleet get clusters``."""

    name: str
    health: ClusterHealth
    labels: dict[str, str] = pydantic.Field(default_factory=dict)
    revision: str | None = None
    source_ref: str | None = None
    source_ready: bool = False
    units_ready: int = 0
    units_total: int = 0
    drift24h: int = pydantic.Field(default=0, alias="drift24h")
    """DriftCorrected events in the last 24 hours."""
    last_report_at: HubTimestamp | None = None
    agent_version: str = ""
    message: str = ""
    """Why the cluster is not Ready: the first failing unit's or the source's message."""


def health_message(report: ClusterReport) -> str:
    """The first reason a cluster is not Ready, for one-line listings (clipped)."""
    if report.source.revision is not None and not report.source.ready:
        return clip_message(f"source: {report.source.message}", MAX_SUMMARY_MESSAGE_LENGTH)
    for unit in report.units:
        if not unit.suspended and unit.ready == "False":
            text = f"{unit.key}: {unit.message or unit.reason}"
            return clip_message(text, MAX_SUMMARY_MESSAGE_LENGTH)
    return ""


def count_events(events: Sequence[Event], reason: str, since: datetime.datetime) -> int:
    return sum(1 for event in events if event.reason == reason and event.time >= since)


def summarize(
    report: ClusterReport,
    health: ClusterHealth,
    now: datetime.datetime,
    *,
    last_report_at: datetime.datetime | None = None,
) -> ClusterSummary:
    """A listing line from a report alone (the Git status branch); the hub uses its store."""
    return ClusterSummary(
        name=report.cluster,
        health=health,
        labels=report.labels,
        revision=report.source.revision,
        source_ref=report.source.ref,
        source_ready=report.source.ready,
        units_ready=sum(1 for unit in report.units if unit.ready == "True"),
        units_total=len(report.units),
        drift24h=count_events(report.events, DRIFT_CORRECTED, now - datetime.timedelta(days=1)),
        last_report_at=last_report_at or report.reported_at,
        agent_version=report.agent_version,
        message=health_message(report),
    )


class HubCommand(ReportModel):
    """A request the hub sends down an agent's outbound command stream.

    ``reconcile`` asks for an immediate run: of one unit (``namespace/name``) or of all,
    with a source refresh first when ``source`` is true (a webhook announced a push).
    """

    id: int
    command: Literal["reconcile"] = "reconcile"
    unit: str | None = None
    source: bool = False
    reason: str = ""
    queued_at: HubTimestamp | None = None
