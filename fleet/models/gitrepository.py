"""Flux's ``GitRepository`` (source.toolkit.fluxcd.io/v1): where a unit's tree comes from."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, Literal

import pydantic

from fleet.models import common
from fleet.models.common import Duration, FluxModel, NamespacedName, PositiveDuration

API_GROUP = "source.toolkit.fluxcd.io"
KIND = "GitRepository"
DEFAULT_BRANCH = "master"
"""Flux's default when ``ref`` is unset; it does not look up the remote's HEAD."""

_URL_SCHEMES = ("http://", "https://", "ssh://", "git://", "file://")


class GitRef(FluxModel):
    """Which revision to check out; the most specific field set wins.

    Precedence, as in Flux: ``commit``, then ``name``, then ``semver``, then ``tag``,
    then ``branch``.
    """

    branch: str | None = None
    tag: str | None = None
    semver: str | None = None
    name: str | None = None
    """A full reference such as ``refs/heads/main`` or ``refs/pull/42/head``."""
    commit: str | None = None

    @property
    def chosen(self) -> tuple[Literal["commit", "name", "semver", "tag", "branch"], str]:
        """The field that decides the revision and its value."""
        if self.commit:
            return ("commit", self.commit)
        if self.name:
            return ("name", self.name)
        if self.semver:
            return ("semver", self.semver)
        if self.tag:
            return ("tag", self.tag)
        return ("branch", self.branch or DEFAULT_BRANCH)


class GitRepositorySpec(FluxModel):
    """Where the repository is, which revision to follow and how often to look."""

    UNSUPPORTED = frozenset(
        {
            "ignore",
            "include",
            "recurse_submodules",
            "verify",
            "proxy_secret_ref",
            "provider",
            "sparse_checkout",
        }
    )
    """Fleet checks out a plain tree: no .sourceignore filtering, submodules,
    signature verification, proxies, cloud-provider auth or sparse checkouts yet."""

    url: str
    secret_ref: common.LocalObjectReference | None = None
    """A Secret with ``username``/``password``, ``bearerToken`` or ``identity``/``known_hosts``."""
    interval: PositiveDuration
    timeout: Duration = datetime.timedelta(seconds=60)
    """Flux's default for one Git operation."""
    ref: GitRef | None = None
    suspend: pydantic.StrictBool = False
    ignore: str | None = None
    include: list[dict[str, Any]] = pydantic.Field(default_factory=list)
    recurse_submodules: pydantic.StrictBool = False
    verify: dict[str, Any] | None = None
    proxy_secret_ref: common.LocalObjectReference | None = None
    provider: str | None = None
    sparse_checkout: list[str] = pydantic.Field(default_factory=list)

    @pydantic.field_validator("url")
    @classmethod
    def _known_scheme(cls, url: str) -> str:
        if not url.startswith(_URL_SCHEMES):
            raise ValueError(
                f'unsupported URL "{url}": must start with http://, https://, ssh://, git:// or file://'
            )
        return url

    @property
    def effective_ref(self) -> GitRef:
        """``ref``, or Flux's default: the ``master`` branch."""
        return self.ref if self.ref is not None else GitRef(branch=DEFAULT_BRANCH)


class GitRepository(FluxModel):
    """A Flux GitRepository object as written in Git."""

    api_version: Literal["source.toolkit.fluxcd.io/v1", "source.toolkit.fluxcd.io/v1beta2"]
    kind: Literal["GitRepository"]
    metadata: common.ObjectMeta
    spec: GitRepositorySpec
    status: dict[str, Any] | None = None

    @property
    def key(self) -> NamespacedName:
        """``namespace/name``: how a Kustomization's ``sourceRef`` refers to this source."""
        return NamespacedName(self.metadata.namespace, self.metadata.name)

    @classmethod
    def from_manifest(
        cls, manifest: Mapping[str, Any], *, file: str, default_namespace: str
    ) -> GitRepository:
        """Validate a manifest read from ``file``; raises :class:`ManifestError`."""
        return common.validate_manifest(
            cls, manifest, file=file, default_namespace=default_namespace
        )
