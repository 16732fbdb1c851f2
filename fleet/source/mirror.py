"""``RefMirror``: many refs of one remote at once, read and moved, for the hub's promoter.

``GitSource`` follows one ref for an agent. The promoter needs the source branch, every
wave ref and the records branch in one round trip, files at a commit (``fleet.yaml``), and
to move a wave ref to a commit it already fetched, forward or (rolling back) backward. The
mirror is a bare cache repository like ``GitSource``'s, one per URL, locked across threads
and processes.

A move checks first that the ref still points where the caller decided from (another hub
replica may have moved it); libgit2 has no ``--force-with-lease``, so between that check
and the push a small window remains, which the hub's single promoter lease closes.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

import pygit2

from fleet.source import errors, locking
from fleet.source._libgit2 import SourceCallbacks, ensure_network_timeouts, map_exceptions
from fleet.source.auth import GitAuth
from fleet.source.push import PushCallbacks, PushRejected, lost_race
from fleet.source.urls import GitURL, Transport, parse_git_url

_MOVE_REF = "refs/fleet/move"


class RefMoved(errors.SourceUnavailable):
    """The ref no longer points where the caller expected: someone else moved it."""


class RefMirror:
    """Several refs of one remote in a local bare mirror; see the module docstring."""

    def __init__(self, url: str, auth: GitAuth | None = None, *, cache_dir: Path) -> None:
        self.auth = auth or GitAuth.none()
        try:
            self.url: GitURL = parse_git_url(url)
        except ValueError as error:
            raise errors.SourceConfigError(str(error), ref="refs") from None
        if self.url.transport is Transport.SSH and not self.auth.known_hosts:
            raise errors.SourceConfigError(
                "SSH needs known_hosts to verify the server", url=self.url.redacted, ref="refs"
            )
        self.cache_dir = cache_dir
        self.repo_path = cache_dir / f"{self.url.cache_key}-refs.git"

    def fetch(self, names: Sequence[str], prefixes: Sequence[str] = ()) -> dict[str, str]:
        """Fetch the refs named and every ref under ``prefixes``; ``{ref: commit}`` of those
        the server has. Refs under the prefixes that the server dropped are dropped here."""
        ensure_network_timeouts()
        with self._locked(), self._translated("refs"), self._repo() as repo:
            remote = repo.remotes.create_anonymous(self.url.text)
            callbacks = SourceCallbacks(self.auth, self.url, "refs")
            remote.connect(callbacks=callbacks)
            advertised = {
                head.name: str(head.oid)
                for head in remote.list_heads(connect=False)
                if head.name and not head.name.endswith("^{}")
            }
            wanted = {
                name: target
                for name, target in advertised.items()
                if name in names or any(name.startswith(prefix) for prefix in prefixes)
            }
            if wanted:
                remote.fetch([f"+{name}:{name}" for name in sorted(wanted)], callbacks=callbacks)
            self._check_host_verified(callbacks, "refs")
            for reference in list(repo.references):
                gone = reference not in wanted and (
                    reference in names or any(reference.startswith(p) for p in prefixes)
                )
                if gone:
                    repo.references.delete(reference)
            resolved: dict[str, str] = {}
            for name in wanted:
                try:
                    resolved[name] = str(repo.references[name].peel(pygit2.Commit).id)
                except (pygit2.GitError, ValueError, KeyError):
                    continue  # a ref to a tree or blob is nothing a wave can follow
            return resolved

    def read_file(self, commit: str, path: str) -> bytes | None:
        """A file of ``commit`` (already fetched), or None if the commit has no such file."""
        with self._locked(), self._translated(commit, network=False), self._repo() as repo:
            found = repo.get(commit)
            if not isinstance(found, pygit2.Commit):
                raise errors.RevisionNotFound(
                    f"commit {commit} is not in the cache", url=self.url.redacted, ref=commit
                )
            try:
                entry = found.tree[path]
            except KeyError:
                return None
            blob = repo.get(entry.id)
            return blob.data if isinstance(blob, pygit2.Blob) else None

    def resolve(self, text: str) -> str | None:
        """The full SHA of a commit given by (abbreviated) SHA or ref name, if fetched."""
        with self._locked(), self._translated(text, network=False), self._repo() as repo:
            try:
                found = repo.revparse_single(text)
                return str(found.peel(pygit2.Commit).id)
            except (KeyError, ValueError, pygit2.GitError):
                return None

    def move(self, ref: str, commit: str, *, expected: str | None, force: bool = False) -> None:
        """Point the remote ``ref`` at ``commit`` (which must have been fetched).

        Raises ``RefMoved`` when the remote ref is not at ``expected`` (None: absent) or a
        non-forced move is not a fast-forward, ``PushRejected`` when the server refuses.
        """
        ensure_network_timeouts()
        with self._locked(), self._translated(ref), self._repo() as repo:
            if not isinstance(repo.get(commit), pygit2.Commit):
                raise errors.RevisionNotFound(
                    f"commit {commit} is not in the cache", url=self.url.redacted, ref=ref
                )
            listing = repo.remotes.create_anonymous(self.url.text)
            checked = SourceCallbacks(self.auth, self.url, ref)
            listing.connect(callbacks=checked)
            current = {h.name: str(h.oid) for h in listing.list_heads(connect=False)}.get(ref)
            self._check_host_verified(checked, ref)
            if current != expected:
                raise RefMoved(
                    f"{ref} is at {current or 'nothing'}, not at {expected or 'nothing'}",
                    url=self.url.redacted,
                    ref=ref,
                )
            if current == commit:
                return
            repo.references.create(_MOVE_REF, commit, force=True)
            spec = f"{'+' if force else ''}{_MOVE_REF}:{ref}"
            remote = repo.remotes.create_anonymous(self.url.text)
            callbacks = PushCallbacks(self.auth, self.url, ref)
            try:
                remote.push([spec], callbacks=callbacks)
            except pygit2.GitError as error:
                if callbacks.rejections or lost_race(str(error)):
                    raise RefMoved(
                        f"the server did not move {ref}: {error}", url=self.url.redacted, ref=ref
                    ) from None
                raise
            self._check_host_verified(callbacks, ref)
            rejection = callbacks.rejections.get(ref)
            if rejection is not None:
                kind = RefMoved if lost_race(rejection) else PushRejected
                raise kind(
                    f"the server refused to update {ref}: {rejection}",
                    url=self.url.redacted,
                    ref=ref,
                )
            repo.references.create(ref, commit, force=True)

    def _check_host_verified(self, callbacks: SourceCallbacks, ref: str) -> None:
        if self.url.transport is Transport.SSH and not callbacks.host_key_verified:
            raise errors.ServerNotTrusted(
                "the SSH host key was never verified", url=self.url.redacted, ref=ref
            )

    def _translated(
        self, ref: str, *, network: bool = True
    ) -> contextlib.AbstractContextManager[None]:
        return map_exceptions(self.url, ref, self.auth, network=network)

    def _locked(self) -> contextlib.AbstractContextManager[None]:
        return locking.exclusive(self.cache_dir / f"{self.url.cache_key}-refs.lock")

    @contextlib.contextmanager
    def _repo(self) -> Iterator[pygit2.Repository]:
        repo: pygit2.Repository | None = None
        if self.repo_path.exists():
            try:
                repo = pygit2.Repository(str(self.repo_path))
            except pygit2.GitError:
                shutil.rmtree(self.repo_path)  # only a cache: rebuilt by the next fetch
        if repo is None:
            repo = pygit2.init_repository(str(self.repo_path), bare=True)
        try:
            yield repo
        finally:
            repo.free()
