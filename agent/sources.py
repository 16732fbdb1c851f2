"""The Git sources the agent follows: the fleet repository, and every ``GitRepository``
its units define. Fetches run in worker threads (pygit2 blocks); each revision is
exported once into a checkout that every unit of that source renders from.
"""

from __future__ import annotations

import base64
import dataclasses
import logging
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio

from fleet.core import drift
from fleet.kube import KubeClient
from fleet.models import GitRepository, NamespacedName
from fleet.render import kustomize
from fleet.source import FetchResult, GitAuth, GitRef, GitSource, Revision, SourceError

log = logging.getLogger(__name__)

CHECKOUTS_KEPT = 3
"""Revisions kept on disk per source: the current one and a couple a slow unit may still read."""


@dataclasses.dataclass
class TrackedSource:
    key: NamespacedName
    git: GitSource
    interval: float
    definition: str
    """Digest of what defined it, to notice a changed GitRepository."""
    error: str | None = None
    """Why the last fetch failed; None after a successful one."""
    fetched_at: float | None = None
    last_result: FetchResult | None = None
    revision_at: float | None = None
    """When the current revision was first fetched (a source's artifact time)."""
    manifest: dict[str, Any] | None = None
    """The GitRepository as its definition wrote it; None for the fleet repository."""

    @property
    def revision(self) -> Revision | None:
        return self.git.last_revision()

    @property
    def url(self) -> str:
        return self.git.url.redacted


class Sources:
    def __init__(self, work_dir: Path, client: KubeClient) -> None:
        self._work_dir = work_dir
        self._client = client
        self._tracked: dict[NamespacedName, TrackedSource] = {}
        self._export_locks: dict[Path, anyio.Lock] = {}
        self._unsafe: dict[Path, kustomize.RenderError] = {}
        """Checkouts holding a symlink that leaves the tree: no unit may render them."""

    def __iter__(self) -> Iterator[TrackedSource]:
        return iter(list(self._tracked.values()))

    def get(self, key: NamespacedName) -> TrackedSource | None:
        return self._tracked.get(key)

    def track(
        self, key: NamespacedName, url: str, ref: GitRef, auth: GitAuth, interval: float
    ) -> TrackedSource:
        """Start following a source, or update it when its definition changed."""
        definition = drift.desired_digest(
            {"url": url, "ref": ref.model_dump(), "auth": auth.secret_values, "interval": interval}
        )
        existing = self._tracked.get(key)
        if existing and existing.definition == definition:
            return existing
        git = GitSource(url, ref, auth, cache_dir=self._work_dir / "mirrors")
        tracked = TrackedSource(key, git, interval, definition)
        self._tracked[key] = tracked
        return tracked

    def forget(self, key: NamespacedName) -> None:
        self._tracked.pop(key, None)

    async def define(self, repository: GitRepository) -> TrackedSource:
        """Track a GitRepository object, reading its secretRef from the cluster.

        Raises SourceError (or KubeError) when it cannot be followed, with the reason.
        """
        spec = repository.spec
        auth = GitAuth.none()
        if spec.secret_ref is not None:
            secret = await self._client.get(
                "v1", "Secret", spec.secret_ref.name, repository.metadata.namespace
            )
            if secret is None:
                raise SourceError(
                    f"Secret {repository.metadata.namespace}/{spec.secret_ref.name} not found",
                    url=spec.url,
                )
            data = {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
            auth = GitAuth.from_secret_data(data)
        ref = GitRef(**spec.effective_ref.model_dump(exclude_none=True))
        tracked = self.track(repository.key, spec.url, ref, auth, spec.interval.total_seconds())
        tracked.manifest = repository.model_dump(mode="json", by_alias=True, exclude_none=True)
        return tracked

    async def fetch(self, key: NamespacedName) -> FetchResult | None:
        """Fetch one source; None (with ``error`` set) when it failed."""
        tracked = self._tracked[key]
        try:
            result = await anyio.to_thread.run_sync(tracked.git.fetch)
        except SourceError as error:
            tracked.error = str(error)
            tracked.fetched_at = time.time()
            log.warning("fetch of %s failed: %s", tracked.url, error)
            return None
        tracked.error = None
        tracked.fetched_at = time.time()
        if result.changed or tracked.revision_at is None:
            tracked.revision_at = tracked.fetched_at
        tracked.last_result = result
        return result

    async def checkout(self, key: NamespacedName, revision: Revision) -> Path:
        """The exported tree of ``revision``, written and verified once, shared by all units.

        Raises RenderError when the tree holds a symlink pointing outside it.
        """
        tracked = self._tracked[key]
        folder = self._work_dir / "checkouts" / tracked.git.url.cache_key
        path = folder / revision.commit
        lock = self._export_locks.setdefault(path, anyio.Lock())
        async with lock:
            if not path.exists():
                await anyio.to_thread.run_sync(tracked.git.export, revision, path)
                await anyio.to_thread.run_sync(_prune_checkouts, folder, path)
                self._unsafe.pop(path, None)
                try:
                    await anyio.to_thread.run_sync(kustomize.verify_checkout, path)
                except kustomize.RenderError as error:
                    self._unsafe[path] = error
        if path in self._unsafe:
            raise self._unsafe[path]
        return path


def _prune_checkouts(folder: Path, keep: Path) -> None:
    checkouts = sorted(
        (p for p in folder.iterdir() if p.is_dir() and p != keep),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    for old in checkouts[CHECKOUTS_KEPT - 1 :]:
        shutil.rmtree(old, ignore_errors=True)
