"""Reconcile units as the agent tracks them: which Flux object, of which kind, from which
parent.

The cluster path itself is the root unit; every Flux ``Kustomization`` a unit renders
becomes a child unit, and so does every ``HelmRelease``; ``GitRepository`` and
``HelmRepository`` objects become sources. A unit's key includes its kind, because Flux
keeps Kustomizations and HelmReleases apart (``dependsOn`` names the same kind), so
``apps/podinfo`` may be both. Splitting a render into these parts is pure.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from fleet.api import unit as unit_api
from fleet.core import drift, manifests
from fleet.models import (
    GitRepository,
    HelmRelease,
    HelmRepository,
    Kustomization,
    ManifestError,
    NamespacedName,
)

UnitKind = Literal["Kustomization", "HelmRelease"]
KUSTOMIZATION: UnitKind = "Kustomization"
HELMRELEASE: UnitKind = "HelmRelease"

ROOT_SOURCE = NamespacedName(unit_api.AGENT_NAMESPACE, "fleet")
"""The fleet repository the agent was started with."""
FLUX_ROOT_SOURCE_NAME = "flux-system"
"""A Flux-bootstrapped repository's own GitRepository; it means the fleet repository."""

_FLUX_GROUPS = (".toolkit.fluxcd.io",)


@dataclasses.dataclass(frozen=True, order=True)
class UnitKey:
    """Identity of a unit: kind, namespace and name of its Flux object."""

    kind: str
    namespace: str
    name: str

    @property
    def namespaced_name(self) -> NamespacedName:
        return NamespacedName(self.namespace, self.name)

    def describe(self) -> str:
        """``HelmRelease/apps/podinfo``, for messages that mix kinds."""
        return f"{self.kind}/{self.namespace}/{self.name}"

    def __str__(self) -> str:
        """``namespace/name``, as Flux names a dependency in its messages."""
        return f"{self.namespace}/{self.name}"


ROOT_KEY = UnitKey(KUSTOMIZATION, unit_api.AGENT_NAMESPACE, unit_api.ROOT_UNIT)


def root_kustomization(cluster_path: str, interval: datetime.timedelta) -> Kustomization:
    """The root unit: the cluster path, pruned, on the source's interval."""
    return Kustomization.model_validate(
        {
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
            "kind": "Kustomization",
            "metadata": {"name": ROOT_KEY.name, "namespace": ROOT_KEY.namespace},
            "spec": {
                "interval": f"{int(interval.total_seconds())}s",
                "path": cluster_path,
                "prune": True,
            },
        },
        by_alias=True,
    )


@dataclasses.dataclass(frozen=True)
class UnitDefinition:
    """A unit as Git defines it: its Flux object, who rendered it and from which file."""

    model: Kustomization | HelmRelease
    parent: UnitKey | None
    file: str
    manifest: Mapping[str, Any] | None = dataclasses.field(default=None, compare=False)
    """The Flux object as rendered (None for the root unit, which no file defines)."""

    # Cached: the agent asks for these in every reconcile of every unit (the definition
    # is frozen, so they cannot go stale).
    @functools.cached_property
    def kind(self) -> UnitKind:
        return "Kustomization" if isinstance(self.model, Kustomization) else "HelmRelease"

    @functools.cached_property
    def key(self) -> UnitKey:
        return UnitKey(self.kind, self.model.metadata.namespace, self.model.metadata.name)

    @functools.cached_property
    def depends_on(self) -> tuple[UnitKey, ...]:
        """Flux resolves ``dependsOn`` within the unit's own kind."""
        return tuple(UnitKey(self.kind, d.namespace, d.name) for d in self.model.dependency_keys)

    @property
    def kustomization(self) -> Kustomization:
        if not isinstance(self.model, Kustomization):
            raise TypeError(f"{self.key.describe()} is not a Kustomization")
        return self.model

    @property
    def release(self) -> HelmRelease:
        if not isinstance(self.model, HelmRelease):
            raise TypeError(f"{self.key.describe()} is not a HelmRelease")
        return self.model

    @property
    def interval(self) -> datetime.timedelta:
        return self.model.spec.interval

    @property
    def retry_interval(self) -> datetime.timedelta:
        """Kustomization's ``retryInterval``; a HelmRelease retries on its interval."""
        if isinstance(self.model, Kustomization):
            return self.model.spec.effective_retry_interval
        return self.model.spec.interval

    @property
    def suspend(self) -> bool:
        return self.model.spec.suspend

    @property
    def service_account_name(self) -> str | None:
        return self.model.spec.service_account_name

    @functools.cached_property
    def resource_name(self) -> str:
        return unit_resource_name(self.key)

    @functools.cached_property
    def digest(self) -> str:
        """A digest of the whole Flux object: a stall holds until it changes."""
        return drift.desired_digest(self.model.model_dump())

    @functools.cached_property
    def spec_digest(self) -> str:
        """A digest of the Flux object's spec, for caches that depend on it."""
        return drift.desired_digest(self.model.spec.model_dump(mode="json", by_alias=True))


