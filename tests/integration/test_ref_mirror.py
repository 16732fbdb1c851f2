"""``RefMirror`` against a real git daemon: many refs in one fetch, files at a commit,
and ref moves that refuse to overwrite someone else's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet.source.mirror import RefMirror, RefMoved
from tests.gitservers import GitDaemon, WorkingClone, git_daemon, served_repo

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[GitDaemon, WorkingClone]]:
    root = tmp_path / "served"
    root.mkdir()
    repo = served_repo(root, "fleet.git")
    with git_daemon(root) as daemon:
        yield daemon, repo


def test_fetch_reads_the_named_refs_and_those_under_prefixes(
    served: tuple[GitDaemon, WorkingClone], tmp_path: Path
) -> None:
    daemon, repo = served
    first = repo.commit({"fleet.yaml": "one\n"}, message="one")
    repo.push("main", f"{first}:refs/heads/fleet/wave/dev", f"{first}:refs/heads/other")
    mirror = RefMirror(daemon.url("fleet.git"), cache_dir=tmp_path / "cache")

    refs = mirror.fetch(["refs/heads/main"], ["refs/heads/fleet/"])
    assert refs == {"refs/heads/main": first, "refs/heads/fleet/wave/dev": first}
    assert mirror.read_file(first, "fleet.yaml") == b"one\n"
    assert mirror.read_file(first, "missing.yaml") is None
    assert mirror.resolve(first[:8]) == first
    assert mirror.resolve("f" * 12) is None

    repo.delete_remote_branch("fleet/wave/dev")
    assert mirror.fetch(["refs/heads/main"], ["refs/heads/fleet/"]) == {"refs/heads/main": first}
    assert mirror.resolve("refs/heads/fleet/wave/dev") is None


def test_move_goes_forward_backward_with_force_and_never_over_another_writer(
    served: tuple[GitDaemon, WorkingClone], tmp_path: Path
) -> None:
    daemon, repo = served
    first = repo.commit({"a": "1\n"}, message="one")
    second = repo.commit({"a": "2\n"}, message="two")
    repo.push("main")
    mirror = RefMirror(daemon.url("fleet.git"), cache_dir=tmp_path / "cache")
    mirror.fetch(["refs/heads/main"])
    wave = "refs/heads/fleet/wave/dev"

    mirror.move(wave, first, expected=None)
    mirror.move(wave, second, expected=first)
    assert repo.git("ls-remote", "origin", wave).split()[0] == second

    with pytest.raises(RefMoved, match="not at"):
        mirror.move(wave, first, expected=first)
    with pytest.raises(RefMoved):
        mirror.move(wave, first, expected=second)  # backward without force
    mirror.move(wave, first, expected=second, force=True)
    assert mirror.fetch([], ["refs/heads/fleet/"]) == {wave: first}
