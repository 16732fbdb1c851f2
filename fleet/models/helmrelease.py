"""Flux's ``HelmRelease`` (helm.toolkit.fluxcd.io/v2): a chart release as a reconcile unit.

Field names and defaults follow Flux's v2 API so that an existing Flux repository works
unchanged; the agent carries the release out with the real ``helm`` binary. Fields fleet
reads but does not act on are listed by :meth:`HelmRelease.unsupported_fields`, and keys
it does not know at all are reported the same way, for the unit's status.
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Mapping
from typing import Any, Literal, Protocol

import pydantic

from fleet.models import common
from fleet.models.common import Duration, FluxModel, NamespacedName, PositiveDuration

API_GROUP = "helm.toolkit.fluxcd.io"
API_VERSIONS = (f"{API_GROUP}/v2", f"{API_GROUP}/v2beta2")
"""v2beta2 is still served by Flux and its fields are a subset of v2's."""
KIND = "HelmRelease"

DEFAULT_TIMEOUT = datetime.timedelta(minutes=5)
DEFAULT_MAX_HISTORY = 5
MAX_RELEASE_NAME = 53
"""Helm's limit: release names end up in Secret names and labels."""
_SHORT_PREFIX = 40
_SHORT_HASH = 12


def release_name_for(name: str, target_namespace: str | None, release_name: str | None) -> str:
    """Flux's rule: ``releaseName``, else ``[targetNamespace-]name``, shortened to 53
    characters as Flux does (first 40, a dash, 12 hex digits of its SHA-256)."""
    if release_name:
        chosen = release_name
    elif target_namespace:
        chosen = f"{target_namespace}-{name}"
    else:
        chosen = name
    if len(chosen) <= MAX_RELEASE_NAME:
        return chosen
    digest = hashlib.sha256(chosen.encode()).hexdigest()[:_SHORT_HASH]
    return f"{chosen[:_SHORT_PREFIX]}-{digest}"


class ChartSourceReference(FluxModel):
    """Where the chart comes from: a HelmRepository, or a path in a GitRepository."""

    api_version: str | None = None
    kind: Literal["HelmRepository", "GitRepository", "Bucket"]
    name: str
    namespace: str | None = None
    """Defaults to the HelmRelease's namespace."""


class ChartSpec(FluxModel):
    """The chart to release: name (or path, for a GitRepository) and version constraint."""

    UNSUPPORTED = frozenset({"verify"})
    """Signature verification of OCI charts (cosign/notation)."""

    chart: str = pydantic.Field(min_length=1)
    version: str = "*"
    """A semver range; ignored for GitRepository charts, whose Chart.yaml decides."""
    source_ref: ChartSourceReference
    interval: Duration | None = None
    """How often to look for a new chart version; defaults to the HelmRelease's interval."""
    reconcile_strategy: Literal["ChartVersion", "Revision"] = "ChartVersion"
    """For Git charts: ChartVersion releases a new chart only when Chart.yaml's version
    changes; Revision also on every new commit (the version gets ``+<commit>``)."""
    values_files: list[str] = pydantic.Field(default_factory=list)
    """Values files inside the chart, merged in order before the release's own values."""
    ignore_missing_values_files: pydantic.StrictBool = False
    verify: dict[str, Any] | None = None


class ChartTemplate(FluxModel):
    """``spec.chart``: the template of the HelmChart Flux would create."""

    UNSUPPORTED = frozenset({"metadata"})
    """Labels and annotations of Flux's HelmChart object: fleet creates no such object."""

    metadata: dict[str, Any] | None = None
    spec: ChartSpec


class ChartReference(FluxModel):
    """``spec.chartRef``: an OCIRepository or HelmChart object; fleet has neither."""

    api_version: str | None = None
    kind: Literal["OCIRepository", "HelmChart", "ExternalArtifact"]
    name: str
    namespace: str | None = None


class ValuesReference(FluxModel):
    """Values read from a ConfigMap or Secret in the HelmRelease's namespace."""

    kind: Literal["ConfigMap", "Secret"]
    name: str = pydantic.Field(min_length=1)
    values_key: str = "values.yaml"
    target_path: str | None = None
    """A dotted path (``a.b[0].c``) the key's single value is set at, instead of merging
    the key's YAML at the root."""
    optional: pydantic.StrictBool = False
    """When true a missing object or key is skipped instead of failing the release."""


class Remediation(Protocol):
    """What install and upgrade remediation have in common (Flux's Remediation interface)."""

    @property
    def retries(self) -> int: ...

    @property
    def ignore_test_failures(self) -> bool | None: ...

    @property
    def remediates_last_failure(self) -> bool: ...

    @property
    def strategy(self) -> Literal["rollback", "uninstall"]: ...


