"""Flux's ``HelmRepository`` (source.toolkit.fluxcd.io/v1): where charts are published.

An HTTP(S) repository serves an ``index.yaml`` listing every chart version; an OCI one
(``type: oci``) keeps each chart as an artifact in a registry.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, Literal

import pydantic

from fleet.models import common
from fleet.models.common import Duration, FluxModel, NamespacedName, PositiveDuration

API_GROUP = "source.toolkit.fluxcd.io"
KIND = "HelmRepository"
DEFAULT_INTERVAL = datetime.timedelta(minutes=1)
"""Flux leaves the interval optional; an index is small, so once a minute is cheap."""

_HTTP_SCHEMES = ("http://", "https://")
_OCI_SCHEME = "oci://"


class HelmRepositorySpec(FluxModel):
    """The repository's address, its kind, and how often its index is read."""

    UNSUPPORTED = frozenset({"cert_secret_ref", "access_from", "provider", "proxy_secret_ref"})
    """Client certificates, cross-namespace ACLs, cloud-provider logins and proxies."""

    url: str
    type: Literal["default", "oci"] = "default"
    interval: PositiveDuration | None = None
    timeout: Duration = datetime.timedelta(seconds=60)
    """Flux's default for fetching the index (or pulling one chart)."""
    secret_ref: common.LocalObjectReference | None = None
    """A Secret with ``username`` and ``password`` (basic auth, or the registry login)."""
    pass_credentials: pydantic.StrictBool = False
    """Send the credentials to chart URLs on other hosts than the index's, too."""
    insecure: pydantic.StrictBool = False
    """OCI only: plain HTTP to the registry."""
    suspend: pydantic.StrictBool = False
    cert_secret_ref: common.LocalObjectReference | None = None
    access_from: dict[str, Any] | None = None
    provider: str | None = None
    proxy_secret_ref: common.LocalObjectReference | None = None

    @pydantic.model_validator(mode="after")
    def _url_fits_type(self) -> HelmRepositorySpec:
        if self.type == "oci" and not self.url.startswith(_OCI_SCHEME):
            raise ValueError(f'url "{self.url}" of an OCI repository must start with oci://')
        if self.type == "default" and not self.url.startswith(_HTTP_SCHEMES):
            raise ValueError(
                f'url "{self.url}" must start with http:// or https:// (or set type: oci)'
            )
        return self

    @property
    def effective_interval(self) -> datetime.timedelta:
        return self.interval if self.interval is not None else DEFAULT_INTERVAL


class HelmRepository(FluxModel):
    """A Flux HelmRepository object as written in Git."""

    api_version: Literal["source.toolkit.fluxcd.io/v1", "source.toolkit.fluxcd.io/v1beta2"]
    kind: Literal["HelmRepository"]
    metadata: common.ObjectMeta
    spec: HelmRepositorySpec
    status: dict[str, Any] | None = None

    @property
    def key(self) -> NamespacedName:
        """``namespace/name``: how a HelmRelease's ``chart.spec.sourceRef`` names it."""
        return NamespacedName(self.metadata.namespace, self.metadata.name)

    @classmethod
    def from_manifest(
        cls, manifest: Mapping[str, Any], *, file: str, default_namespace: str
    ) -> HelmRepository:
        """Validate a manifest read from ``file``; raises :class:`ManifestError`."""
        return common.validate_manifest(
            cls, manifest, file=file, default_namespace=default_namespace
        )
