"""GitSource: follow a ref of a remote repository and hand out immutable revisions.

Each URL gets one bare mirror repository under the cache directory. A fetch connects
once, reads the refs the server advertises, fetches only the ref it needs into the mirror
(forced, so rewritten history is followed) and only then resolves the revision: a failed
fetch never yields a half-fetched revision. The last good revision is pinned by a ref in
the mirror and recorded next to it, so it stays exportable while the server is down or
the branch is gone, also across restarts.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pygit2
from pygit2.enums import FileMode

from fleet.source import errors, locking, refs
from fleet.source._libgit2 import SourceCallbacks, ensure_network_timeouts, map_exceptions
from fleet.source.auth import GitAuth
from fleet.source.refs import GitRef
from fleet.source.urls import GitURL, Transport, parse_git_url

_LAST_GOOD_REF = "refs/fleet/last-good/{key}"
_UNSAFE_NAMES = frozenset({"", ".", "..", ".git"})


@dataclass(frozen=True)
class Revision:
    """One immutable commit of a source, labelled by the ref it was reached through."""

    commit: str
    """Full SHA of the commit."""
    label: str
    """``main``, ``v1.2.3``, ``refs/pull/7/head``; empty for a bare commit pin."""
    ref_name: str | None = None
    """The full remote ref the commit came from (``refs/heads/main``), if any."""

    @property
    def display(self) -> str:
        """Flux's form: ``main@sha1:<sha>``, ``v1.2.3@sha1:<sha>`` or ``sha1:<sha>``."""
        return refs.revision_display(self.label, self.commit)

    def __str__(self) -> str:
        return self.display


@dataclass(frozen=True)
class FetchResult:
    """A successful fetch: the revision, what was served before, and how long it took."""

    revision: Revision
    previous: Revision | None
    duration_seconds: float

    @property
    def changed(self) -> bool:
        return self.previous != self.revision