def unit_resource_name(key: UnitKey) -> str:
    """The Unit object's name: ``root``, ``<ns>.<name>`` for a Kustomization (as before
    kinds existed), ``helmrelease.<ns>.<name>`` for a HelmRelease, so the two never clash."""
    plain = unit_api.unit_resource_name(key.namespace, key.name)
    return plain if key.kind == KUSTOMIZATION else f"{key.kind.lower()}.{plain}"


def key_of_unit(unit: Mapping[str, Any]) -> UnitKey:
    """The key a Unit object stands for, from its spec (kind defaults to Kustomization)."""
    spec = unit.get("spec") or {}
    return UnitKey(
        str(spec.get("kind") or KUSTOMIZATION), str(spec.get("namespace")), str(spec.get("name"))
    )


@dataclasses.dataclass(frozen=True)
class SplitRender:
    """A unit's render, sorted into what it applies and what it defines for the agent."""

    objects: list[dict[str, Any]]
    children: list[UnitDefinition]
    """Kustomization units."""
    sources: list[GitRepository]
    unsupported: list[str]
    """Flux objects the agent does not carry out (e.g. OCIRepository), named."""
    releases: list[UnitDefinition] = dataclasses.field(default_factory=list)
    """HelmRelease units."""
    helm_repositories: list[HelmRepository] = dataclasses.field(default_factory=list)

    @property
    def units(self) -> list[UnitDefinition]:
        """Every child unit, whatever its kind."""
        return [*self.children, *self.releases]


def split_render(
    parent: UnitDefinition, objects: Sequence[Mapping[str, Any]], *, default_namespace: str
) -> SplitRender:
    """Separate the Flux objects the agent carries out from the objects it applies.

    Raises ManifestError (naming file, object and field) for an invalid Kustomization,
    HelmRelease or source: a unit whose children cannot be read must not apply half of
    itself.
    """
    applied: list[dict[str, Any]] = []
    children: list[UnitDefinition] = []
    releases: list[UnitDefinition] = []
    sources: list[GitRepository] = []
    helm_repositories: list[HelmRepository] = []
    unsupported: list[str] = []
    path = parent.kustomization.spec.path
    for obj in objects:
        where = f"{path} ({manifests.ObjectKey.from_manifest(obj)})"
        if manifests.is_kustomization(obj):
            child = Kustomization.from_manifest(
                obj, file=where, default_namespace=default_namespace
            )
            if child.key == parent.key.namespaced_name or _is_self_reference(parent, child):
                continue
            children.append(UnitDefinition(child, parent.key, where, obj))
        elif manifests.is_helmrelease(obj):
            release = HelmRelease.from_manifest(
                obj, file=where, default_namespace=default_namespace
            )
            releases.append(UnitDefinition(release, parent.key, where, obj))
        elif manifests.is_gitrepository(obj):
            sources.append(
                GitRepository.from_manifest(obj, file=where, default_namespace=default_namespace)
            )
        elif manifests.is_helmrepository(obj):
            helm_repositories.append(
                HelmRepository.from_manifest(obj, file=where, default_namespace=default_namespace)
            )
        elif str(obj.get("apiVersion", "")).partition("/")[0].endswith(_FLUX_GROUPS):
            unsupported.append(f"{obj.get('kind')}/{(obj.get('metadata') or {}).get('name')}")
        else:
            applied.append(dict(obj))
    return SplitRender(applied, children, sources, unsupported, releases, helm_repositories)


def _is_self_reference(parent: UnitDefinition, child: Kustomization) -> bool:
    """Flux bootstrap's own Kustomization (``flux-system``) reconciles the cluster path
    itself: for the agent that is the root unit, not a child."""
    if parent.key != ROOT_KEY:
        return False
    reference = child.spec.source_ref
    same_source = reference is None or reference.name == FLUX_ROOT_SOURCE_NAME
    return same_source and _normalize(child.spec.path) == _normalize(parent.kustomization.spec.path)


def _normalize(path: str) -> str:
    return path.strip().lstrip("./").rstrip("/")


def check_unique_children(children: Sequence[UnitDefinition]) -> None:
    seen: dict[UnitKey, UnitDefinition] = {}
    for child in children:
        if child.key in seen:
            raise ManifestError(
                child.file,
                child.key.describe(),
                "metadata.name",
                f"defined twice (also in {seen[child.key].file})",
            )
        seen[child.key] = child
