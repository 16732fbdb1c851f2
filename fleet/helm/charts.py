"""Where charts come from: HelmRepository indexes over HTTP(S), OCI registries, and chart
folders in a Git checkout. The I/O edge of releases.

An HTTP repository's ``index.yaml`` is read at most once per the repository's interval;
the chosen package is downloaded once, checked against the index's digest, and kept
under ``<cache>/<name>-<version>-<digest>.tgz``. OCI charts are pulled by ``helm pull``.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import logging
import shutil
import tarfile
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

import anyio
import httpx
import yaml

from fleet.core import drift
from fleet.helm import index
from fleet.helm.cli import Helm, HelmError
from fleet.kube import KubeClient, KubeError
from fleet.models import HelmRepository, NamespacedName
from fleet.models.helmrepository import HelmRepositorySpec

log = logging.getLogger(__name__)

MAX_INDEX_BYTES = 64 * 1024 * 1024
MAX_PACKAGE_BYTES = 32 * 1024 * 1024
"""Well above real charts (a few hundred KiB); a bound so a wrong URL cannot fill a disk."""


class ChartSourceError(Exception):
    """A chart cannot be had: repository unknown or unreachable, no matching version..."""


@dataclasses.dataclass(frozen=True)
class ChartArtifact:
    """A chart ready for helm: a package file or a chart folder, with its identity."""

    path: Path
    name: str
    version: str
    digest: str
    """``sha256:...`` of the package (or of the folder's files): what was released."""
    source: str
    """``HelmRepository/ns/name`` or ``GitRepository/ns/name``, for messages."""

    def read_file(self, relative: str) -> str | None:
        """A file inside the chart (``valuesFiles``); None when it does not exist."""
        if self.path.is_dir():
            target = (self.path / relative).resolve()
            if not target.is_relative_to(self.path.resolve()) or not target.is_file():
                return None
            return target.read_text()
        wanted = PurePosixPath(relative)
        with tarfile.open(self.path) as archive:
            for member in archive.getmembers():
                parts = PurePosixPath(member.name).parts
                if member.isfile() and len(parts) > 1 and PurePosixPath(*parts[1:]) == wanted:
                    extracted = archive.extractfile(member)
                    return extracted.read().decode() if extracted else None
        return None


@dataclasses.dataclass
class TrackedRepository:
    """One HelmRepository as the agent follows it."""

    repository: HelmRepository
    definition: str
    username: str | None = None
    password: str | None = None
    charts: dict[str, list[index.ChartVersion]] | None = None
    fetched_at: float = 0.0
    error: str | None = None
    lock: anyio.Lock = dataclasses.field(default_factory=anyio.Lock)

    @property
    def spec(self) -> HelmRepositorySpec:
        return self.repository.spec

    @property
    def label(self) -> str:
        key = self.repository.key
        return f"HelmRepository/{key.namespace}/{key.name}"


class ChartRepositories:
    """Every HelmRepository the agent's units define, with their index and package caches."""

    def __init__(self, cache_dir: Path, client: KubeClient, helm: Helm) -> None:
        self._cache_dir = cache_dir
        self._client = client
        self._helm = helm
        self._tracked: dict[NamespacedName, TrackedRepository] = {}

    def get(self, key: NamespacedName) -> TrackedRepository | None:
        return self._tracked.get(key)

    async def define(self, repository: HelmRepository) -> None:
        """Follow a HelmRepository (again, when its definition changed); reads its
        ``secretRef``. Raises ChartSourceError when the Secret is missing."""
        username = password = None
        secret_ref = repository.spec.secret_ref
        if secret_ref is not None:
            namespace = repository.metadata.namespace
            try:
                secret = await self._client.get("v1", "Secret", secret_ref.name, namespace)
            except KubeError as error:
                raise ChartSourceError(f"{error.message}") from error
            if secret is None:
                raise ChartSourceError(f"Secret {namespace}/{secret_ref.name} not found")
            data = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
            username, password = data.get("username"), data.get("password")
        definition = drift.desired_digest(
            {"spec": repository.spec.model_dump(mode="json"), "auth": [username, password]}
        )
        existing = self._tracked.get(repository.key)
        if existing is not None and existing.definition == definition:
            return
        self._tracked[repository.key] = TrackedRepository(
            repository, definition, username, password
        )

    async def resolve(self, key: NamespacedName, chart: str, constraint: str) -> ChartArtifact:
        """The newest package of ``chart`` inside ``constraint``, downloaded; raises
        ChartSourceError saying why not."""
        tracked = self._tracked.get(key)
        if tracked is None:
            raise ChartSourceError(f"HelmRepository {key} not found")
        if tracked.spec.suspend:
            raise ChartSourceError(f"{tracked.label} is suspended")
        if tracked.spec.type == "oci":
            return await self._pull_oci(tracked, chart, constraint)
        async with tracked.lock:
            await self._refresh_index(tracked)
        assert tracked.charts is not None
        try:
            versions = tracked.charts.get(chart, [])
            chosen = index.select(versions, chart, constraint, tracked.spec.url)
        except index.ChartIndexError as error:
            raise ChartSourceError(str(error)) from error
        return await self._download(tracked, chosen)

    async def _refresh_index(self, tracked: TrackedRepository) -> None:
        age = time.monotonic() - tracked.fetched_at
        if tracked.charts is not None and age < tracked.spec.effective_interval.total_seconds():
            return
        url = tracked.spec.url.rstrip("/") + "/index.yaml"
        try:
            body = await self._get(tracked, url, MAX_INDEX_BYTES)
            tracked.charts = index.parse_index(body, tracked.spec.url)
        except (ChartSourceError, index.ChartIndexError) as error:
            tracked.error = str(error)
            if tracked.charts is None:
                raise ChartSourceError(f"{tracked.label}: {error}") from error
            # A stale index still names packages that exist; use it and say so.
            log.warning("%s: keeping the previous index: %s", tracked.label, error)
            return
        tracked.error = None
        tracked.fetched_at = time.monotonic()

    async def _get(self, tracked: TrackedRepository, url: str, limit: int) -> bytes:
        auth = None
        if tracked.username is not None and tracked.password is not None:
            same_host = httpx.URL(url).host == httpx.URL(tracked.spec.url).host
            if same_host or tracked.spec.pass_credentials:
                auth = httpx.BasicAuth(tracked.username, tracked.password)
        timeout = tracked.spec.timeout.total_seconds()
        try:
            async with (
                httpx.AsyncClient(timeout=timeout, follow_redirects=True) as http,
                http.stream("GET", url, auth=auth) as response,
            ):
                if response.status_code != 200:
                    raise ChartSourceError(f"GET {url}: HTTP {response.status_code}")
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > limit:
                        raise ChartSourceError(f"GET {url}: larger than {limit} bytes")
                    chunks.append(chunk)
                return b"".join(chunks)
        except httpx.HTTPError as error:
            raise ChartSourceError(f"GET {url}: {error or type(error).__name__}") from error

    async def _download(
        self, tracked: TrackedRepository, chosen: index.ChartVersion
    ) -> ChartArtifact:
        folder = self._cache_dir / _safe(str(tracked.repository.key))
        tag = chosen.digest[:16] or "nodigest"
        path = folder / f"{_safe(chosen.name)}-{_safe(chosen.version)}-{tag}.tgz"
        if not path.exists():
            url = chosen.package_url(tracked.spec.url)
            body = await self._get(tracked, url, MAX_PACKAGE_BYTES)
            actual = hashlib.sha256(body).hexdigest()
            if chosen.digest and actual != chosen.digest:
                raise ChartSourceError(
                    f"{url}: digest sha256:{actual} differs from the index's {chosen.digest}"
                )
            folder.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(".partial")
            partial.write_bytes(body)
            partial.replace(path)
        digest = "sha256:" + (chosen.digest or hashlib.sha256(path.read_bytes()).hexdigest())
        return ChartArtifact(path, chosen.name, chosen.version, digest, tracked.label)

    async def _pull_oci(
        self, tracked: TrackedRepository, chart: str, constraint: str
    ) -> ChartArtifact:
        reference = f"{tracked.spec.url.rstrip('/')}/{chart}"
        folder = self._cache_dir / _safe(str(tracked.repository.key))
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder) as scratch:
            try:
                pulled = await self._helm.pull(
                    reference,
                    constraint or "*",
                    Path(scratch),
                    username=tracked.username,
                    password=tracked.password,
                    plain_http=tracked.spec.insecure,
                    timeout=tracked.spec.timeout.total_seconds(),
                )
            except HelmError as error:
                raise ChartSourceError(f"{tracked.label}: {error.message}") from error
            body = pulled.read_bytes()
            name, version = _chart_identity(pulled)
            target = folder / pulled.name
            shutil.move(pulled, target)
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        return ChartArtifact(target, name or chart, version, digest, tracked.label)


