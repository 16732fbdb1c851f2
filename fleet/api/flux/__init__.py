"""Flux's own API objects as fleet serves them: status models in Flux's format and CRDs.

- :mod:`fleet.api.flux.conditions`: ``Condition``, Flux's condition types and reasons,
  ``set_condition`` / ``find_condition`` / ``remove_condition``.
- :mod:`fleet.api.flux.inventory`: ``status.inventory`` (``ResourceInventory``) and its
  ``<namespace>_<name>_<group>_<kind>`` ids.
- :mod:`fleet.api.flux.status`: ``KustomizationStatus``, ``HelmReleaseStatus``,
  ``GitRepositoryStatus``, ``HelmRepositoryStatus`` and their parts.
- :mod:`fleet.api.flux.crds`: the served kinds (``SERVED_KINDS``) and their CRDs.
- :mod:`fleet.api.flux.openapi`: pydantic JSON Schema to structural OpenAPI v3.

Pure: no I/O, no Kubernetes client. Import the modules and call through them.
"""

from fleet.api.flux.conditions import Condition, ConditionType, Reason
from fleet.api.flux.crds import SERVED_KINDS, ServedKind, custom_resource_definitions
from fleet.api.flux.inventory import ResourceInventory, ResourceRef
from fleet.api.flux.status import (
    Artifact,
    GitRepositoryStatus,
    HelmReleaseSnapshot,
    HelmReleaseStatus,
    HelmRepositoryStatus,
    KustomizationStatus,
)

__all__ = [
    "SERVED_KINDS",
    "Artifact",
    "Condition",
    "ConditionType",
    "GitRepositoryStatus",
    "HelmReleaseSnapshot",
    "HelmReleaseStatus",
    "HelmRepositoryStatus",
    "KustomizationStatus",
    "Reason",
    "ResourceInventory",
    "ResourceRef",
    "ServedKind",
    "custom_resource_definitions",
]