class InstallRemediation(FluxModel):
    """What happens when an install fails: an uninstall between attempts."""

    retries: int = 0
    """Attempts after the first failure; a negative number means unlimited."""
    ignore_test_failures: pydantic.StrictBool | None = None
    remediate_last_failure: pydantic.StrictBool | None = None

    @property
    def remediates_last_failure(self) -> bool:
        """Flux: false unless set."""
        return bool(self.remediate_last_failure)

    @property
    def strategy(self) -> Literal["rollback", "uninstall"]:
        return "uninstall"


class UpgradeRemediation(FluxModel):
    """What happens when an upgrade fails: a rollback (or uninstall) between attempts."""

    retries: int = 0
    """Attempts after the first failure; a negative number means unlimited."""
    ignore_test_failures: pydantic.StrictBool | None = None
    remediate_last_failure: pydantic.StrictBool | None = None
    strategy: Literal["rollback", "uninstall"] = "rollback"

    @property
    def remediates_last_failure(self) -> bool:
        """Flux: false unless set, or unless retries are configured (> 0)."""
        if self.remediate_last_failure is None:
            return self.retries > 0
        return self.remediate_last_failure


CrdsPolicy = Literal["Skip", "Create", "CreateReplace"]


class Install(FluxModel):
    """How a release is installed (no release of that name exists yet)."""

    UNSUPPORTED = frozenset({"disable_take_ownership"})

    timeout: Duration | None = None
    remediation: InstallRemediation = pydantic.Field(default_factory=InstallRemediation)
    disable_take_ownership: pydantic.StrictBool = False
    disable_wait: pydantic.StrictBool = False
    disable_wait_for_jobs: pydantic.StrictBool = False
    disable_hooks: pydantic.StrictBool = False
    disable_open_api_validation: pydantic.StrictBool = False
    disable_schema_validation: pydantic.StrictBool = False
    replace: pydantic.StrictBool = False
    skip_crds: pydantic.StrictBool = False
    """Deprecated by Flux in favour of ``crds: Skip``; still honoured."""
    crds: CrdsPolicy = "Create"
    create_namespace: pydantic.StrictBool = False

    @property
    def crds_policy(self) -> CrdsPolicy:
        return "Skip" if self.skip_crds else self.crds


class Upgrade(FluxModel):
    """How a release is upgraded (a release exists and the chart or values changed)."""

    UNSUPPORTED = frozenset({"disable_take_ownership"})

    timeout: Duration | None = None
    remediation: UpgradeRemediation = pydantic.Field(default_factory=UpgradeRemediation)
    disable_take_ownership: pydantic.StrictBool = False
    disable_wait: pydantic.StrictBool = False
    disable_wait_for_jobs: pydantic.StrictBool = False
    disable_hooks: pydantic.StrictBool = False
    disable_open_api_validation: pydantic.StrictBool = False
    disable_schema_validation: pydantic.StrictBool = False
    force: pydantic.StrictBool = False
    preserve_values: pydantic.StrictBool = False
    """Reuse the release's values and merge these over them (non-declarative, as in Flux)."""
    cleanup_on_fail: pydantic.StrictBool = False
    crds: CrdsPolicy = "Skip"


class Rollback(FluxModel):
    """How a failed upgrade is rolled back when remediation asks for it."""

    timeout: Duration | None = None
    disable_wait: pydantic.StrictBool = False
    disable_wait_for_jobs: pydantic.StrictBool = False
    disable_hooks: pydantic.StrictBool = False
    recreate: pydantic.StrictBool = False
    force: pydantic.StrictBool = False
    cleanup_on_fail: pydantic.StrictBool = False


class Uninstall(FluxModel):
    """How a release is removed (remediation, or its HelmRelease left Git)."""

    timeout: Duration | None = None
    disable_hooks: pydantic.StrictBool = False
    keep_history: pydantic.StrictBool = False
    disable_wait: pydantic.StrictBool = False
    deletion_propagation: Literal["background", "foreground", "orphan"] = "background"


class ReleaseTestFilter(FluxModel):
    name: str = pydantic.Field(min_length=1)
    exclude: pydantic.StrictBool = False


class ReleaseTest(FluxModel):
    """``spec.test``: ``helm test`` after every install and upgrade, when enabled."""

    enable: pydantic.StrictBool = False
    timeout: Duration | None = None
    ignore_failures: pydantic.StrictBool = False
    filters: list[ReleaseTestFilter] = pydantic.Field(default_factory=list)


class IgnoreRule(FluxModel):
    """JSON pointers whose drift is neither reported nor corrected, for matching objects."""

    paths: list[str]
    target: common.Selector | None = None

    @pydantic.field_validator("paths")
    @classmethod
    def _pointers(cls, paths: list[str]) -> list[str]:
        for path in paths:
            if not path.startswith("/"):
                raise ValueError(f'"{path}" is not a JSON pointer (it must start with "/")')
        return paths


class DriftDetection(FluxModel):
    """Whether the release's objects are compared with the cluster, and what happens then."""

    mode: Literal["enabled", "warn", "disabled"] = "disabled"
    ignore: list[IgnoreRule] = pydantic.Field(default_factory=list)


