"""Commit to a branch of a remote repository and push, safe against concurrent writers.

Several agents write their status files to one branch, and the hub moves wave refs in the
fleet repository; each of them changes a few files and must not lose anyone else's
commit. ``BranchWriter.update`` therefore works without a working tree, in a small bare
repository of its own: read the branch tip, let the caller's ``edit`` decide the new file
contents from the files at that tip, commit on top of it and push without force. When the
push loses a race (another writer moved the branch), it starts over from the new tip, so
the caller's change is re-applied there, which is a rebase for changes to a few files.

libgit2 reports a non-fast-forward push as a generic ``GitError`` and server-side
rejections only through the ``push_update_reference`` callback, so both are inspected.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pygit2
from pygit2.enums import FileMode

from fleet.source import errors, locking
from fleet.source._libgit2 import SourceCallbacks, ensure_network_timeouts, map_exceptions
from fleet.source.auth import GitAuth
from fleet.source.urls import GitURL, Transport, parse_git_url

FileReader = Callable[[str], bytes | None]
"""Reads a file at the branch tip by its path (``clusters/dev.yaml``); None if absent."""
Edit = Callable[[FileReader], Mapping[str, bytes | None]]
"""Given the tip's files, the files to write (None deletes); empty means nothing to do."""

DEFAULT_AUTHOR = ("fleet", "fleet@fleet.invalid")
_LOST_RACE_HINTS = (
    # libgit2's own check, when the remote tip is not in the local repository:
    "not present locally",
    "non-fastforwardable",
    # receive-pack's verdicts, seen through push_update_reference:
    "non-fast-forward",
    "fetch first",
    "failed to update ref",
    "failed to lock",
    "cannot lock ref",
    "stale info",
    "reference already exists",
)
_LOCAL_TIP = "refs/fleet/push/{branch}"


class PushRejected(errors.SourceError):
    """The server refused the update for a reason retrying cannot fix (a hook, protection)."""


class PushConflict(errors.SourceUnavailable):
    """Other writers kept moving the branch; every attempt lost the race."""


@dataclass(frozen=True)
class PushResult:
    """The outcome of one ``update``: the branch tip afterwards and whether we moved it."""

    commit: str | None
    """The commit now at the branch tip (ours if changed); None if the branch is absent."""
    changed: bool
    attempts: int


class PushCallbacks(SourceCallbacks):
    """Source callbacks that also collect the server's verdict per pushed ref."""

    def __init__(self, auth: GitAuth, url: GitURL, ref: str) -> None:
        super().__init__(auth, url, ref)
        self.rejections: dict[str, str] = {}

    def push_update_reference(self, refname: str, message: str | None) -> None:
        if message:
            self.rejections[refname] = message


class _LostRace(Exception):
    """The branch moved between our read and our push."""


