"""The ``helm`` command lines for a HelmRelease's actions, from its spec. Pure.

Flux's helm-controller calls Helm's Go API; fleet runs the real binary with the flags
that mean the same thing, so the mapping from spec fields to flags lives here, where it
can be read and tested in one place.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from pathlib import Path

from fleet.models.duration import format_duration
from fleet.models.helmrelease import HelmRelease


def _timeout(value: datetime.timedelta | None, release: HelmRelease) -> list[str]:
    chosen = value if value is not None else release.spec.effective_timeout
    return ["--timeout", format_duration(chosen)]


def _wait(disable_wait: bool, disable_wait_for_jobs: bool) -> list[str]:
    if disable_wait:
        return []
    return ["--wait"] if disable_wait_for_jobs else ["--wait", "--wait-for-jobs"]


def _common(release: HelmRelease, values_file: Path, post_renderer: Sequence[str]) -> list[str]:
    args = ["--namespace", release.release_namespace, "--values", str(values_file)]
    if post_renderer:
        args += ["--post-renderer", post_renderer[0]]
        for argument in post_renderer[1:]:
            args += ["--post-renderer-args", argument]
    return args


def install(
    release: HelmRelease,
    chart: Path,
    values_file: Path,
    *,
    replace: bool = False,
    post_renderer: Sequence[str] = (),
) -> list[str]:
    """``helm install``: the release does not exist (or only as uninstalled history)."""
    spec = release.spec.install
    args = ["install", release.release_name, str(chart)]
    args += _common(release, values_file, post_renderer)
    args += _timeout(spec.timeout, release)
    args += _wait(spec.disable_wait, spec.disable_wait_for_jobs)
    if spec.create_namespace:
        args.append("--create-namespace")
    if spec.crds_policy == "Skip":
        args.append("--skip-crds")
    if spec.replace or replace:
        args.append("--replace")
    if spec.disable_hooks:
        args.append("--no-hooks")
    if spec.disable_open_api_validation:
        args.append("--disable-openapi-validation")
    if spec.disable_schema_validation:
        args.append("--skip-schema-validation")
    return args


def upgrade(
    release: HelmRelease,
    chart: Path,
    values_file: Path,
    *,
    post_renderer: Sequence[str] = (),
) -> list[str]:
    """``helm upgrade`` (never ``--install``: a missing release is an install, whose
    failures are remediated differently)."""
    spec = release.spec.upgrade
    args = ["upgrade", release.release_name, str(chart)]
    args += _common(release, values_file, post_renderer)
    # Helm prunes history on upgrade and rollback only; an install starts at revision 1.
    args += ["--history-max", str(release.spec.effective_max_history)]
    args += _timeout(spec.timeout, release)
    args += _wait(spec.disable_wait, spec.disable_wait_for_jobs)
    args.append("--reuse-values" if spec.preserve_values else "--reset-values")
    if spec.force:
        args.append("--force")
    if spec.cleanup_on_fail:
        args.append("--cleanup-on-fail")
    if spec.disable_hooks:
        args.append("--no-hooks")
    if spec.disable_open_api_validation:
        args.append("--disable-openapi-validation")
    if spec.disable_schema_validation:
        args.append("--skip-schema-validation")
    return args


def rollback(release: HelmRelease, revision: int) -> list[str]:
    """``helm rollback`` to a revision that was served complete."""
    spec = release.spec.rollback
    args = ["rollback", release.release_name, str(revision)]
    args += ["--namespace", release.release_namespace]
    args += ["--history-max", str(release.spec.effective_max_history)]
    args += _timeout(spec.timeout, release)
    args += _wait(spec.disable_wait, spec.disable_wait_for_jobs)
    if spec.recreate:
        args.append("--recreate-pods")
    if spec.force:
        args.append("--force")
    if spec.cleanup_on_fail:
        args.append("--cleanup-on-fail")
    if spec.disable_hooks:
        args.append("--no-hooks")
    return args


def uninstall(
    release: HelmRelease, *, name: str | None = None, namespace: str | None = None
) -> list[str]:
    """``helm uninstall``; ``name``/``namespace`` address a release the spec no longer
    names (its releaseName or targetNamespace changed)."""
    spec = release.spec.uninstall
    args = ["uninstall", name or release.release_name]
    args += ["--namespace", namespace or release.release_namespace, "--ignore-not-found"]
    args += _timeout(spec.timeout, release)
    args += ["--cascade", spec.deletion_propagation]
    if not spec.disable_wait:
        args.append("--wait")
    if spec.keep_history:
        args.append("--keep-history")
    if spec.disable_hooks:
        args.append("--no-hooks")
    return args


def test(release: HelmRelease) -> list[str]:
    spec = release.spec.test
    args = ["test", release.release_name, "--namespace", release.release_namespace]
    args += _timeout(spec.timeout, release)
    for selected in spec.filters:
        args += ["--filter", f"{'!' if selected.exclude else ''}name={selected.name}"]
    return args


def history(name: str, namespace: str) -> list[str]:
    return ["history", name, "--namespace", namespace, "--max", "256", "--output", "json"]


def get_values(name: str, namespace: str, revision: int | None = None) -> list[str]:
    args = ["get", "values", name, "--namespace", namespace, "--output", "json"]
    return args + (["--revision", str(revision)] if revision is not None else [])


def get_manifest(name: str, namespace: str, revision: int | None = None) -> list[str]:
    args = ["get", "manifest", name, "--namespace", namespace]
    return args + (["--revision", str(revision)] if revision is not None else [])