class DependencyReference(FluxModel):
    """Another HelmRelease that must be Ready first (Flux: same kind only)."""

    UNSUPPORTED = frozenset({"ready_expr"})

    name: str
    namespace: str | None = None
    ready_expr: str | None = None


class HelmReleaseSpec(FluxModel):
    """Which chart to release with which values, and how helm goes about it."""

    UNSUPPORTED = frozenset({"kube_config", "post_renderers", "chart_ref"})
    """Remote clusters (each cluster runs its own agent), Flux's kustomize post-renderers
    and chartRef (OCIRepository/HelmChart objects) are not carried out."""

    chart: ChartTemplate | None = None
    chart_ref: ChartReference | None = None
    interval: PositiveDuration
    kube_config: dict[str, Any] | None = None
    suspend: pydantic.StrictBool = False
    release_name: str | None = pydantic.Field(default=None, min_length=1, max_length=53)
    target_namespace: str | None = pydantic.Field(default=None, min_length=1, max_length=63)
    storage_namespace: str | None = pydantic.Field(default=None, min_length=1, max_length=63)
    depends_on: list[DependencyReference] = pydantic.Field(default_factory=list)
    timeout: Duration | None = None
    max_history: int | None = pydantic.Field(default=None, ge=0)
    service_account_name: str | None = pydantic.Field(default=None, min_length=1)
    persistent_client: pydantic.StrictBool | None = None
    """A helm-controller connection setting; each helm run here is its own process."""
    drift_detection: DriftDetection = pydantic.Field(default_factory=DriftDetection)
    install: Install = pydantic.Field(default_factory=Install)
    upgrade: Upgrade = pydantic.Field(default_factory=Upgrade)
    test: ReleaseTest = pydantic.Field(default_factory=ReleaseTest)
    rollback: Rollback = pydantic.Field(default_factory=Rollback)
    uninstall: Uninstall = pydantic.Field(default_factory=Uninstall)
    values_from: list[ValuesReference] = pydantic.Field(default_factory=list)
    values: dict[str, Any] | None = None
    post_renderers: list[dict[str, Any]] = pydantic.Field(default_factory=list)

    @pydantic.model_validator(mode="after")
    def _one_chart(self) -> HelmReleaseSpec:
        if (self.chart is None) == (self.chart_ref is None):
            raise ValueError("exactly one of spec.chart and spec.chartRef must be set")
        return self

    @property
    def effective_timeout(self) -> datetime.timedelta:
        """``timeout``, else Flux's 5 minutes."""
        return self.timeout if self.timeout is not None else DEFAULT_TIMEOUT

    @property
    def effective_max_history(self) -> int:
        """``maxHistory``, else Flux's 5 (0 means unlimited, as in helm)."""
        return self.max_history if self.max_history is not None else DEFAULT_MAX_HISTORY

    @property
    def chart_interval(self) -> datetime.timedelta:
        chart = self.chart
        if chart is not None and chart.spec.interval is not None:
            return chart.spec.interval
        return self.interval


class HelmRelease(FluxModel):
    """A Flux HelmRelease object as written in Git."""

    api_version: Literal["helm.toolkit.fluxcd.io/v2", "helm.toolkit.fluxcd.io/v2beta2"]
    kind: Literal["HelmRelease"]
    metadata: common.ObjectMeta
    spec: HelmReleaseSpec
    status: dict[str, Any] | None = None
    """Ignored: status in Git is a copy of some cluster's past, never an instruction."""

    @pydantic.model_validator(mode="after")
    def _default_namespaces(self) -> HelmRelease:
        own = self.metadata.namespace
        for dependency in self.spec.depends_on:
            if dependency.namespace is None:
                dependency.namespace = own
        chart = self.spec.chart
        if chart is not None and chart.spec.source_ref.namespace is None:
            chart.spec.source_ref.namespace = own
        return self

    @property
    def key(self) -> NamespacedName:
        """``namespace/name``: how another HelmRelease's ``dependsOn`` refers to this one."""
        return NamespacedName(self.metadata.namespace, self.metadata.name)

    @property
    def dependency_keys(self) -> list[NamespacedName]:
        return [
            NamespacedName(d.namespace or self.metadata.namespace, d.name)
            for d in self.spec.depends_on
        ]

    @property
    def release_name(self) -> str:
        return release_name_for(
            self.metadata.name, self.spec.target_namespace, self.spec.release_name
        )

    @property
    def release_namespace(self) -> str:
        """Where the chart's namespaced objects go: ``targetNamespace``, else the
        HelmRelease's own namespace."""
        return self.spec.target_namespace or self.metadata.namespace

    @property
    def chart_spec(self) -> ChartSpec | None:
        return self.spec.chart.spec if self.spec.chart is not None else None

    @classmethod
    def from_manifest(
        cls, manifest: Mapping[str, Any], *, file: str, default_namespace: str
    ) -> HelmRelease:
        """Validate a manifest read from ``file``; raises :class:`ManifestError`."""
        return common.validate_manifest(
            cls, manifest, file=file, default_namespace=default_namespace
        )
