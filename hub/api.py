"""The JSON bodies of the hub's ``/api/v1``: one pydantic model each, used both to build
responses and to generate the OpenAPI document, so the two cannot drift apart."""

from __future__ import annotations

from typing import Any, Literal, Self

import pydantic

from fleet.report import (
    ClusterHealth,
    ClusterReport,
    ClusterSummary,
    HubCommand,
    ReportModel,
    Timestamp,
    validate_cluster_name,
    validate_labels,
)

API_PREFIX = "/api/v1"


class ClusterList(ReportModel):
    items: list[ClusterSummary]


class ClusterDetail(ReportModel):
    cluster: ClusterSummary
    report: ClusterReport | None = None
    """The latest report as received; None until the cluster first reported."""


class HistoryEntry(ReportModel):
    received_at: str
    digest: str
    report: ClusterReport


class ReportHistory(ReportModel):
    items: list[HistoryEntry]
    """Changed reports, newest first (heartbeats are not kept)."""


class EventRecord(ReportModel):
    id: int
    """Increasing per hub database; pass the smallest you have as ``before`` to page back."""
    cluster: str
    time: str
    type: Literal["Normal", "Warning"]
    reason: str
    unit: str
    object: str
    message: str


class EventList(ReportModel):
    items: list[EventRecord]


class LabelSummary(ReportModel):
    clusters: int
    health: dict[str, int]


class FleetSummary(ReportModel):
    clusters: int
    health: dict[ClusterHealth, int]
    units_not_ready: int
    by_label: dict[str, dict[str, LabelSummary]]
    """``{"env": {"dev": {"clusters": 3, "health": {"Ready": 2, "Degraded": 1}}}}``."""


class IngestResult(ReportModel):
    cluster: str
    changed: bool
    """False for a heartbeat: the content digest equals the stored one."""
    digest: str
    health: ClusterHealth


class ReconcileRequest(ReportModel):
    model_config = pydantic.ConfigDict(extra="forbid")

    unit: str | None = None
    """``namespace/name`` of one unit; all units when omitted."""
    source: bool = True
    """Fetch the source before reconciling."""


class CommandQueued(ReportModel):
    cluster: str
    command: HubCommand


class WebhookResult(ReportModel):
    provider: str
    ref: str | None = None
    queued: list[str] = pydantic.Field(default_factory=list)
    """Clusters a reconcile command was queued for."""
    ignored: str | None = None
    """Why nothing was done (not a push event), if so."""


class TokenRequest(ReportModel):
    """A new token: for a cluster (``cluster``, optional ``labels``) or for a user
    (``name``, optional ``role``)."""

    model_config = pydantic.ConfigDict(extra="forbid")

    kind: Literal["cluster", "user"]
    cluster: str | None = None
    """The cluster a ``cluster`` token reports as (a DNS label)."""
    labels: dict[str, str] | None = None
    """A cluster's labels (``env``, ``wave``); they win over those its agent reports.
    Omitted: the cluster keeps the labels it has, so a new token does not drop them."""
    name: str | None = None
    """Who a ``user`` token is for."""
    role: Literal["read-only", "admin"] | None = None
    """A user token's role; default ``read-only``."""

    @pydantic.field_validator("cluster")
    @classmethod
    def _cluster_name(cls, value: str | None) -> str | None:
        return None if value is None else validate_cluster_name(value)

    @pydantic.field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        return None if value is None else validate_labels(value)

    @pydantic.model_validator(mode="after")
    def _fields_of_its_kind(self) -> Self:
        if self.kind == "cluster":
            if self.cluster is None:
                raise ValueError("a cluster token needs 'cluster', the cluster's name")
            if self.name is not None or self.role is not None:
                raise ValueError("'name' and 'role' are for user tokens, not cluster tokens")
        else:
            if not self.name:
                raise ValueError("a user token needs 'name', who it is for")
            if self.cluster is not None or self.labels is not None:
                raise ValueError("'cluster' and 'labels' are for cluster tokens, not user tokens")
        return self