class GitSource:
    """A remote repository and a ref to follow, with a local mirror as cache.

    ``fetch`` raises ``SourceUnavailable``, ``SourceAuthError`` (and its host-key
    subclasses) or ``RefNotFound``; after any of them ``last_revision`` still returns the
    last good revision and ``export`` can still write it.
    """

    def __init__(
        self,
        url: str,
        ref: GitRef | None = None,
        auth: GitAuth | None = None,
        *,
        cache_dir: Path,
    ) -> None:
        self.ref = ref or GitRef()
        self.auth = auth or GitAuth.none()
        try:
            self.url: GitURL = parse_git_url(url)
        except ValueError as error:
            raise errors.SourceConfigError(str(error), ref=self.ref.describe()) from None
        if self.url.transport is Transport.SSH and not self.auth.known_hosts:
            raise errors.SourceConfigError(
                "SSH needs known_hosts to verify the server",
                url=self.url.redacted,
                ref=self.ref.describe(),
            )
        self.cache_dir = cache_dir
        self.mirror_path = cache_dir / f"{self.url.cache_key}.git"
        self._ref_key = hashlib.sha256(self.ref.model_dump_json().encode()).hexdigest()[:16]
        self._last_good_ref = _LAST_GOOD_REF.format(key=self._ref_key)
        self._state_path = self.mirror_path / "fleet" / f"last-good-{self._ref_key}.json"
        with self._locked():
            self._last: Revision | None = self._load_last_good()

    def last_revision(self) -> Revision | None:
        """The last revision a fetch resolved, kept while fetches fail."""
        return self._last

    def fetch(self) -> FetchResult:
        """Bring the mirror up to date with the ref and resolve it to a revision."""
        ensure_network_timeouts()
        started = time.monotonic()
        try:
            with self._locked(), self._translated(), self._mirror() as repo:
                revision = self._fetch_into(repo)
                self._remember(repo, revision)
        except errors.SourceError as error:
            error.duration_seconds = time.monotonic() - started
            raise
        previous, self._last = self._last, revision
        return FetchResult(revision, previous, time.monotonic() - started)

    def export(self, revision: Revision, dest: Path) -> None:
        """Write the files of ``revision`` into ``dest`` (absent or empty), without ``.git``.

        Symlinks stay symlinks and executable bits are kept, so a later step can decide
        which links it accepts. The tree is written beside ``dest`` and renamed into place,
        so ``dest`` never holds a partial checkout.
        """
        if dest.exists() and any(dest.iterdir()):
            raise FileExistsError(f"export destination {dest} is not empty")
        with self._locked(), self._translated(network=False), self._mirror() as repo:
            commit = repo.get(revision.commit)
            if not isinstance(commit, pygit2.Commit):
                raise errors.RevisionNotFound(
                    f"commit {revision.commit} is not in the cache",
                    url=self.url.redacted,
                    ref=self.ref.describe(),
                )
            dest.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
            try:
                self._write_tree(repo, commit.tree, staging)
                staging.chmod(0o755)
                if dest.exists():
                    dest.rmdir()  # only succeeds when empty, which is the contract
                staging.rename(dest)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise

    def _fetch_into(self, repo: pygit2.Repository) -> Revision:
        remote = repo.remotes.create_anonymous(self.url.text)
        callbacks = SourceCallbacks(self.auth, self.url, self.ref.describe())
        remote.connect(callbacks=callbacks)
        # The fetch below reuses this connection, so the advertised refs and the fetched
        # objects come from the same server state.
        heads = remote.list_heads(connect=False)
        advertised = {head.name: str(head.oid) for head in heads if head.name}
        try:
            plan = refs.plan_fetch(self.ref, advertised)
        except refs.RefMissing as missing:
            self._drop_mirrored_ref(repo)
            raise self._error(errors.RefNotFound, str(missing)) from None
        remote.fetch(list(plan.refspecs), callbacks=callbacks)
        if self.url.transport is Transport.SSH and not callbacks.host_key_verified:
            raise self._error(errors.ServerNotTrusted, "the SSH host key was never verified")
        return self._resolve(repo, plan)

    def _resolve(self, repo: pygit2.Repository, plan: refs.FetchPlan) -> Revision:
        tip: pygit2.Commit | None = None
        if plan.remote_ref is not None:
            reference = repo.references.get(plan.remote_ref)
            if reference is None or str(reference.target) != plan.advertised_target:
                raise self._error(
                    errors.SourceUnavailable,
                    f"the fetch did not bring {plan.remote_ref} to {plan.advertised_target}",
                )
            try:
                tip = reference.peel(pygit2.Commit)
            except (pygit2.GitError, ValueError):
                raise self._error(
                    errors.RefNotFound, f"{plan.remote_ref} does not point to a commit"
                ) from None
        if plan.pinned_commit is None:
            assert tip is not None
            return Revision(str(tip.id), plan.label, plan.remote_ref)
        pinned = repo.get(plan.pinned_commit)
        if not isinstance(pinned, pygit2.Commit):
            raise self._error(errors.RefNotFound, f"commit {plan.pinned_commit} not found")
        if tip is not None and tip.id != pinned.id and not repo.descendant_of(tip.id, pinned.id):
            raise self._error(
                errors.RefNotFound,
                f"commit {plan.pinned_commit} is not part of {plan.remote_ref}",
            )
        return Revision(str(pinned.id), plan.label, plan.remote_ref)

    def _drop_mirrored_ref(self, repo: pygit2.Repository) -> None:
        """Forget a branch or tag the server no longer has, so the mirror matches it."""
        name = {
            refs.RefKind.BRANCH: f"refs/heads/{self.ref.effective_branch}",
            refs.RefKind.TAG: f"refs/tags/{self.ref.tag}",
            refs.RefKind.NAME: self.ref.name,
        }.get(self.ref.kind)
        if name and name in repo.references:
            repo.references.delete(name)

    def _remember(self, repo: pygit2.Repository, revision: Revision) -> None:
        repo.references.create(self._last_good_ref, revision.commit, force=True)
        self._state_path.parent.mkdir(exist_ok=True)
        state = {"commit": revision.commit, "label": revision.label, "ref": revision.ref_name}
        temporary = self._state_path.with_suffix(".tmp")
        temporary.write_text(json.dumps(state))
        temporary.replace(self._state_path)

    def _load_last_good(self) -> Revision | None:
        try:
            state = json.loads(self._state_path.read_text())
            revision = Revision(state["commit"], state["label"], state["ref"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        try:
            with self._translated(), self._mirror() as repo:
                pinned = repo.references.get(self._last_good_ref)
                if pinned is None or str(pinned.target) != revision.commit:
                    return None
        except errors.SourceError:
            return None
        return revision

    def _write_tree(self, repo: pygit2.Repository, root: pygit2.Tree, dest: Path) -> None:
        pending: list[tuple[pygit2.Tree, Path]] = [(root, dest)]
        while pending:
            tree, directory = pending.pop()
            for entry in tree:
                name = os.fsdecode(entry.raw_name or b"")
                if name.lower() in _UNSAFE_NAMES or "/" in name or "\0" in name:
                    raise self._error(errors.UnsafeTree, f"tree entry {name!r} cannot be written")
                path = directory / name
                mode = entry.filemode
                if mode == FileMode.TREE:
                    path.mkdir()
                    subtree = repo[entry.id]
                    assert isinstance(subtree, pygit2.Tree)
                    pending.append((subtree, path))
                elif mode == FileMode.LINK:
                    os.symlink(os.fsdecode(repo[entry.id].read_raw()), path)
                elif mode in (FileMode.BLOB, FileMode.BLOB_EXECUTABLE):
                    executable = mode == FileMode.BLOB_EXECUTABLE
                    _write_file(path, repo[entry.id].read_raw(), 0o755 if executable else 0o644)
                elif mode == FileMode.COMMIT:
                    path.mkdir()  # a submodule: left empty, as a clone without --recursive does

    def _error(self, kind: type[errors.SourceError], detail: str) -> errors.SourceError:
        return kind(detail, url=self.url.redacted, ref=self.ref.describe())

    def _translated(self, *, network: bool = True) -> contextlib.AbstractContextManager[None]:
        return map_exceptions(self.url, self.ref.describe(), self.auth, network=network)

    def _locked(self) -> contextlib.AbstractContextManager[None]:
        """Serialise fetches and exports of one mirror across threads and processes."""
        return locking.exclusive(self.cache_dir / f"{self.url.cache_key}.lock")

    @contextlib.contextmanager
    def _mirror(self) -> Iterator[pygit2.Repository]:
        repo = _open_or_create_bare(self.mirror_path)
        try:
            yield repo
        finally:
            repo.free()


def _open_or_create_bare(path: Path) -> pygit2.Repository:
    if path.exists():
        try:
            return pygit2.Repository(str(path))
        except pygit2.GitError:
            # The mirror is only a cache: a damaged one is rebuilt by the next fetch.
            shutil.rmtree(path)
    return pygit2.init_repository(str(path), bare=True)


def _write_file(path: Path, data: bytes, mode: int) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)
        os.fchmod(file.fileno(), mode)  # the umask must not decide what is executable
