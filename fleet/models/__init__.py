"""Typed models of the Git-side API: Flux ``Kustomization``, ``HelmRelease`` and their
sources ``GitRepository`` and ``HelmRepository``.

Import the modules (``from fleet.models import kustomization``) or the names below.
"""

from fleet.models.common import NamespacedName
from fleet.models.duration import DurationError, format_duration, parse_duration
from fleet.models.errors import ManifestError
from fleet.models.gitrepository import GitRepository
from fleet.models.helmrelease import HelmRelease, HelmReleaseSpec
from fleet.models.helmrepository import HelmRepository
from fleet.models.kustomization import Kustomization, KustomizationSpec

__all__ = [
    "DurationError",
    "GitRepository",
    "HelmRelease",
    "HelmReleaseSpec",
    "HelmRepository",
    "Kustomization",
    "KustomizationSpec",
    "ManifestError",
    "NamespacedName",
    "format_duration",
    "parse_duration",
]
