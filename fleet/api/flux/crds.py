"""CustomResourceDefinitions of the Flux kinds fleet serves, generated from fleet's models.

Group, version, kind, plural, short names, categories and printer columns are Flux's own
(from the kubebuilder markers of kustomize-controller ``api/v1``, helm-controller
``api/v2`` and source-controller ``api/v1``), so ``kubectl get ks`` and the ``flux`` CLI
find the objects where Flux keeps them. The schemas are fleet's: the spec from
``fleet.models``, the status from :mod:`fleet.api.flux.status`. Each kind is one
:class:`ServedKind` in :data:`SERVED_KINDS`; serving another kind is one more entry.

Labels: Flux labels its CRDs ``app.kubernetes.io/part-of: flux``. No command of the flux
CLI that reads objects needs that label, but ``flux uninstall`` deletes every CRD that
carries it (and with a CRD every object of its kind), so fleet's CRDs say
``app.kubernetes.io/part-of: fleet`` and ``app.kubernetes.io/managed-by: fleet``; ``flux
install`` then warns that another tool manages these CRDs. See
docs/flux-cli-compatibility.md.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Final

import pydantic

from fleet.api.flux import openapi, status
from fleet.models import gitrepository, helmrelease, helmrepository, kustomization

PART_OF_LABEL: Final = "app.kubernetes.io/part-of"
MANAGED_BY_LABEL: Final = "app.kubernetes.io/managed-by"
COMPONENT_LABEL: Final = "app.kubernetes.io/component"
FLEET: Final = "fleet"

_AGE: Final = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
_READY: Final = {
    "name": "Ready",
    "type": "string",
    "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
}
_STATUS: Final = {
    "name": "Status",
    "type": "string",
    "jsonPath": '.status.conditions[?(@.type=="Ready")].message',
}
_URL: Final = {"name": "URL", "type": "string", "jsonPath": ".spec.url"}


@dataclasses.dataclass(frozen=True)
class ServedKind:
    """One Flux kind fleet serves: its API names, its models and how kubectl lists it."""

    group: str
    version: str
    kind: str
    plural: str
    short_names: tuple[str, ...]
    categories: tuple[str, ...]
    spec_model: type[pydantic.BaseModel]
    status_model: type[pydantic.BaseModel]
    component: str
    """The Flux controller that serves this kind upstream (``app.kubernetes.io/component``)."""
    printer_columns: tuple[dict[str, str], ...] = (_AGE, _READY, _STATUS)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{self.group}"

    @property
    def singular(self) -> str:
        return self.kind.lower()


KUSTOMIZATION: Final = ServedKind(
    group=kustomization.API_GROUP,
    version="v1",
    kind=kustomization.KIND,
    plural="kustomizations",
    short_names=("ks",),
    categories=("all", "fluxcd", "fluxcd-appliers"),
    spec_model=kustomization.KustomizationSpec,
    status_model=status.KustomizationStatus,
    component="kustomize-controller",
)
HELM_RELEASE: Final = ServedKind(
    group=helmrelease.API_GROUP,
    version="v2",
    kind=helmrelease.KIND,
    plural="helmreleases",
    short_names=("hr",),
    categories=("all", "fluxcd", "fluxcd-appliers"),
    spec_model=helmrelease.HelmReleaseSpec,
    status_model=status.HelmReleaseStatus,
    component="helm-controller",
)
GIT_REPOSITORY: Final = ServedKind(
    group=gitrepository.API_GROUP,
    version="v1",
    kind=gitrepository.KIND,
    plural="gitrepositories",
    short_names=("gitrepo",),
    categories=("all", "fluxcd", "fluxcd-sources"),
    spec_model=gitrepository.GitRepositorySpec,
    status_model=status.GitRepositoryStatus,
    component="source-controller",
    printer_columns=(_URL, _AGE, _READY, _STATUS),
)
HELM_REPOSITORY: Final = ServedKind(
    group=helmrepository.API_GROUP,
    version="v1",
    kind=helmrepository.KIND,
    plural="helmrepositories",
    short_names=("helmrepo",),
    categories=("all", "fluxcd", "fluxcd-sources"),
    spec_model=helmrepository.HelmRepositorySpec,
    status_model=status.HelmRepositoryStatus,
    component="source-controller",
    printer_columns=(_URL, _AGE, _READY, _STATUS),
)

SERVED_KINDS: Final[tuple[ServedKind, ...]] = (
    KUSTOMIZATION,
    HELM_RELEASE,
    GIT_REPOSITORY,
    HELM_REPOSITORY,
)
"""Every kind the agent serves, in the order its CRDs are installed."""


def served_kind(api_version: str, kind: str) -> ServedKind | None:
    """The served kind of an object's ``apiVersion`` and ``kind``, if fleet serves it."""
    return next((k for k in SERVED_KINDS if k.api_version == api_version and k.kind == kind), None)


def object_schema(served: ServedKind) -> dict[str, Any]:
    """The ``openAPIV3Schema`` of a served kind: Kubernetes' envelope, fleet's spec and status."""
    return {
        "description": f"{served.kind} ({served.api_version}), served by fleet's agent.",
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": openapi.structural_schema(served.spec_model),
            "status": openapi.structural_schema(served.status_model),
        },
    }


def custom_resource_definition(served: ServedKind) -> dict[str, Any]:
    """The CustomResourceDefinition of one served kind, ready for server-side apply."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": served.crd_name,
            "labels": {
                PART_OF_LABEL: FLEET,
                MANAGED_BY_LABEL: FLEET,
                COMPONENT_LABEL: served.component,
            },
        },
        "spec": {
            "group": served.group,
            "names": {
                "kind": served.kind,
                "listKind": f"{served.kind}List",
                "plural": served.plural,
                "singular": served.singular,
                "shortNames": list(served.short_names),
                "categories": list(served.categories),
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": served.version,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [dict(c) for c in served.printer_columns],
                    "schema": {"openAPIV3Schema": object_schema(served)},
                }
            ],
        },
    }


def custom_resource_definitions(
    kinds: tuple[ServedKind, ...] = SERVED_KINDS,
) -> list[dict[str, Any]]:
    """The CRDs of ``kinds`` (all served kinds by default), in install order."""
    return [custom_resource_definition(k) for k in kinds]
