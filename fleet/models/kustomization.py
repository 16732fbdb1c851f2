"""Flux's ``Kustomization`` (kustomize.toolkit.fluxcd.io/v1): a reconcile unit in Git.

Field names, defaults and meanings follow Flux so that an existing Flux fleet repository
works unchanged. Fields fleet reads but does not act on are listed by
:meth:`Kustomization.unsupported_fields` for the agent to report on the unit's status.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, Literal

import pydantic

from fleet.models import common
from fleet.models.common import Duration, FluxModel, NamespacedName, PositiveDuration

API_GROUP = "kustomize.toolkit.fluxcd.io"
API_VERSIONS = (f"{API_GROUP}/v1", f"{API_GROUP}/v1beta2")
"""v1beta2 is still served by Flux and shares v1's fields, so old repos keep working."""
KIND = "Kustomization"

MINIMUM_TIMEOUT = datetime.timedelta(seconds=30)
TIMEOUT_MARGIN = datetime.timedelta(seconds=30)


class DependencyReference(FluxModel):
    """A unit that must be Ready before this one reconciles."""

    UNSUPPORTED = frozenset({"ready_expr"})

    name: str
    namespace: str | None = None
    """Defaults to the namespace of the Kustomization that declares the dependency."""
    ready_expr: str | None = None
    """A CEL readiness expression (Flux 2.7); fleet has no CEL evaluator."""


class HealthCheckReference(FluxModel):
    """An object whose health gates this unit's Ready condition."""

    api_version: str | None = None
    kind: str
    name: str
    namespace: str | None = None


class CommonMetadata(FluxModel):
    """Labels and annotations set on every object's ``metadata`` (not on pod templates)."""

    labels: dict[str, str] = pydantic.Field(default_factory=dict)
    annotations: dict[str, str] = pydantic.Field(default_factory=dict)


class Patch(FluxModel):
    """A strategic-merge or JSON6902 patch, applied by kustomize to the matching targets."""

    patch: str
    target: common.Selector | None = None


class Image(FluxModel):
    """An image override, as in kustomize's ``images`` list."""

    name: str
    new_name: str | None = None
    new_tag: str | None = None
    digest: str | None = None


class SubstituteReference(FluxModel):
    """A ConfigMap or Secret in the unit's namespace whose data keys become variables."""

    kind: Literal["ConfigMap", "Secret"]
    name: str
    optional: pydantic.StrictBool = False
    """When true a missing object is skipped instead of failing the unit."""


class PostBuild(FluxModel):
    """Variable substitution applied to the rendered objects."""

    substitute: dict[str, str] = pydantic.Field(default_factory=dict)
    """Inline variables; they override those read from ``substituteFrom``."""
    substitute_from: list[SubstituteReference] = pydantic.Field(default_factory=list)


class SourceReference(FluxModel):
    """The source artifact whose tree holds ``path``."""

    api_version: str | None = None
    kind: Literal["GitRepository", "OCIRepository", "Bucket", "ExternalArtifact"]
    name: str
    namespace: str | None = None
    """Defaults to the namespace of the Kustomization."""


class Decryption(FluxModel):
    provider: Literal["sops"]
    secret_ref: common.LocalObjectReference | None = None


class DriftIgnoreRule(FluxModel):
    """Fleet extension: JSON pointers whose drift is neither reported nor reverted."""

    paths: list[str]
    target: common.Selector | None = None


