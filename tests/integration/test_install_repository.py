"""Committing the agent's manifests to a real repository: once, then never again unchanged."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from fleet import install
from fleet.install import repository
from fleet.localkube.gitserver import git_env
from fleet.source import GitAuth


def _show(bare: Path, path: str) -> str:
    return subprocess.run(
        ["git", "show", f"main:{path}"],
        cwd=bare,
        env=git_env(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_commit_manifests_creates_the_layout_once(tmp_path: Path) -> None:
    bare = tmp_path / "fleet.git"
    subprocess.run(
        ["git", "init", "--quiet", "--bare", "--initial-branch=main", str(bare)],
        check=True,
        env=git_env(),
    )
    options = install.InstallOptions("dev", str(bare), least_privilege=True)
    cache = tmp_path / "cache"
    first = repository.commit_manifests(str(bare), "main", GitAuth.none(), options, cache_dir=cache)
    assert first.changed and first.commit
    assert yaml.safe_load(_show(bare, "fleet.yaml"))["clusters"] == [{"name": "dev"}]
    committed = list(yaml.safe_load_all(_show(bare, repository.manifest_path("dev"))))
    assert committed == install.manifests(options)

    again = repository.commit_manifests(str(bare), "main", GitAuth.none(), options, cache_dir=cache)
    assert not again.changed and again.commit == first.commit

    upgraded = install.InstallOptions("dev", str(bare), least_privilege=True, image="fleet:0.2.0")
    upgrade = repository.commit_manifests(
        str(bare), "main", GitAuth.none(), upgraded, cache_dir=cache
    )
    assert upgrade.changed
    assert "fleet:0.2.0" in _show(bare, repository.manifest_path("dev"))