class BranchWriter:
    """Writes commits onto one branch of one remote, without a working tree."""

    def __init__(
        self,
        url: str,
        branch: str,
        auth: GitAuth | None = None,
        *,
        cache_dir: Path,
        author: tuple[str, str] = DEFAULT_AUTHOR,
        max_attempts: int = 10,
    ) -> None:
        self.branch = branch
        self.auth = auth or GitAuth.none()
        self.author = author
        self.max_attempts = max_attempts
        self._ref = f"branch {branch}"
        try:
            self.url = parse_git_url(url)
        except ValueError as error:
            raise errors.SourceConfigError(str(error), ref=self._ref) from None
        if self.url.transport is Transport.SSH and not self.auth.known_hosts:
            raise errors.SourceConfigError(
                "SSH needs known_hosts to verify the server", url=self.url.redacted, ref=self._ref
            )
        self.cache_dir = cache_dir
        self.repo_path = cache_dir / f"{self.url.cache_key}-push.git"

    def update(self, edit: Edit, message: str) -> PushResult:
        """Apply ``edit`` at the branch tip, commit and push; retry from the new tip on a race.

        Raises ``PushRejected`` when the server refuses for another reason, ``PushConflict``
        after ``max_attempts`` lost races, and the source's errors for network or
        authentication failures.
        """
        ensure_network_timeouts()
        with self._locked(), map_exceptions(self.url, self._ref, self.auth), self._repo() as repo:
            for attempt in range(1, self.max_attempts + 1):
                try:
                    return self._attempt(repo, edit, message, attempt)
                except _LostRace:
                    # Spread the writers out so the next round does not collide again.
                    time.sleep(random.uniform(0.02, 0.1) * attempt)
            raise PushConflict(
                f"the branch kept moving; gave up after {self.max_attempts} attempts",
                url=self.url.redacted,
                ref=self._ref,
            )

    def read(self) -> tuple[str | None, dict[str, bytes]]:
        """The branch tip and every file on it (a status branch is small)."""
        ensure_network_timeouts()
        with self._locked(), map_exceptions(self.url, self._ref, self.auth), self._repo() as repo:
            tip = self._fetch_tip(repo)
            if tip is None:
                return None, {}
            return str(tip.id), dict(_walk(repo, tip.tree, ""))

    def _attempt(
        self, repo: pygit2.Repository, edit: Edit, message: str, attempt: int
    ) -> PushResult:
        tip = self._fetch_tip(repo)
        base_tree = tip.tree if tip is not None else None
        changes = edit(lambda path: _read_file(repo, base_tree, path))
        tree_id = _apply(repo, base_tree, changes)
        unchanged = (
            tree_id == base_tree.id
            if base_tree is not None
            else all(content is None for content in changes.values())
        )
        if unchanged:
            return PushResult(str(tip.id) if tip else None, changed=False, attempts=attempt)
        signature = pygit2.Signature(*self.author)
        parents = [tip.id] if tip is not None else []
        commit = repo.create_commit(None, signature, signature, message, tree_id, parents)
        local = _LOCAL_TIP.format(branch=self.branch)
        repo.references.create(local, commit, force=True)
        self._push(repo, local)
        return PushResult(str(commit), changed=True, attempts=attempt)

    def _fetch_tip(self, repo: pygit2.Repository) -> pygit2.Commit | None:
        remote = repo.remotes.create_anonymous(self.url.text)
        callbacks = PushCallbacks(self.auth, self.url, self._ref)
        remote.connect(callbacks=callbacks)
        heads = {head.name: str(head.oid) for head in remote.list_heads(connect=False)}
        self._check_host_verified(callbacks)
        target = heads.get(f"refs/heads/{self.branch}")
        if target is None:
            return None
        if target not in repo:
            remote.fetch(
                [f"+refs/heads/{self.branch}:refs/fleet/remote/{self.branch}"], callbacks=callbacks
            )
        commit = repo.get(target)
        if not isinstance(commit, pygit2.Commit):
            raise errors.SourceUnavailable(
                f"refs/heads/{self.branch} points to {target}, which is not a commit",
                url=self.url.redacted,
                ref=self._ref,
            )
        return commit

    def _push(self, repo: pygit2.Repository, local: str) -> None:
        remote = repo.remotes.create_anonymous(self.url.text)
        callbacks = PushCallbacks(self.auth, self.url, self._ref)
        target = f"refs/heads/{self.branch}"
        try:
            remote.push([f"{local}:{target}"], callbacks=callbacks)
        except pygit2.GitError as error:
            if callbacks.rejections or lost_race(str(error)):
                raise _LostRace() from None
            raise
        self._check_host_verified(callbacks)
        rejection = callbacks.rejections.get(target)
        if rejection is None:
            return
        if lost_race(rejection):
            raise _LostRace()
        raise PushRejected(
            f"the server refused to update {target}: {rejection}",
            url=self.url.redacted,
            ref=self._ref,
        )

    def _check_host_verified(self, callbacks: SourceCallbacks) -> None:
        if self.url.transport is Transport.SSH and not callbacks.host_key_verified:
            raise errors.ServerNotTrusted(
                "the SSH host key was never verified", url=self.url.redacted, ref=self._ref
            )

    def _locked(self) -> contextlib.AbstractContextManager[None]:
        """One writer per local repository, across threads and processes."""
        return locking.exclusive(self.cache_dir / f"{self.url.cache_key}-push.lock")

    @contextlib.contextmanager
    def _repo(self) -> Iterator[pygit2.Repository]:
        if self.repo_path.exists():
            try:
                repo = pygit2.Repository(str(self.repo_path))
            except pygit2.GitError:
                # Only a cache of the remote: rebuilt from scratch if damaged.
                shutil.rmtree(self.repo_path)
                repo = pygit2.init_repository(str(self.repo_path), bare=True)
        else:
            repo = pygit2.init_repository(str(self.repo_path), bare=True)
        try:
            yield repo
        finally:
            repo.free()


def lost_race(text: str) -> bool:
    """Whether a push failure means another writer moved the ref first."""
    lowered = text.lower()
    return any(hint in lowered for hint in _LOST_RACE_HINTS)


def _read_file(repo: pygit2.Repository, tree: pygit2.Tree | None, path: str) -> bytes | None:
    if tree is None:
        return None
    try:
        entry = tree[path]
    except KeyError:
        return None
    blob = repo.get(entry.id)
    return blob.data if isinstance(blob, pygit2.Blob) else None


def _walk(repo: pygit2.Repository, tree: pygit2.Tree, prefix: str) -> Iterator[tuple[str, bytes]]:
    for entry in tree:
        path = f"{prefix}{entry.name}"
        item = repo.get(entry.id)
        if isinstance(item, pygit2.Tree):
            yield from _walk(repo, item, f"{path}/")
        elif isinstance(item, pygit2.Blob):
            yield path, item.data


def _apply(
    repo: pygit2.Repository, base: pygit2.Tree | None, changes: Mapping[str, bytes | None]
) -> pygit2.Oid:
    """The tree of ``base`` with ``changes`` applied (None deletes a file)."""
    index = pygit2.Index()
    if base is not None:
        index.read_tree(base)
    for path, content in changes.items():
        if not path or path.startswith("/") or ".." in path.split("/"):
            raise ValueError(f"refusing to write outside the repository: {path!r}")
        if content is None:
            if path in index:
                index.remove(path)
            continue
        blob = repo.create_blob(content)
        index.add(pygit2.IndexEntry(path, blob, FileMode.BLOB))
    return index.write_tree(repo)