def chart_from_directory(
    checkout: Path, chart_path: str, source: str, *, build: str | None = None
) -> ChartArtifact:
    """A chart folder inside a Git checkout; ``build`` (a commit) is appended to its version
    as ``+<build>`` (Flux's ``reconcileStrategy: Revision``). Raises ChartSourceError."""
    root = checkout.resolve()
    folder = (checkout / chart_path).resolve()
    if not folder.is_relative_to(root):
        raise ChartSourceError(f"chart path {chart_path} escapes the repository")
    chart_file = folder / "Chart.yaml"
    if not chart_file.is_file():
        raise ChartSourceError(f"{source}: no Chart.yaml in {chart_path}")
    try:
        metadata = yaml.safe_load(chart_file.read_text()) or {}
    except yaml.YAMLError as error:
        raise ChartSourceError(f"{source}: {chart_path}/Chart.yaml: {error}") from error
    if not isinstance(metadata, Mapping) or not metadata.get("name") or not metadata.get("version"):
        raise ChartSourceError(f"{source}: {chart_path}/Chart.yaml needs a name and a version")
    version = str(metadata["version"])
    if build:
        version = f"{version}+{build}"
    return ChartArtifact(folder, str(metadata["name"]), version, _folder_digest(folder), source)


def _folder_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode() + b"\0")
        digest.update(path.read_bytes())
    return "sha256:" + digest.hexdigest()


def _chart_identity(package: Path) -> tuple[str | None, str]:
    """Name and version from a package's Chart.yaml (the file name is ambiguous)."""
    with tarfile.open(package) as archive:
        for member in archive.getmembers():
            parts = PurePosixPath(member.name).parts
            if len(parts) == 2 and parts[1] == "Chart.yaml":
                extracted = archive.extractfile(member)
                metadata = yaml.safe_load(extracted.read()) if extracted else {}
                return str(metadata.get("name")), str(metadata.get("version"))
    raise ChartSourceError(f"{package.name} holds no Chart.yaml")


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.+" else "_" for c in text)
