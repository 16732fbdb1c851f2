"""Typed ``status`` of Flux's objects, field for field as Flux's Go JSON tags name them.

Sources: kustomize-controller ``api/v1`` (KustomizationStatus), helm-controller ``api/v2``
(HelmReleaseStatus, Snapshot), source-controller ``api/v1`` (GitRepositoryStatus,
HelmRepositoryStatus) and fluxcd/pkg ``apis/meta`` (Artifact, History, the reconcile
request fields). Pure data: the runtime folds outcomes into these and the status writer
sends :meth:`~fleet.api.flux.base.StatusModel.to_status` to the status subresource.
"""

from __future__ import annotations

from typing import Any, Literal

import pydantic

from fleet.api.flux import base, conditions
from fleet.api.flux.base import Timestamp
from fleet.api.flux.conditions import Condition
from fleet.api.flux.inventory import ResourceInventory
from fleet.models.common import Duration


class ConditionedStatus(base.StatusModel):
    """What every Flux status has: the observed generation, conditions, reconcile request."""

    observed_generation: int = pydantic.Field(default=0, ge=0)
    """The ``metadata.generation`` the last finished reconcile acted on."""
    conditions: list[Condition] = pydantic.Field(default_factory=list)
    last_handled_reconcile_at: str = ""
    """The ``reconcile.fluxcd.io/requestedAt`` value last acted on; ``flux reconcile``
    waits for it to change."""

    def condition(self, type: str) -> Condition | None:
        return conditions.find_condition(self.conditions, type)

    @property
    def ready(self) -> Condition | None:
        return self.condition(conditions.ConditionType.READY)


class Artifact(base.StatusModel):
    """A source's fetched content (fluxcd/pkg ``meta.Artifact``)."""

    KEEP_EMPTY = frozenset({"path", "url", "revision", "size"})

    revision: str
    """Human-readable: ``main@sha1:<40 hex>``, ``6.5.4@sha256:<hex>``."""
    digest: str = pydantic.Field(default="", pattern=r"^([a-z0-9]+):[a-f0-9]*$|^$")
    """``<algorithm>:<hex>`` of the artifact file."""
    last_update_time: Timestamp
    path: str
    """Relative to the storage root; fleet serves no artifact files, so its own form."""
    url: str
    size: int | None = None
    metadata: dict[str, str] = pydantic.Field(default_factory=dict)


class HistorySnapshot(base.StatusModel):
    """One entry of a Kustomization's ``status.history`` (fluxcd/pkg ``meta.Snapshot``)."""

    KEEP_EMPTY = frozenset(
        {"digest", "last_reconciled_status", "total_reconciliations", "last_reconciled_duration"}
    )

    digest: str
    first_reconciled: Timestamp
    last_reconciled: Timestamp
    last_reconciled_duration: Duration
    last_reconciled_status: str
    """The Ready reason of the reconcile (``ReconciliationSucceeded``, ``BuildFailed``...)."""
    total_reconciliations: int
    metadata: dict[str, str] = pydantic.Field(default_factory=dict)


class KustomizationStatus(ConditionedStatus):
    """kustomize-controller ``api/v1`` KustomizationStatus."""

    last_applied_revision: str = ""
    """The source revision last applied successfully; ``flux get ks`` prints it."""
    last_applied_origin_revision: str = ""
    last_attempted_revision: str = ""
    inventory: ResourceInventory | None = None
    history: list[HistorySnapshot] = pydantic.Field(default_factory=list)


class TestHookStatus(base.StatusModel):
    """One ``helm test`` hook of a release snapshot."""

    last_started: Timestamp | None = None
    last_completed: Timestamp | None = None
    phase: str = ""


ReleaseAction = Literal["install", "upgrade", "rollback", "uninstall", "uninstall-remediation"]


class HelmReleaseSnapshot(base.StatusModel):
    """One release in a HelmRelease's ``status.history`` (helm-controller ``v2.Snapshot``).

    ``flux get helmreleases`` prints ``history[0].chartVersion``; ``flux tree`` reads the
    Helm storage Secret ``sh.helm.release.v1.<name>.v<version>`` in ``storageNamespace``.
    """

    KEEP_EMPTY = frozenset(
        {
            "digest",
            "name",
            "namespace",
            "version",
            "status",
            "chart_name",
            "chart_version",
            "config_digest",
        }
    )

    api_version: str = "v2"
    """Snapshot format version; helm-controller writes ``v2``."""
    digest: str
    """Checksum of the release object (``sha256:<hex>``)."""
    name: str
    """The Helm release name."""
    namespace: str
    """The release namespace (where its objects go)."""
    version: int = pydantic.Field(ge=0)
    """The Helm release revision."""
    status: str
    """Helm's release status: ``deployed``, ``failed``, ``superseded``, ``pending-install``..."""
    action: ReleaseAction | None = None
    chart_name: str
    chart_version: str
    app_version: str = ""
    config_digest: str
    """Digest of the values the release was made with (``sha256:<hex>``)."""
    first_deployed: Timestamp
    last_deployed: Timestamp
    deleted: Timestamp | None = None
    test_hooks: dict[str, TestHookStatus] = pydantic.Field(default_factory=dict)
    oci_digest: str = ""


class HelmReleaseStatus(ConditionedStatus):
    """helm-controller ``api/v2`` HelmReleaseStatus."""

    observed_post_renderers_digest: str = ""
    observed_common_metadata_digest: str = ""
    last_attempted_generation: int = 0
    helm_chart: str = ""
    """``<namespace>/<name>`` of the HelmChart object the release's chart comes from."""
    storage_namespace: str = ""
    """Where Helm keeps the release Secrets."""
    history: list[HelmReleaseSnapshot] = pydantic.Field(default_factory=list)
    """Newest first."""
    inventory: ResourceInventory | None = None
    last_attempted_release_action: ReleaseAction | None = None
    last_attempted_release_action_duration: Duration | None = None
    failures: int = 0
    """Failed reconciles since the last success (of any kind)."""
    install_failures: int = 0
    upgrade_failures: int = 0
    last_attempted_revision: str = ""
    """The chart version last attempted."""
    last_attempted_revision_digest: str = ""
    last_attempted_values_checksum: str = ""
    """Deprecated by helm-controller in favour of ``lastAttemptedConfigDigest``."""
    last_release_revision: int = 0
    """Deprecated by helm-controller in favour of ``history``."""
    last_attempted_config_digest: str = ""
    last_handled_reset_at: str = ""
    last_handled_force_at: str = ""

    @property
    def latest_snapshot(self) -> HelmReleaseSnapshot | None:
        """The snapshot of the newest Helm revision (``Snapshots.Latest``)."""
        return max(self.history, key=lambda s: s.version, default=None)


class GitRepositoryStatus(ConditionedStatus):
    """source-controller ``api/v1`` GitRepositoryStatus."""

    KEEP_EMPTY = frozenset({"observed_ignore"})

    artifact: Artifact | None = None
    included_artifacts: list[Artifact] = pydantic.Field(default_factory=list)
    observed_ignore: str | None = None
    observed_recurse_submodules: bool = False
    observed_include: list[dict[str, Any]] = pydantic.Field(default_factory=list)
    observed_sparse_checkout: list[str] = pydantic.Field(default_factory=list)
    source_verification_mode: str | None = None


class HelmRepositoryStatus(ConditionedStatus):
    """source-controller ``api/v1`` HelmRepositoryStatus."""

    url: str = ""
    """Where the repository's index is served (for an HTTP repository)."""
    artifact: Artifact | None = None
