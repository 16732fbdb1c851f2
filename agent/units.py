"""Reconcile units as the agent tracks them: which Kustomization, from which parent.

The cluster path itself is the root unit; every Flux ``Kustomization`` a unit renders
becomes a child unit, every ``GitRepository`` a source. Splitting a render into these
parts is pure.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping, Sequence
from typing import Any

from fleet.api import unit as unit_api
from fleet.core import manifests
from fleet.models import GitRepository, Kustomization, ManifestError, NamespacedName

ROOT_KEY = NamespacedName(unit_api.AGENT_NAMESPACE, unit_api.ROOT_UNIT)
ROOT_SOURCE = NamespacedName(unit_api.AGENT_NAMESPACE, "fleet")
"""The fleet repository the agent was started with."""
FLUX_ROOT_SOURCE_NAME = "flux-system"
"""A Flux-bootstrapped repository's own GitRepository; it means the fleet repository."""

_FLUX_GROUPS = (".toolkit.fluxcd.io",)


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
    """A unit as Git defines it: its Kustomization, who rendered it and from which file."""

    kustomization: Kustomization
    parent: NamespacedName | None
    file: str

    @property
    def key(self) -> NamespacedName:
        return self.kustomization.key

    @property
    def depends_on(self) -> list[NamespacedName]:
        return self.kustomization.dependency_keys

    @property
    def resource_name(self) -> str:
        return unit_api.unit_resource_name(self.key.namespace, self.key.name)


@dataclasses.dataclass(frozen=True)
class SplitRender:
    """A unit's render, sorted into what it applies and what it defines for the agent."""

    objects: list[dict[str, Any]]
    children: list[UnitDefinition]
    sources: list[GitRepository]
    unsupported: list[str]
    """Flux objects the agent does not carry out yet (e.g. HelmRelease), named."""


def split_render(
    parent: UnitDefinition, objects: Sequence[Mapping[str, Any]], *, default_namespace: str
) -> SplitRender:
    """Separate the Flux objects the agent carries out from the objects it applies.

    Raises ManifestError (naming file, object and field) for an invalid Kustomization or
    GitRepository: a unit whose children cannot be read must not apply half of itself.
    """
    applied: list[dict[str, Any]] = []
    children: list[UnitDefinition] = []
    sources: list[GitRepository] = []
    unsupported: list[str] = []
    for obj in objects:
        where = f"{parent.kustomization.spec.path} ({manifests.ObjectKey.from_manifest(obj)})"
        if manifests.is_kustomization(obj):
            child = Kustomization.from_manifest(
                obj, file=where, default_namespace=default_namespace
            )
            if child.key == parent.key or _is_self_reference(parent, child):
                continue
            children.append(UnitDefinition(child, parent.key, where))
        elif manifests.is_gitrepository(obj):
            sources.append(
                GitRepository.from_manifest(obj, file=where, default_namespace=default_namespace)
            )
        elif str(obj.get("apiVersion", "")).partition("/")[0].endswith(_FLUX_GROUPS):
            unsupported.append(f"{obj.get('kind')}/{(obj.get('metadata') or {}).get('name')}")
        else:
            applied.append(dict(obj))
    return SplitRender(applied, children, sources, unsupported)


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
    seen: dict[NamespacedName, UnitDefinition] = {}
    for child in children:
        if child.key in seen:
            raise ManifestError(
                child.file,
                f"Kustomization/{child.key}",
                "metadata.name",
                f"defined twice (also in {seen[child.key].file})",
            )
        seen[child.key] = child
