"""The JSON bodies of the hub's ``/api/v1``: one pydantic model each, used both to build
responses and to generate the OpenAPI document, so the two cannot drift apart."""

from __future__ import annotations

from typing import Any, Literal

import pydantic

from fleet.report import ClusterHealth, ClusterReport, ClusterSummary, HubCommand, ReportModel

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