class KustomizationSpec(FluxModel):
    """What to render from the source, how to apply it, and when it counts as Ready."""

    UNSUPPORTED = frozenset({"kube_config", "decryption", "health_check_exprs"})
    """Remote clusters (each cluster runs its own agent), SOPS and CEL health checks."""

    interval: PositiveDuration
    retry_interval: Duration | None = None
    """How soon to retry after a failure; Flux falls back to ``interval``."""
    timeout: Duration | None = None
    path: str = "./"
    """Directory inside the source; the root when unset, as in Flux."""
    prune: pydantic.StrictBool
    deletion_policy: Literal["MirrorPrune", "Delete", "WaitForTermination", "Orphan"] = (
        "MirrorPrune"
    )
    depends_on: list[DependencyReference] = pydantic.Field(default_factory=list)
    health_checks: list[HealthCheckReference] = pydantic.Field(default_factory=list)
    health_check_exprs: list[dict[str, Any]] = pydantic.Field(default_factory=list)
    wait: pydantic.StrictBool = False
    """When true every applied object is health-checked and ``healthChecks`` is ignored."""
    suspend: pydantic.StrictBool = False
    force: pydantic.StrictBool = False
    """Recreate objects whose immutable fields changed instead of failing the apply."""
    target_namespace: str | None = pydantic.Field(default=None, min_length=1, max_length=63)
    name_prefix: str | None = pydantic.Field(default=None, min_length=1, max_length=200)
    name_suffix: str | None = pydantic.Field(default=None, min_length=1, max_length=200)
    common_metadata: CommonMetadata | None = None
    patches: list[Patch] = pydantic.Field(default_factory=list)
    images: list[Image] = pydantic.Field(default_factory=list)
    components: list[str] = pydantic.Field(default_factory=list)
    """Kustomize Components, by path relative to ``path``."""
    post_build: PostBuild | None = None
    service_account_name: str | None = None
    source_ref: SourceReference | None = None
    """Fleet extension: when absent, the fleet repository the agent syncs is the source."""
    kube_config: dict[str, Any] | None = None
    decryption: Decryption | None = None
    drift_ignore_rules: list[DriftIgnoreRule] = pydantic.Field(default_factory=list)

    @property
    def effective_retry_interval(self) -> datetime.timedelta:
        """``retryInterval``, else ``interval`` (Flux's GetRetryInterval)."""
        return self.retry_interval if self.retry_interval is not None else self.interval

    @property
    def effective_timeout(self) -> datetime.timedelta:
        """``timeout``, else ``interval`` minus 30 s; never below 30 s.

        Flux's API docs say the timeout defaults to the interval, but its code
        (``GetTimeout``) leaves a 30 s margin so a slow apply cannot overlap the next
        run, and clamps every value, explicit ones included, to at least 30 s. Fleet
        follows the code, since that is what Flux users actually observe.
        """
        chosen = self.timeout if self.timeout is not None else self.interval - TIMEOUT_MARGIN
        return max(chosen, MINIMUM_TIMEOUT)


class Kustomization(FluxModel):
    """A Flux Kustomization object as written in Git."""

    api_version: Literal["kustomize.toolkit.fluxcd.io/v1", "kustomize.toolkit.fluxcd.io/v1beta2"]
    kind: Literal["Kustomization"]
    metadata: common.ObjectMeta
    spec: KustomizationSpec
    status: dict[str, Any] | None = None
    """Ignored: status in Git is a copy of some cluster's past, never an instruction."""

    @pydantic.model_validator(mode="after")
    def _default_namespaces(self) -> Kustomization:
        # Flux resolves dependsOn and sourceRef without a namespace in the Kustomization's
        # own namespace; doing it once here keeps every consumer consistent.
        own = self.metadata.namespace
        for dependency in self.spec.depends_on:
            if dependency.namespace is None:
                dependency.namespace = own
        if self.spec.source_ref is not None and self.spec.source_ref.namespace is None:
            self.spec.source_ref.namespace = own
        return self

    @property
    def key(self) -> NamespacedName:
        """``namespace/name``: how ``dependsOn`` entries refer to this unit."""
        return NamespacedName(self.metadata.namespace, self.metadata.name)

    @property
    def dependency_keys(self) -> list[NamespacedName]:
        """Keys of the units this one depends on, namespaces defaulted."""
        return [
            NamespacedName(d.namespace or self.metadata.namespace, d.name)
            for d in self.spec.depends_on
        ]

    @classmethod
    def from_manifest(
        cls, manifest: Mapping[str, Any], *, file: str, default_namespace: str
    ) -> Kustomization:
        """Validate a manifest read from ``file``; raises :class:`ManifestError`.

        ``default_namespace`` is the namespace the agent places objects written without
        one (the parent unit's ``targetNamespace``, else the agent's own namespace).
        """
        return common.validate_manifest(
            cls, manifest, file=file, default_namespace=default_namespace
        )