class TokenInfo(ReportModel):
    """A stored token without its secret (the hub keeps only a salted hash of it)."""

    id: str
    kind: Literal["cluster", "user"]
    cluster: str | None = None
    """The cluster of a cluster token."""
    name: str | None = None
    """Who a user token is for."""
    role: str
    """``cluster``, ``read-only`` or ``admin``."""
    labels: dict[str, str]
    created_at: str
    revoked_at: str | None = None


class TokenCreated(TokenInfo):
    token: str
    """The token itself, ``fleet_<id>_<secret>``: in this response only, never again."""


class TokenList(ReportModel):
    items: list[TokenInfo]
    """Oldest first, revoked ones included."""


class Health(ReportModel):
    status: Literal["ok"]
    database: str


class ErrorBody(ReportModel):
    error: str
    detail: Any = None


class StreamChange(ReportModel):
    """The data of a ``cluster-updated`` event on ``/api/v1/stream``."""

    cluster: ClusterSummary


class StreamEvent(ReportModel):
    """The data of an ``event`` event on ``/api/v1/stream``."""

    event: EventRecord


PromotionAction = Literal["promote", "wait", "halt", "rollback", "settled"]
RecordAction = Literal["promote", "approve", "pause", "resume", "halt", "rollback", "finish"]


class CheckStatus(ReportModel):
    """One verification check of a wave (fleet.yaml ``verify``) and its hold clock."""

    name: str
    kind: Literal["prometheus", "http"]
    holds: bool | None
    """None until it was evaluated once."""
    holding_since: Timestamp | None = None
    checked_at: Timestamp | None = None
    detail: str = ""


class WaveStatus(ReportModel):
    """One wave of ``GET /api/v1/promotions``: where it stands and why it waits."""

    name: str
    depends_on: list[str]
    revision: str | None
    """The commit the wave's ref points to (batched waves: the first batch's)."""
    candidate: str | None
    """The commit that would enter the wave next."""
    action: PromotionAction
    reason: str
    """Why, in words a person can act on: ``waiting for dev (at 1a2b3c4) to apply 5d6e7f8``."""
    approval_required: bool
    approved: bool
    """The candidate is approved for this wave."""
    paused: bool
    clusters: list[str]
    """The wave's clusters, in fleet.yaml order."""
    last_good: str | None
    """The newest commit that ran Ready on every cluster of the wave."""
    checks: list[CheckStatus] = pydantic.Field(default_factory=list)


class PromotionStatus(ReportModel):
    waves: list[WaveStatus]
    """Dependencies first."""
    error: str | None
    """Why promotion is halted as a whole (fleet.yaml invalid, the repository unreachable)."""


class PromotionRecord(ReportModel):
    """One action on a wave, as kept in the hub and committed to the records branch."""

    id: int
    wave: str
    action: RecordAction
    revision: str | None = None
    """What the action is about: the commit promoted, approved, rolled back to, halted at."""
    from_: str | None = pydantic.Field(default=None, alias="from")
    """Where the wave's ref pointed before (promote, rollback)."""
    batch: int | None = None
    clusters: list[str] = pydantic.Field(default_factory=list)
    who: str
    """The user token's subject, or ``hub`` for the promoter itself."""
    why: str
    at: str
    commit: str | None = None
    """The records-branch commit holding this record; null until written to Git."""


class PromotionHistory(ReportModel):
    items: list[PromotionRecord]
    """Newest first."""


class ApproveRequest(ReportModel):
    model_config = pydantic.ConfigDict(extra="forbid")

    revision: str | None = None
    """A commit (full or abbreviated SHA); default: the wave's candidate."""


class RollbackRequest(ReportModel):
    model_config = pydantic.ConfigDict(extra="forbid")

    to: str | None = None
    """A commit (full or abbreviated SHA); default: the wave's last good revision."""


class StreamPromotion(ReportModel):
    """The data of a ``promotion`` event on ``/api/v1/stream``: an action was recorded."""

    record: PromotionRecord


class StreamPromotionStatus(ReportModel):
    """The data of a ``promotion-status`` event: a wave's action changed."""

    actions: dict[str, PromotionAction]
